"""Shared fixtures. ML fixtures live in tests/ml_fixtures.py."""

pytest_plugins = ["tests.ml_fixtures"]

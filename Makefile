# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/fashion-tagger up

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/pytest

bench: install
	$(BIN)/python -m benchmarks all

clean:
	rm -rf $(VENV) var runs .pytest_cache

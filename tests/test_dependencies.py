"""Every third-party module the code imports is installed by the extras that `make` installs,
as pyproject.toml declares them (a package that is only here because something else once
pulled it in passes every other test on this machine and fails on a fresh clone)."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LOCAL = {"core", "store", "worker", "api", "cli", "benchmarks", "tests"}
# what each tree may use: the package's own code gets `all`, the tests and benchmarks `dev`
TREES = {"core": "all", "store": "all", "worker": "all", "api": "all", "cli": "all",
         "benchmarks": "dev", "tests": "dev"}


def imported_modules(tree: str) -> dict[str, str]:
    """Top-level module -> a file that imports it (absolute imports, lazy ones included)."""
    found: dict[str, str] = {}
    for path in sorted((REPO / tree).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def declared_closure(extra: str) -> set[str]:
    """Every distribution that `pip install '.[extra]'` brings: our requirements of that extra,
    then, recursively, what each installed distribution requires (with the extras asked of it)."""
    optional = PYPROJECT["project"]["optional-dependencies"]
    todo: list[Requirement] = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    extras_done: set[str] = set()

    def ours(name: str) -> None:
        if name not in extras_done:
            extras_done.add(name)
            todo.extend(Requirement(r) for r in optional[name])

    ours(extra)
    seen: dict[str, set[str]] = {}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name == "fashion-tagger":
            for e in req.extras:
                ours(e)
            continue
        new_extras = set(req.extras) - seen.get(name, set())
        if name in seen and not new_extras:
            continue
        seen.setdefault(name, set()).update(req.extras)
        for requirement in metadata.requires(req.name) or []:
            dep = Requirement(requirement)
            if dep.marker is None or any(
                    dep.marker.evaluate({**default_environment(), "extra": e})
                    for e in ({""} | seen[name])):
                todo.append(dep)
    return set(seen)


@pytest.mark.parametrize("tree", sorted(TREES))
def test_every_third_party_import_is_declared(tree):
    closure = declared_closure(TREES[tree])
    providers = metadata.packages_distributions()
    missing = {}
    for module, where in imported_modules(tree).items():
        if module in sys.stdlib_module_names or module in LOCAL or module == "__future__":
            continue
        dists = {canonicalize_name(d) for d in providers.get(module, [module])}
        if not dists & closure:
            missing[module] = where
    assert not missing, f"imported but not declared in .[{TREES[tree]}]: {missing}"

"""The package boundaries of docs/DESIGN.md, checked on the source: imports point one way
(api -> store, core; worker -> store, core; store -> core.settings only; core imports none of
them), and the API reaches worker/ only for the Celery app and the task names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OURS = ("api", "cli", "core", "store", "worker", "benchmarks")


def imports_of(package: str) -> dict[str, set[str]]:
    """Module path -> the modules of ours it imports (at any depth, lazy imports included)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(REPO))] = {n for n in names if n.split(".")[0] in OURS}
    return found


def offending(package: str, allowed) -> dict[str, set[str]]:
    return {module: bad for module, names in imports_of(package).items()
            if (bad := {n for n in names if not allowed(n)})}


def test_store_imports_only_itself_and_core_settings():
    assert offending("store", lambda n: n.startswith("store") or n.startswith(
        "core.settings")) == {}


def test_core_imports_no_service_package():
    assert offending("core", lambda n: n.startswith("core")) == {}


def test_the_api_uses_worker_only_for_the_celery_app_and_task_names():
    def allowed(name: str) -> bool:
        if name.split(".")[0] != "worker":
            return name.split(".")[0] in ("api", "store", "core")
        return name == "worker" or name.split(".")[1] in ("app", "names")

    assert offending("api", allowed) == {}


def test_the_workers_never_import_the_api_or_the_cli():
    assert offending("worker", lambda n: n.split(".")[0] in ("worker", "store", "core")) == {}


@pytest.mark.parametrize("package", ["store", "api"])
def test_importing_a_torch_free_package_loads_no_torch(package):
    modules = [p.relative_to(REPO).with_suffix("").as_posix().replace("/", ".")
               for p in (REPO / package).rglob("*.py")]
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}];"
            "bad = [m for m in ('torch', 'worker.tasks') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr

"""Installed size of each role's extra, each in a fresh virtual environment.

Where no container engine runs, this stands in for the image sizes: an image is the Python
base image plus what pip installs (the code itself is under 1 MB beside it). Each role's venv
also proves its extra is enough for that role's entry point (`import api.main` with no torch,
the client command, flower's Celery app).

    python -m benchmarks install-size [--roles api,all] [--work /tmp/ft-size]
        -> benchmarks/results/install-size.json
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import REPO

SOURCES = ("pyproject.toml", "README.md", "LICENSE", "core", "store", "worker", "api", "cli")
BARE_VENV = ("pip", "setuptools")  # what `python -m venv` brings: not the role's

ROLES = ("client", "api", "flower", "worker-cpu", "train", "all")
# What each role's process must be able to do with only its extra installed.
ROLE_CHECKS: dict[str, str] = {
    "client": "import cli.client, cli.remote, sys; assert 'torch' not in sys.modules",
    "api": "import api.main, sys; assert 'torch' not in sys.modules",
    "flower": "import worker.app, flower, sys; assert 'torch' not in sys.modules",
    "worker-cpu": "import worker.tasks, worker.model, core.predictor, onnxruntime, sys;"
                  " assert 'torch' not in sys.modules",
    "train": "import worker.tasks, worker.trainer, core.runs, core.training, torch",
    "all": "import api.main, worker.tasks, torch",
}


def dir_bytes(path: Path) -> int:
    """Bytes of the regular files under `path` (what `du -sb` counts, without directories)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            file = Path(root, name)
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def largest_distributions(python: Path, top: int = 8) -> list[dict[str, object]]:
    """The biggest installed distributions, summed from each one's RECORD."""
    code = (
        "import importlib.metadata as m, json, os\n"
        "out = []\n"
        "for d in m.distributions():\n"
        "    size = 0\n"
        "    for f in d.files or []:\n"
        "        p = d.locate_file(f)\n"
        "        size += os.path.getsize(p) if os.path.isfile(p) else 0\n"
        "    out.append((d.metadata['Name'], d.version, size))\n"
        "print(json.dumps(sorted(out, key=lambda t: -t[2])))\n")
    # Run from the venv, not from this checkout: an editable install here is a second copy.
    rows = json.loads(subprocess.run([str(python), "-c", code], check=True,
                                     cwd=python.parents[2], capture_output=True,
                                     text=True).stdout)
    rows = [row for row in rows if row[0] not in BARE_VENV]
    return [{"name": n, "version": v, "mib": round(s / 2**20, 1)} for n, v, s in rows[:top]]


def measure(role: str, work: Path, source: Path) -> dict[str, object]:
    venv = work / role
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = next((venv / "lib").glob("python3*/site-packages"))
    empty = dir_bytes(site)  # BARE_VENV's packages
    start = time.perf_counter()
    # Not editable: the venv gets a copy of the package, as an image does.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"{source}[{role}]"],
                   check=True)
    seconds = time.perf_counter() - start
    installed = dir_bytes(site) - empty
    check = ROLE_CHECKS.get(role)
    check_result = None
    if check:
        # Settings the API refuses to start without outside development are not needed here.
        ran = subprocess.run([str(python), "-c", check], capture_output=True, text=True,
                             cwd=work)
        check_result = "ok" if ran.returncode == 0 else ran.stderr.strip().splitlines()[-1]
    return {
        "extra": role,
        "installed_mib": round(installed / 2**20, 1),
        "install_seconds": round(seconds, 1),
        "has_torch": (site / "torch").is_dir(),
        "entry_point_check": check,
        "entry_point_result": check_result,
        "largest": largest_distributions(python),
    }


def install_sizes(roles: Sequence[str], work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    source = work / "src"  # a copy: pip builds in the source tree otherwise
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir()
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, source / name)
    results = [measure(role, work, source) for role in roles]
    for row in results:
        print(f"{row['extra']:>11}: {row['installed_mib']:>8} MiB  torch={row['has_torch']}"
              f"  check={row['entry_point_result']}", flush=True)
    return {"what": "site-packages bytes a fresh venv gains from `pip install '.[extra]'`"
                    " (pip and setuptools of the bare venv excluded)",
            "torch_build_note": "torch==2.14.1 as pip resolves it here: the PyPI build with"
                                " its CUDA 13 libraries (nvidia-*); a CPU wheel would be"
                                " smaller",
            "results": results}

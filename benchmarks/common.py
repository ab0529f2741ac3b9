"""Shared helpers: machine description, result files, timing."""

from __future__ import annotations

import io
import json
import os
import platform
import shlex
import sys
import time
import zipfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


def stored_zip(members: Iterable[tuple[str, bytes]]) -> bytes:
    """(name, bytes) -> a zip archive, stored, not deflated: the images are compressed already."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return archive.getvalue()


def numbered_pngs(images: Sequence[bytes]) -> list[tuple[str, bytes]]:
    """Zip members 00000.png, 00001.png ...: a result's filename gives back its image's index."""
    return [(f"{i:05d}.png", data) for i, data in enumerate(images)]


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def save_result(name: str, figures: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {
        "benchmark": name,
        "command": "python -m benchmarks " + shlex.join(sys.argv[1:]),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **figures,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    return path


def fashion_tagger_cmd() -> list[str]:
    """The installed console script, next to the running interpreter."""
    script = Path(sys.executable).parent / "fashion-tagger"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start

"""Training recipes: wall time of `fashion-tagger train` and test accuracy of the result.

The test split is used only for this final evaluation, after training has finished.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from benchmarks.common import Timer, fashion_tagger_cmd


def run_recipe(recipe: str, data_dir: Path | None, threads: int | None = None,
               keep: Path | None = None) -> dict:
    """`keep`: a folder to leave the run in (model, curves, metrics); else a temporary one."""
    cli = fashion_tagger_cmd()
    with tempfile.TemporaryDirectory() as tmp:
        out = (keep or Path(tmp)) / recipe
        train_cmd = [*cli, "train", "--recipe", recipe, "--out", str(out)]
        eval_cmd = [*cli, "evaluate", "--model", str(out / "model.safetensors"),
                    "--split", "test", "--out", str(out / "eval")]
        if data_dir:
            train_cmd += ["--data-dir", str(data_dir)]
            eval_cmd += ["--data-dir", str(data_dir)]
        if threads:
            train_cmd += ["--threads", str(threads)]
        with Timer() as t:
            subprocess.run(train_cmd, check=True)
        subprocess.run(eval_cmd, check=True, stdout=subprocess.DEVNULL)
        metrics = json.loads((out / "eval" / "metrics.json").read_text())
        train_metrics = json.loads((out / "metrics.json").read_text())
    return {
        "recipe": recipe,
        "command": " ".join(["fashion-tagger", *train_cmd[len(cli):]]),
        "wall_s": round(t.seconds, 1),
        "train_loop_s": train_metrics["metrics"]["train_seconds"],
        "epochs": train_metrics["config"]["epochs"],
        "seed": train_metrics["config"]["seed"],
        "val_accuracy": train_metrics["metrics"].get("val_accuracy"),
        "test_accuracy": metrics["accuracy"],
    }

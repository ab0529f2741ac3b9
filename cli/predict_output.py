"""Rendering `fashion-tagger predict` results as a table, CSV or JSON on stdout."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from core.predictor import ItemError, Prediction

CSV_COLUMNS = ("path", "label", "label_index", "confidence")


def write_predictions(rows: list[tuple[Path, Prediction | ItemError]], output_format: str) -> None:
    if output_format == "csv":
        # Columns are fixed for scripts; an unreadable file keeps its row with empty fields
        # and its error goes to stderr.
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for path, result in rows:
            if isinstance(result, ItemError):
                writer.writerow([str(path), "", "", ""])
                print(f"error: {path}: {result.error}", file=sys.stderr)
            else:
                writer.writerow([str(path), result.label, result.label_index,
                                 f"{result.confidence:.6f}"])
    elif output_format == "json":
        # Each item carries its `route`: the model of a routed pair that tagged it.
        items = [
            {"path": str(path), "error": result.error} if isinstance(result, ItemError)
            else {"path": str(path), **asdict(result), "error": None}
            for path, result in rows
        ]
        json.dump(items, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        table = Table()
        for column in ("path", "label", "confidence", "top-k", "route"):
            table.add_column(column)
        for path, result in rows:
            if isinstance(result, ItemError):
                table.add_row(str(path), "[red]error[/]", "", result.error, "")
            else:
                top = ", ".join(f"{s.label} {s.score:.2f}" for s in result.top_k)
                table.add_row(str(path), result.label, f"{result.confidence:.3f}", top,
                              result.route)
        Console().print(table)

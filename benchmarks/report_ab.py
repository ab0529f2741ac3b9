"""BENCHMARKS.md sections for before/after runs (`python -m benchmarks ab`) and the installed
size of each role's extra (`python -m benchmarks install-size`)."""

from __future__ import annotations

from benchmarks.common import RESULTS_DIR
from benchmarks.report import load, measured

AB_FIGURES = (  # key in a round, shown as, lower is better
    ("e2e_bulk_img_per_s", "bulk zip e2e, images/s", False),
    ("single_p99_ms_32c", "single image p99 at 32 clients, ms", True),
    ("evalsha_per_chunk", "Redis script calls (EVALSHA) per chunk", True),
    ("worker_child_rss_max_mib", "inference worker child RSS after the job, MiB", True),
)


def ab_section() -> list[str]:
    runs = [load(p.stem) for p in sorted(RESULTS_DIR.glob("ab-*.json"))]
    runs = [r for r in runs if r is not None]
    if not runs:
        return []
    lines = ["## Before and after, side by side", "",
             "`python -m benchmarks ab` starts the service of one commit, then of the other, on"
             " the same machine in one run, `--rounds` times each (10,000 Fashion-MNIST test"
             " PNGs as one zip through the whole stack, labels checked against the offline"
             " predictor; 32 clients sending single images; Redis's own EVALSHA count; the"
             " RSS of each inference worker child after the job). Each cell: the median, then"
             " every round. This VM's speed moves from minute to minute: compare rounds, not"
             " runs. EVALSHA counts every script call while the job runs, each its own round"
             " trip unless pipelined, the reaper's sweeps included (which made 4b6bbca's vary);"
             " from 4fe2ce1 on, the API's chunk write is a script (`add_chunk.lua`, which keeps"
             " the usage counters exact) where it was a pipelined MULTI, so it counts one call"
             " more per chunk for the same round trip: per chunk, 3 round trips now (write,"
             " start, record) against 4 at e5e83ba.", ""]
    for r in runs:
        rounds = r["per_round"]
        lines += [f"### {r['baseline_ref']} -> {r['current_ref']}"
                  + (f": {r['question']}" if r.get("question") else ""), "",
                  f"Command: `{r['command']}` ({measured(r)}). Every label equal to offline"
                  f" `predict`: {'yes' if r['all_labels_match_offline'] else '**no**'}.", "",
                  f"| figure | {r['baseline_ref']} (before) | {r['current_ref']} (after) |"
                  " after / before |", "|---|---|---|---|"]
        for key, name, _ in AB_FIGURES:
            before, after = r["baseline"].get(key), r["current"].get(key)
            if before is None or after is None:
                continue
            cells = [f"**{fmt(r[side][key])}**"
                     f" ({', '.join(fmt(row.get(key)) for row in rounds[side])})"
                     for side in ("baseline", "current")]
            lines.append(f"| {name} | {cells[0]} | {cells[1]} | {after / before:.2f} |")
        lines.append("")
    return lines


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:g}"


def install_size_section() -> list[str]:
    r = load("install-size")
    if r is None:
        return []
    lines = ["## What each role installs (issue 14)", "",
             f"Command: `{r['command']}` ({measured(r)}). {r['what']}; each role's venv then"
             " runs its entry-point check with only that extra installed. Where no container"
             " engine runs this stands in for the image sizes: an image is the Python base"
             f" image plus these packages. {r['torch_build_note']}.", "",
             "| extra | installed | torch | entry-point check | largest packages |",
             "|---|---|---|---|---|"]
    for row in r["results"]:
        biggest = ", ".join(f"{d['name']} {d['mib']:g}" for d in row["largest"][:3])
        lines.append(f"| `{row['extra']}` | {row['installed_mib']:,} MiB |"
                     f" {'yes' if row['has_torch'] else 'no'} | `{row['entry_point_check']}`:"
                     f" {row['entry_point_result']} | {biggest} MiB |")
    sizes = {row["extra"]: row["installed_mib"] for row in r["results"]}
    if "api" in sizes and "all" in sizes:
        lines += ["", f"The API installs {sizes['api']:,} MiB instead of {sizes['all']:,} MiB"
                  f" ({100 * sizes['api'] / sizes['all']:.1f}%)."]
    return lines + [""]

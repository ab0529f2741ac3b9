"""The BENCHMARKS.md section for `python -m benchmarks chaos` (issue 12)."""

from __future__ import annotations

from benchmarks.common import RESULTS_DIR
from benchmarks.report import load, measured, target

TERMINAL = ("succeeded", "failed", "cancelled")
WHOLE_WORKER_BOUND_S = 300  # issue 12: terminal within 5 minutes of a new worker's start


def chaos_section() -> list[str]:
    r = load("chaos")
    if r is None:
        return []
    s = r["settings"]
    lines = ["## Every job ends, whatever dies (issue 12)", "",
             f"Command: `{r['command']}` ({measured(r)}). Each scenario: a fresh stack with the"
             f" production settings (Redis with its append-only file, {s['worker']}, chunk"
             f" lease {s['chunk_lease_s']} s, reaper every {s['reaper_interval_s']} s, upload"
             f" stall {s['upload_stall_s']} s, URL deadline {s['fetch_deadline_s']} s), one"
             f" {r['images_per_job']:,}-image job, the fault mid-job; then the job followed to"
             " its end and every result read back: each item index once, labels against the"
             " offline predictor.", "",
             "| scenario | job | fault -> end | results | counted twice | lost | statuses |"
             " labels = offline | also |", "|---|---|---|---|---|---|---|---|---|"]
    for name, c in r["scenarios"].items():
        statuses = ", ".join(f"{k} {v:,}" for k, v in c["statuses"].items())
        lines.append(f"| {name} | {c['status']} | {c['fault_to_end_s']} s | {c['results']:,} |"
                     f" {c['duplicates']} | {c['lost']} | {statuses} |"
                     f" {'yes' if c['labels_match_offline'] else '**no**'} | {also(name, c)} |")
    checks = chaos_targets(r["scenarios"])
    lines += ["", "| figure | value | target |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {goal}: {target(ok)} |" for name, value, goal, ok in checks]
    return lines + ["", *chaos_ab_sections()]


def chaos_ab_sections() -> list[str]:
    """`python -m benchmarks chaos --baseline`: each scenario's rounds on both commits."""
    lines: list[str] = []
    for path in sorted(RESULTS_DIR.glob("chaos-ab-*.json")):
        r = load(path.stem)
        if r is None:
            continue
        before, after = r["baseline_ref"], r["current_ref"]
        lines += [f"### Side by side: {before} -> {after}", "",
                  f"Command: `{r['command']}` ({measured(r)}): the scenarios on each commit's"
                  f" code, alternately, {r['rounds']} rounds each, settings as above. Each"
                  " cell: every round's seconds from the fault to the job's end (a worker that died"
                  " with Redis was started again by the benchmark, as its supervisor would).",
                  "",
                  f"| scenario | {before} (before) | {after} (after) | lost, counted twice,"
                  " labels = offline (all rounds) |", "|---|---|---|---|"]
        for name, sides in r["scenarios"].items():
            every = sides["baseline"] + sides["current"]
            times = [", ".join(round_cell(c) for c in sides[side])
                     for side in ("baseline", "current")]
            lines.append(f"| {name} | {times[0]} | {times[1]} |"
                         f" {sum(c['lost'] for c in every)}, "
                         f"{sum(c['duplicates'] for c in every)}, "
                         f"{'yes' if all(c['labels_match_offline'] for c in every) else '**no**'}"
                         " |")
        lines.append("")
    return lines


def round_cell(c: dict) -> str:
    cell = f"{c['fault_to_end_s']} s" if c["status"] in TERMINAL else f"**{c['status']}**"
    return cell + (" (**worker died**)" if c.get("worker_survived") is False else "")


def also(name: str, c: dict) -> str:
    if name == "kill-whole-worker":
        return (f"new worker started {c['new_worker_start_s']} s after the kill; job ended"
                f" {c['new_worker_to_end_s']} s after it")
    if name == "kill-redis":
        answers = ", ".join(f"{n} x {code}" for code, n in c["api_answers_while_down"].items())
        worker = {True: "; the worker lived through it",
                  False: "; **the worker died with Redis** (the benchmark started another)",
                  None: ""}[c.get("worker_survived")]
        return (f"API while Redis was down: {answers}, slowest"
                f" {c['slowest_answer_while_down_s']} s{worker}")
    if name == "kill-api-mid-upload":
        retries = ", ".join(f"{n} x {code}" for code, n in c["retry_answers"].items())
        p = c["partial_job"]
        return (f"retry with the same Idempotency-Key: {retries}, accepted"
                f" {c['retry_answered_after_s']} s after the kill; the partial job"
                f" `{p['status']}` ({p['end_reason']})")
    if name == "hostile-manifest":
        return f"{c['hostile_items']} hostile URLs among the items"
    return ""


def chaos_targets(scenarios: dict) -> list[tuple[str, str, str, bool]]:
    every = scenarios.values()
    lost = sum(c["lost"] for c in every)
    twice = sum(c["duplicates"] for c in every)
    checks = [("items lost, all scenarios", str(lost), "0", lost == 0),
              ("items counted twice, all scenarios", str(twice), "0", twice == 0),
              ("jobs ended", f"{sum(c['status'] in ('succeeded', 'failed') for c in every)}"
               f" of {len(scenarios)}", "all", all(c["status"] in ("succeeded", "failed")
                                                  for c in every))]
    whole = scenarios.get("kill-whole-worker")
    if whole:
        checks.append(("whole worker killed: new worker's start -> job end",
                       f"{whole['new_worker_to_end_s']} s", f"<= {WHOLE_WORKER_BOUND_S} s",
                       whole["new_worker_to_end_s"] <= WHOLE_WORKER_BOUND_S))
    down = scenarios.get("kill-redis")
    if down:
        codes = down["api_answers_while_down"]
        checks.append(("API answers while Redis is down", ", ".join(codes),
                       "503 only, no other 5xx",
                       all(c == "503" or not c.startswith("5") for c in codes)))
    return checks

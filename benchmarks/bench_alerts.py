"""Alert quality of ``check`` (issue 25.3): failure-jump recall, false alarms, duration anomalies.

    uv run python benchmarks/bench_alerts.py                  # everything, label "branch"
    uv run python benchmarks/bench_alerts.py --quick          # one seed of each
    PYTHONPATH=/tmp/main-src uv run python benchmarks/bench_alerts.py --label main

``--label`` names the code measured (the ``trs_analytics`` imported: put
another checkout's package first on ``PYTHONPATH`` to measure it); each label's
figures replace that label's in ``results/alerts.json`` and leave the others.

What is measured, all on :func:`trs_analytics.testing.generate_planted` histories whose
truth is what was planted, never our own output:

* ``failures.recall``: tasks failing 2-3% of their runs (``failure_probability``)
  for 14 days, then task-days (24 or 100 runs) whose runs fail with probability
  10%, 20% or 40%. For each day holding a jump, the real check
  (:func:`trs_analytics.check.run_check`, its defaults, ``recent="1d"``) is
  made at the end of that day; a jump is caught when the check reports a
  ``failure_rate`` finding for its task. Seeds 0-2, 40 tasks, 40 jumps each.
* ``failures.false_alarms``: clean histories (nothing planted; failure
  probabilities of 1-5%, the generator's default), 100 tasks, 24 or 100 runs
  a day; the check made at 09:30 UTC on each of 7 days after the training
  (so its last 24 hours span two calendar days); every task is a
  group-window. Alarms per 1,000 group-windows, seeds 0-4. Also
  ``every_window``: ``detect_anomalies(metric="failure_rate", origin=...)``
  on the same histories, every judged trailing day of every task.
* ``durations``: ``detect_anomalies``, default options, calendar days, as
  ``tests/metrics/test_metric_anomaly_detection.py`` measures it: run time
  with 3x spikes and drops to 1/3, failure rates with jumps to 50% (60 tasks
  x 35 days x 24 runs, 60 planted task-days, seeds 0-4): recall and
  precision; a clean history (200 tasks x 40 days x 12 runs, seed 11): alarms
  per 1,000 judged group-buckets, for run time and for failure rates (both
  directions). This part runs on the code before this change too (``--label
  main --parts durations``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, machine, save_results

import trs_analytics as ta
import trs_analytics.testing as tt
from trs_analytics.check import run_check

START = datetime(2026, 1, 5, tzinfo=UTC)


class Counts(TypedDict):
    """How many anomalies of each kind :func:`trs_analytics.testing.generate_planted` plants."""

    spikes: int
    failure_jumps: int
    gaps: int
    stuck: int
    slow_runs: int
    late_runs: int


NOTHING: Counts = {
    "spikes": 0,
    "failure_jumps": 0,
    "gaps": 0,
    "stuck": 0,
    "slow_runs": 0,
    "late_runs": 0,
}
WINDOW_RUNS = (24, 100)
JUMPS = (0.10, 0.20, 0.40)


def _failure_findings(states: pl.DataFrame, now: datetime) -> set[str]:
    """The tasks the check flags for their failure rate at ``now``."""
    found = run_check(states, now=now, recent="1d").findings
    return set(found.filter(pl.col("check") == "failure_rate")["subject"])


def failure_recall(seeds: range) -> list[dict[str, Any]]:
    rows = []
    for runs in WINDOW_RUNS:
        for jump in JUMPS:
            caught = planted_total = 0
            started = time.perf_counter()
            for seed in seeds:
                planted = tt.generate_planted(
                    seed=seed,
                    days=22,
                    n_tasks=40,
                    runs_per_day=runs,
                    **Counts({**NOTHING, "failure_jumps": 40}),
                    jump_probability=jump,
                    failure_probability=(0.02, 0.03),
                )
                jumps = planted.truth.filter(kind="failure_jump")
                for (day,), cells in jumps.group_by("bucket"):
                    assert isinstance(day, datetime)
                    flagged = _failure_findings(planted.states, day + timedelta(days=1))
                    caught += sum(task in flagged for task in cells["task_name"])
                    planted_total += cells.height
            rows.append(
                {
                    "window_runs": runs,
                    "base_rate": "2-3%",
                    "jump_to": jump,
                    "planted": planted_total,
                    "caught": caught,
                    "recall": round(caught / planted_total, 4),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _judged_windows(found: pl.DataFrame) -> pl.DataFrame:
    return found.filter(pl.col("runs") >= 5, pl.col("training_size") >= 14)


def false_alarms(seeds: range) -> list[dict[str, Any]]:
    rows = []
    for runs in WINDOW_RUNS:
        alarms = windows = every_alarms = every_windows = 0
        started = time.perf_counter()
        for seed in seeds:
            clean = tt.generate_planted(
                seed=100 + seed, days=22, n_tasks=100, runs_per_day=runs, **NOTHING
            )
            assert clean.truth.is_empty()
            for day in range(15, 22):
                now = START + timedelta(days=day, hours=9, minutes=30)
                alarms += len(_failure_findings(clean.states, now))
                windows += clean.tasks.height
            found = ta.detect_anomalies(
                clean.states, metric="failure_rate", origin=START + timedelta(hours=9.5)
            )
            judged = _judged_windows(found)
            every_alarms += int(judged["anomalous"].sum())
            every_windows += judged.height
        rows.append(
            {
                "window_runs": runs,
                "base_rate": "1-5%",
                "check_windows": windows,
                "check_alarms": alarms,
                "check_per_1000": round(1000 * alarms / windows, 3),
                "every_window_windows": every_windows,
                "every_window_alarms": every_alarms,
                "every_window_per_1000": round(1000 * every_alarms / every_windows, 3),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _recall_precision(
    found: pl.DataFrame, truth: pl.DataFrame, kind: str = "duration_spike"
) -> tuple[int, int, int]:
    flagged = found.filter("anomalous").select("task_name", "bucket")
    planted = truth.filter(kind=kind).select("task_name", "bucket")
    hits = flagged.join(planted, on=["task_name", "bucket"]).height
    return hits, planted.height, flagged.height


def durations(seeds: range) -> dict[str, Any]:
    out: dict[str, Any] = {}
    history = {"days": 35, "n_tasks": 60, "gaps": 0, "stuck": 0, "slow_runs": 2, "late_runs": 2}
    cases = {
        "spikes_3x": ({"spikes": 60, "spike_factor": 3.0, "failure_jumps": 0}, "run_time"),
        "drops_to_one_third": (
            {"spikes": 60, "spike_factor": 1 / 3, "failure_jumps": 0},
            "run_time",
        ),
        "failure_jumps_to_50pct_calendar_days": (
            {"spikes": 0, "failure_jumps": 60},
            "failure_rate",
        ),
    }
    for name, (plant, metric) in cases.items():
        per_seed = []
        kind = "duration_spike" if metric == "run_time" else "failure_jump"
        for seed in seeds:
            planted = tt.generate_planted(seed=seed, **plant, **history)  # type: ignore[arg-type]
            found = ta.detect_anomalies(planted.states, metric=metric)  # type: ignore[arg-type]
            hits, planted_n, flagged_n = _recall_precision(found, planted.truth, kind)
            per_seed.append(
                {
                    "seed": seed,
                    "planted": planted_n,
                    "flagged": flagged_n,
                    "hits": hits,
                    "recall": round(hits / planted_n, 4),
                    "precision": round(hits / max(flagged_n, 1), 4),
                }
            )
        out[name] = per_seed
        print(json.dumps({name: per_seed}), flush=True)
    clean = tt.generate_planted(seed=11, days=40, n_tasks=200, runs_per_day=12, **NOTHING)
    judged = _judged_windows(ta.detect_anomalies(clean.states))
    alarms = int(judged["anomalous"].sum())
    out["clean_run_time"] = {
        "judged": judged.height,
        "alarms": alarms,
        "per_1000": round(1000 * alarms / judged.height, 3),
    }
    rates = ta.detect_anomalies(clean.states, metric="failure_rate", direction="both")
    judged = _judged_windows(rates)
    alarms = int(judged["anomalous"].sum())
    out["clean_failure_rate_both_calendar_days"] = {
        "judged": judged.height,
        "alarms": alarms,
        "per_1000": round(1000 * alarms / judged.height, 3),
    }
    print(json.dumps({k: v for k, v in out.items() if k.startswith("clean")}), flush=True)
    return out


def _commit() -> str:
    source = Path(ta.__file__).resolve().parent.parent
    done = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown (not a git checkout)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="branch", help="the name of the code measured")
    parser.add_argument("--quick", action="store_true", help="one seed of each")
    parser.add_argument("--parts", default="recall,false_alarms,durations")
    parser.add_argument("--commit", help="the commit measured, when the code is no git checkout")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    figures: dict[str, Any] = {
        "code": str(Path(ta.__file__).resolve().parent),
        "commit": args.commit or _commit(),
        "machine": machine(),
    }
    if "recall" in parts:
        figures["failure_recall"] = failure_recall(range(1) if args.quick else range(3))
    if "false_alarms" in parts:
        figures["failure_false_alarms"] = false_alarms(range(1) if args.quick else range(5))
    if "durations" in parts:
        figures["durations"] = durations(range(1) if args.quick else range(5))
    path = RESULTS / "alerts.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    labels = saved.get("labels", {})
    labels[args.label] = labels.get(args.label, {}) | figures
    print(save_results("alerts", {"labels": labels}))


if __name__ == "__main__":
    main()

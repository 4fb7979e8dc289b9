"""Capture the sample dataset: the known workload run on a real Prefect server.

Starts a throwaway Prefect server (SQLite, in a temporary folder), runs the
test workload (``devtools/workload/``) at ``--scale`` (230 task runs per unit),
fetches every state with ``trs_analytics.fetch_states(source="states")``,
checks the frame against the workload's ground truth, and writes:

- ``data/sample_states.parquet`` (via ``trs_analytics.write_states``)
- ``data/sample_ground_truth.json`` (``devtools.workload.GroundTruth``)

Usage::

    uv run python scripts/capture_sample.py            # scale 12: 2,760 task runs
    uv run python scripts/capture_sample.py --scale 2 --out /tmp/sample
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import trs_analytics as ta  # noqa: E402
from devtools.prefect_harness import start_prefect_server  # noqa: E402
from devtools.workload import GroundTruth, run_workload  # noqa: E402


def check_against_truth(frame: pl.DataFrame, truth: GroundTruth) -> list[str]:
    """Return every disagreement between the fetched frame and the ground truth."""
    problems: list[str] = []
    if frame.height != truth.n_states:
        problems.append(f"{frame.height} states fetched, {truth.n_states} expected")
    if frame["id"].n_unique() != frame.height:
        problems.append("state ids are not unique")
    runs = (
        frame.sort("timestamp", "id")
        .group_by("task_run_id", maintain_order=True)
        .agg(pl.col("name"), pl.col("task_name").first(), pl.col("flow_name").first())
    )
    fetched = {row["task_run_id"]: row for row in runs.iter_rows(named=True)}
    missing = set(truth.task_runs) - set(fetched)
    extra = set(fetched) - set(truth.task_runs)
    if missing or extra:
        problems.append(f"{len(missing)} task runs missing, {len(extra)} unexpected")
    for key, expected in truth.task_runs.items():
        row = fetched.get(key)
        if row is None:
            continue
        got = (tuple(row["name"]), row["task_name"], row["flow_name"])
        want = (expected.states, expected.task_name, expected.flow_name)
        if got != want:
            problems.append(f"{key}: fetched {got}, expected {want}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Run the capture; return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=12, help="workload scale (230 task runs each)")
    parser.add_argument("--out", type=Path, default=ROOT / "data", help="output folder")
    args = parser.parse_args(argv)
    # Only the server started here may be read: drop any user Prefect setting.
    for key in [key for key in os.environ if key.startswith("PREFECT_")]:
        del os.environ[key]

    with tempfile.TemporaryDirectory(prefix="trs-capture-") as tmp:
        clock = time.monotonic()
        with start_prefect_server(Path(tmp) / "server") as server:
            print(f"server up at {server.api_url} in {time.monotonic() - clock:.1f} s")
            clock = time.monotonic()
            truth = run_workload(server.api_url, scale=args.scale, out_dir=Path(tmp) / "workload")
            print(
                f"workload: {truth.n_task_runs} task runs, {truth.n_states} states "
                f"in {time.monotonic() - clock:.1f} s (flows {truth.elapsed_seconds:.1f} s)"
            )
            clock = time.monotonic()
            frame = ta.fetch_states(
                server.api_url, since=truth.started_at - timedelta(minutes=1), source="states"
            )
            print(f"fetched {frame.height} states in {time.monotonic() - clock:.1f} s")

    problems = check_against_truth(frame, truth)
    if problems:
        print(f"{len(problems)} disagreements with the ground truth:", file=sys.stderr)
        print("\n".join(problems[:20]), file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    parquet = ta.write_states(frame, args.out / "sample_states.parquet")
    truth_path = args.out / "sample_ground_truth.json"
    truth.dump(truth_path, indent=None)
    for path in (parquet, truth_path):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

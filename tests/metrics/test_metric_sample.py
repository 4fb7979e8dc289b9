"""Retry counts and outcomes on the committed real-server sample equal its ground truth.

``data/sample_states.parquet`` holds the states a real Prefect 3.9.1 server
wrote for a known workload; ``data/sample_ground_truth.json`` says, per task
run, how many attempts the workload made and how it ended.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import trs_analytics as ta

DATA = Path(__file__).resolve().parents[2] / "data"
STATES, TRUTH = DATA / "sample_states.parquet", DATA / "sample_ground_truth.json"

pytestmark = pytest.mark.skipif(
    not (STATES.exists() and TRUTH.exists()), reason="no real-server sample in data/"
)


@pytest.fixture(scope="module")
def truth() -> dict[str, dict[str, Any]]:
    runs: dict[str, dict[str, Any]] = json.loads(TRUTH.read_text(encoding="utf-8"))["task_runs"]
    return runs


def test_attempts_retries_and_final_state_per_run(truth: dict[str, dict[str, Any]]) -> None:
    counts = ta.retry_counts(pl.scan_parquet(STATES)).collect()
    got = {r["task_run_id"]: r for r in counts.iter_rows(named=True)}
    assert set(got) == set(truth)
    wrong = [
        (run_id, t["pattern"])
        for run_id, t in truth.items()
        if (
            got[run_id]["attempts"],
            got[run_id]["retries"],
            got[run_id]["final_type"],
            got[run_id]["final_name"],
        )
        != (t["attempts"], t["retries"], t["final_type"], t["final_name"])
    ]
    assert wrong == []


def test_failure_counts_per_task(truth: dict[str, dict[str, Any]]) -> None:
    expected = (
        pl.DataFrame([{k: t[k] for k in ("task_name", "final_type")} for t in truth.values()])
        .group_by("task_name")
        .agg(failed=(pl.col("final_type").is_in(["FAILED", "CRASHED"])).sum().cast(pl.UInt32))
        .sort("task_name")
    )
    rates = ta.failure_rates(pl.read_parquet(STATES), by="task_name")
    assert rates.select("task_name", "failed").equals(expected)
    assert rates["unfinished"].sum() == 0

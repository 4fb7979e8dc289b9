"""Metrics on states fetched from a real Prefect server equal the workload's ground truth."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import polars as pl
import pytest

import trs_analytics as ta

if TYPE_CHECKING:
    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth


@pytest.fixture(scope="module")
def states(prefect_server: PrefectServer, workload: GroundTruth) -> pl.LazyFrame:
    frame = ta.fetch_states(
        prefect_server.api_url,
        since=workload.started_at - timedelta(minutes=1),
        until=workload.finished_at + timedelta(minutes=1),
    )
    return frame.lazy()


def test_retries_and_final_outcomes_per_task_run(
    states: pl.LazyFrame, workload: GroundTruth
) -> None:
    counts = ta.retry_counts(states)
    assert isinstance(counts, pl.LazyFrame)
    rows = {r["task_run_id"]: r for r in counts.collect().iter_rows(named=True)}
    assert set(rows) == set(workload.task_runs)
    for run_id, truth in workload.task_runs.items():
        row = rows[run_id]
        assert row["attempts"] == truth.attempts, truth
        assert row["retries"] == truth.retries, truth
        assert row["final_type"] == truth.final_type, truth
        assert row["final_name"] == truth.final_name, truth
        failed_before = truth.pattern in {
            "retry_once_then_succeed",
            "retry_twice_then_succeed",
            "await_retry_then_succeed",
        }
        assert row["rescued"] == failed_before, truth


def test_failure_rates_per_task(states: pl.LazyFrame, workload: GroundTruth) -> None:
    rates = ta.failure_rates(states, by="task_name").collect()
    truth = workload.to_frame()
    expected = (
        truth.group_by("task_name")
        .agg(
            runs=pl.len(),
            failed=(pl.col("final_type") == "FAILED").sum(),
            first_failed=((pl.col("final_type") == "FAILED") | (pl.col("retries") > 0)).sum(),
        )
        .sort("task_name")
    )
    got = rates.sort("task_name")
    assert got["task_name"].to_list() == expected["task_name"].to_list()
    assert got["runs"].to_list() == expected["runs"].to_list()
    assert got["failed"].to_list() == expected["failed"].to_list()
    assert got["first_attempt_failed"].to_list() == expected["first_failed"].to_list()
    assert (got["ci_low"] <= got["failure_rate"]).all()
    assert (got["failure_rate"] <= got["ci_high"]).all()

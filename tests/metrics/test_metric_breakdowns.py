"""The narwhals breakdowns give the same values on Polars (eager, lazy) and DuckDB."""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl
import pytest

import trs_analytics as ta
from tests.builders import history, states
from trs_analytics.metrics import _breakdowns as bd


def _states() -> pl.DataFrame:
    def run(
        spec: str, run_id: str, *, message: str | None = None, flow: str | None = "etl"
    ) -> pl.DataFrame:
        return history(spec, task_run_id=run_id, task_name="load", flow_name=flow, message=message)

    return states(
        # a: failed after a retry, in flow etl
        run("Pending@0 Running@1 Running@3 Failed@6", "a", message="no file 'x.csv'"),
        # b: crashed, no flow; c: cancelled; d: completed; e: still running
        run("Pending@0 Running@2 Crashed@9", "b", message="OOM", flow=None),
        run("Pending@61 Cancelled@62", "c", message="by user"),
        run("Pending@61 Running@61.5 Completed@62", "d"),
        run("Pending@70 Running@71", "e"),
        run("Pending@70 Running@71 Failed@72", "f", message="no file 'y.csv'"),
    )


ENGINES = {
    "eager": lambda df: df,
    "lazy": lambda df: df.lazy(),
    "duckdb": lambda df: duckdb.sql("select * from df"),
}


def _collect(result: Any) -> pl.DataFrame:
    if isinstance(result, pl.LazyFrame):
        return result.collect()
    if isinstance(result, pl.DataFrame):
        return result
    frame: pl.DataFrame = result.pl()
    return frame


@pytest.fixture(params=list(ENGINES))
def engine(request: pytest.FixtureRequest) -> Any:
    return ENGINES[request.param]


def test_run_outcomes(engine: Any) -> None:
    df = _states()
    runs = _collect(bd.run_outcomes(engine(df))).sort("task_run_id")
    assert runs["final_type"].to_list() == [
        "FAILED",
        "CRASHED",
        "CANCELLED",
        "COMPLETED",
        "RUNNING",
        "FAILED",
    ]
    assert runs["attempts"].to_list() == [2, 1, 0, 1, 1, 1]
    assert runs["run_seconds"].to_list() == pytest.approx([5.0, 7.0, 0.0, 0.5, 0.0, 1.0])
    assert runs["final_message"].to_list()[:3] == ["no file 'x.csv'", "OOM", "by user"]


def test_outcome_counts_keep_crashed_and_cancelled_apart(engine: Any) -> None:
    counts = _collect(bd.outcome_counts(engine(_states()), by="flow_name"))
    etl = counts.filter(flow_name="etl").row(0, named=True)
    assert (etl["runs"], etl["completed"], etl["failed"], etl["crashed"]) == (5, 1, 2, 0)
    assert (etl["cancelled"], etl["unfinished"]) == (1, 1)
    assert etl["failure_rate"] == pytest.approx(2 / 4)
    none = counts.filter(pl.col("flow_name").is_null()).row(0, named=True)
    assert (none["runs"], none["crashed"], none["failure_rate"]) == (1, 1, 1.0)


def test_error_messages_normalised_and_ranked(engine: Any) -> None:
    errors = _collect(bd.error_messages(engine(_states()), top=1))
    assert errors.select("error", "failures", "runs").rows() == [("no file '…'", 2, 2)]


def test_run_volume_by_minute(engine: Any) -> None:
    volume = _collect(bd.run_volume(engine(_states()), every="1m")).sort("bucket", "final_type")
    assert volume.select(pl.col("bucket").dt.minute(), "final_type", "runs").rows() == [
        (0, "CRASHED", 1),
        (0, "FAILED", 1),
        (1, "CANCELLED", 1),
        (1, "COMPLETED", 1),
        (1, "FAILED", 1),
        (1, "RUNNING", 1),
    ]


def test_duration_trend_and_median(engine: Any) -> None:
    trend = _collect(bd.duration_trend(engine(_states()), every="1m")).sort("bucket")
    assert trend["runs"].to_list() == [2, 3]
    assert trend["p50"].to_list() == pytest.approx([6.0, 0.5])
    assert trend["median"].to_list() == pytest.approx([1.0, 1.0])


def test_slowest_and_failed_runs(engine: Any) -> None:
    slow = _collect(bd.slowest_runs(engine(_states()), top=2))
    assert slow["task_run_id"].to_list() == ["b", "a"]
    failed = _collect(bd.failed_runs(engine(_states()), top=10))
    assert failed["task_run_id"].to_list() == ["f", "c", "b", "a"]


def test_sample_counts_match_retry_counts() -> None:
    states = ta.scan_states("data/sample_states.parquet").collect()
    runs = bd.run_outcomes(states)
    expected = ta.retry_counts(states).select("task_run_id", pl.col("final_type").cast(pl.String))
    joined = runs.join(expected, on="task_run_id", suffix="_oracle")
    assert joined.height == expected.height
    assert (joined["final_type"] == joined["final_type_oracle"]).all()

"""Retry counts per task run, counted from states on every Prefect version's naming."""

from __future__ import annotations

import polars as pl
import pytest

import trs_analytics as ta
from tests.builders import history, states

# spec, attempts, retries, final_type, terminal, first_attempt_failed, rescued
CASES = [
    # Prefect 3.9.1 with a retry delay
    (
        "Pending@0 Running@1 AwaitingRetry@2 Retrying@3 AwaitingRetry@4 Retrying@5 Completed@6",
        3,
        2,
        "COMPLETED",
        True,
        True,
        True,
    ),
    # Prefect 3 with retry_delay_seconds=0: Retrying follows Running directly
    ("Pending@0 Running@1 Retrying@2 Retrying@3 Completed@4", 3, 2, "COMPLETED", True, True, True),
    # Prefect 2.20: AwaitingRetry then Retrying, ends Failed
    ("Pending@0 Running@1 AwaitingRetry@2 Retrying@3 Failed@4", 2, 1, "FAILED", True, True, False),
    # older Prefect 2: "Awaiting Retry" then plain Running
    (
        "Pending@0 Running@1 Awaiting_Retry@2 Running@3 Awaiting_Retry@4 Running@5 Completed@6",
        3,
        2,
        "COMPLETED",
        True,
        True,
        True,
    ),
    # cached: one attempt, a COMPLETED-type end
    ("Pending@0 Running@1 Cached@2", 1, 0, "COMPLETED", True, False, False),
    # succeeded at once
    ("Pending@0 Running@1 Completed@2", 1, 0, "COMPLETED", True, False, False),
    # failed without retries
    ("Pending@0 Running@1 Failed@2", 1, 0, "FAILED", True, True, False),
    # crashed
    ("Pending@0 Running@1 Crashed@2", 1, 0, "CRASHED", True, True, False),
    # a Failed state written between attempts (some servers), then completed: rescued
    ("Pending@0 Running@1 Failed@2 Running@3 Completed@4", 2, 1, "COMPLETED", True, True, True),
    # cancelled before it ran: no attempt, retries is 0 not -1
    ("Pending@0 Cancelled@1", 0, 0, "CANCELLED", True, False, False),
    # still running after a retry: not terminal, not rescued
    ("Pending@0 Running@1 AwaitingRetry@2 Retrying@3", 2, 1, "RUNNING", False, True, False),
    # only scheduled so far
    ("Scheduled@0 Late@5", 0, 0, "SCHEDULED", False, False, False),
]


@pytest.mark.parametrize(
    ("spec", "attempts", "retries", "final_type", "terminal", "first_failed", "rescued"), CASES
)
def test_retry_counts(
    spec: str,
    attempts: int,
    retries: int,
    final_type: str,
    terminal: bool,
    first_failed: bool,
    rescued: bool,
) -> None:
    out = ta.retry_counts(states(history(spec, task_run_id="r")))
    assert out.select(
        "attempts", "retries", "final_type", "terminal", "first_attempt_failed", "rescued"
    ).rows() == [(attempts, retries, final_type, terminal, first_failed, rescued)]


def test_retry_counts_ignore_run_count() -> None:
    frame = states(
        history("Pending@0 Running@1 Retrying@2 Completed@3", task_run_id="r")
    ).with_columns(run_count=pl.lit(7, dtype=pl.Int64))
    assert ta.retry_counts(frame)["retries"].to_list() == [1]


def test_retry_counts_columns_and_order() -> None:
    frame = states(
        history("Pending@0 Running@1 Completed@2", task_run_id="b", task_name="extract"),
        history("Pending@0 Running@1 Failed@3", task_run_id="a", task_name="load"),
    )
    out = ta.retry_counts(frame)
    assert out["task_run_id"].to_list() == ["a", "b"]
    assert out["task_name"].to_list() == ["load", "extract"]
    assert out["final_name"].to_list() == ["Failed", "Completed"]
    assert out.schema["final_type"] == ta.STATES_SCHEMA["type"]
    assert {"task_run_id", "task_name", "attempts", "retries", "final_type", "rescued"} <= set(
        out.columns
    )


def test_retry_counts_duplicated_states_count_once() -> None:
    frame = states(history("Pending@0 Running@1 Retrying@2 Completed@3", task_run_id="r"))
    assert ta.retry_counts(pl.concat([frame, frame, frame]))["attempts"].to_list() == [2]


def test_retry_counts_lazy() -> None:
    frame = states(history("Pending@0 Running@1 Retrying@2 Completed@3", task_run_id="r"))
    out = ta.retry_counts(frame.lazy())
    assert isinstance(out, pl.LazyFrame)
    assert out.collect().equals(ta.retry_counts(frame))


def test_retry_distribution_per_task() -> None:
    frame = states(
        history("Running@0 Completed@1", task_run_id="a1", task_name="a"),
        history("Running@0 Retrying@1 Completed@2", task_run_id="a2", task_name="a"),
        history("Running@0 Retrying@1 Retrying@2 Failed@3", task_run_id="a3", task_name="a"),
        history("Running@0 Completed@1", task_run_id="a4", task_name="a"),
        history("Running@0 Retrying@1", task_run_id="a5", task_name="a"),  # unfinished: left out
        history("Running@0 Retrying@1 Completed@2", task_run_id="b1", task_name="b"),
    )
    out = ta.retry_distribution(frame)
    assert out.rows() == [
        ("a", 0, 2, 0.5),
        ("a", 1, 1, 0.25),
        ("a", 2, 1, 0.25),
        ("b", 1, 1, 1.0),
    ]


def test_retry_distribution_overall_and_by_tags() -> None:
    frame = states(
        history("Running@0 Completed@1", task_run_id="x", tags=["etl", "hot"]),
        history("Running@0 Retrying@1 Completed@2", task_run_id="y", tags=["etl"]),
        history("Running@0 Failed@1", task_run_id="z", tags=[]),
    )
    assert ta.retry_distribution(frame, by=None).rows() == [(0, 2, 2 / 3), (1, 1, 1 / 3)]
    by_tag = ta.retry_distribution(frame, by="tags")
    assert by_tag.rows() == [
        ("etl", 0, 1, 0.5),
        ("etl", 1, 1, 0.5),
        ("hot", 0, 1, 1.0),
        (None, 0, 1, 1.0),
    ]


@pytest.mark.parametrize("engine", ["polars", "polars-lazy", "duckdb"])
def test_copies_of_states_with_and_without_an_id_count_once(engine: str) -> None:
    """Metrics that keep copies count like those that drop them: with count(DISTINCT id)
    (DuckDB, a Polars DataFrame) and with first-seen marks (a Polars LazyFrame)."""
    import duckdb

    clean = states(
        history("Pending@0 Running@1 Awaiting_Retry@2 Retrying@3 Failed@4", task_run_id="a"),
        history("Pending@0 Running@1 Failed@2 Running@3 Completed@5", task_run_id="b"),
    ).with_columns(  # run a's states come without an id (de-duplicated by content)
        id=pl.when(pl.col("task_run_id") == "b").then(pl.col("id"))
    )
    messy = pl.concat([clean, clean, clean.head(3)]).reverse()

    def on_engine(frame: pl.DataFrame) -> object:
        if engine == "polars":
            return frame
        if engine == "polars-lazy":
            return frame.lazy()
        return duckdb.from_arrow(frame.to_arrow())

    for metric in (ta.retry_counts, ta.run_time, ta.time_in_state, ta.failure_rates):
        got = ta.to_polars(metric(on_engine(messy)))
        want = ta.to_polars(metric(on_engine(clean)))
        assert got.sort(got.columns[0]).equals(want.sort(want.columns[0])), metric.__name__
    runs = ta.to_polars(ta.retry_counts(on_engine(messy))).sort("task_run_id")
    assert runs["attempts"].to_list() == [2, 2]
    assert runs["rescued"].to_list() == [False, True]

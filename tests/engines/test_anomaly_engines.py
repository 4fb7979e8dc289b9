"""detect_anomalies gives the same answer on Polars (eager, lazy), DuckDB and PySpark.

Its own cross-engine test rather than rows of ``cases.py``: the training
window is a self-join per group, which Spark answers in tens of seconds on a
shared 2-core machine, so one small planted history (2 tasks x 17 days x 4
runs a day, one task with a null name, both paths: durations and failure
rates, whose beta-binomial tail sums are floats to 1e-9) stands for the
table of generated histories.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.testing as tt
from tests.engines.native import KIND_OF, assert_same, kind
from trs_analytics.metrics._frames import in_group_sets

if TYPE_CHECKING:
    from collections.abc import Callable

LOOSE: dict[str, Any] = {"every": "1d", "training": "7d", "min_training": 4, "min_runs": 2}

CALLS: dict[str, Callable[[Any], Any]] = {
    "run_time-by-task": lambda s: ta.detect_anomalies(s, **LOOSE),
    "failure_rate-by-flow-both": lambda s: ta.detect_anomalies(
        s, metric="failure_rate", by="flow_name", direction="both", z=2.0, **LOOSE
    ),
    # the default direction of failure rates: one side, so the score is that side's gap
    "failure_rate-by-task-spike": lambda s: ta.detect_anomalies(
        s, metric="failure_rate", z=2.0, **LOOSE
    ),
    # one direction by flow: one gap, which Spark's greatest() refused (it needs two columns)
    "failure_rate-by-flow-up": lambda s: ta.detect_anomalies(
        s, metric="failure_rate", by="flow_name", z=2.0, **LOOSE
    ),
    # trailing windows (check's): buckets end at a time that is no day boundary, default z
    "failure_rate-trailing": lambda s: ta.detect_anomalies(
        s, metric="failure_rate", origin=datetime(2026, 1, 19, 22, 30, tzinfo=UTC), **LOOSE
    ),
}


@pytest.fixture(scope="module")
def planted() -> pl.DataFrame:
    history = tt.generate_planted(
        seed=5,
        days=17,
        n_tasks=2,
        runs_per_day=4,
        warmup_days=3,
        spikes=2,
        failure_jumps=2,
        jump_probability=0.9,
    )
    names = history.tasks["task_name"]
    # the second task has no name: a null group must be judged like any other
    return history.states.with_columns(
        task_name=pl.when(pl.col("task_name") == names[1]).then(None).otherwise("task_name")
    )


@pytest.mark.parametrize("call", sorted(CALLS))
def test_engines_agree(
    call: str, planted: pl.DataFrame, engine: str, on_engine: Callable[[pl.DataFrame], Any]
) -> None:
    reference = CALLS[call](planted)
    assert reference["anomalous"].sum() > 0  # the comparison covers flagged rows
    assert reference["training_size"].max() > 0
    result = CALLS[call](on_engine(planted))
    assert kind(result) == KIND_OF[engine]
    assert_same(result, reference, ordered=True)


#: A time inside the planted history's 15th day: the buckets that end after it are judged.
SINCE = datetime(2026, 1, 15, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize("engine", ["polars-lazy", "duckdb", "spark"], indirect=True)
@pytest.mark.parametrize("call", ["run_time-by-task", "failure_rate-by-flow-both"])
def test_since_gives_the_rows_of_the_buckets_that_end_after_it(
    call: str, planted: pl.DataFrame, engine: str, on_engine: Callable[[pl.DataFrame], Any]
) -> None:
    """``since`` judges the recent buckets with all their training: the same rows as judging
    every bucket and keeping those that end after it (what ``trs-analytics check`` reads)."""
    everything = CALLS[call](planted)
    day = pl.duration(days=1)
    expected = everything.filter(pl.col("bucket") + day > SINCE)
    assert 0 < expected.height < everything.height
    assert expected["anomalous"].sum() > 0
    found = _with_since(call, on_engine(planted))
    assert_same(found, expected, ordered=True)


def _with_since(call: str, states: Any) -> Any:
    if call == "run_time-by-task":
        return ta.detect_anomalies(states, since=SINCE, **LOOSE)
    return ta.detect_anomalies(
        states, metric="failure_rate", by="flow_name", direction="both", z=2.0, since=SINCE, **LOOSE
    )


@pytest.mark.parametrize("engine", ["polars-lazy", "duckdb", "spark"], indirect=True)
@pytest.mark.parametrize("call", ["run_time-by-task", "failure_rate-by-task-spike"])
@pytest.mark.parametrize("parts", [2, 3])
def test_judged_a_set_of_tasks_at_a_time_the_rows_are_the_whole(
    call: str,
    parts: int,
    planted: pl.DataFrame,
    engine: str,
    on_engine: Callable[[pl.DataFrame], Any],
) -> None:
    """The report and the check compute the anomalies a set of tasks at a time: the same
    rows, in the same order, the null task among them."""
    whole = CALLS[call](planted)
    assert whole["task_name"].null_count() > 0
    pieces = in_group_sets(on_engine(planted), "task_name", parts, CALLS[call])
    assert_same(pieces, whole, ordered=True)

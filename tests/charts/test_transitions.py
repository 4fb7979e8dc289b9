from __future__ import annotations

import polars as pl
import pytest

import trs_analytics.testing as tt
from tests.builders import history, states
from tests.charts.datasets import rows_of
from trs_analytics.charts import transition_chart, transition_counts
from trs_analytics.exceptions import ConfigurationError


@pytest.fixture(name="states")
def states_fixture() -> pl.DataFrame:
    a = history("Pending@0 Running@1 AwaitingRetry@2 Retrying@3 Completed@4", task_run_id="a")
    b = history("Pending@0 Running@1 Failed@2", task_run_id="b")
    return states(a, b, b.tail(1))  # a duplicated row is not a transition


def test_counts_by_type(states: pl.DataFrame) -> None:
    counts = {
        (r["from"], r["to"]): (r["count"], r["share"])
        for r in transition_counts(states).iter_rows(named=True)
    }
    assert counts == {
        ("PENDING", "RUNNING"): (2, 1.0),
        ("RUNNING", "SCHEDULED"): (1, 1 / 3),
        ("SCHEDULED", "RUNNING"): (1, 1.0),
        ("RUNNING", "COMPLETED"): (1, 1 / 3),
        ("RUNNING", "FAILED"): (1, 1 / 3),
    }


def test_counts_by_name_and_axis_order(states: pl.DataFrame) -> None:
    chart = transition_chart(states, level="name")
    spec = chart.to_dict()
    cells, labels = spec["layer"]
    assert cells["mark"]["type"] == "rect"
    assert cells["encoding"]["color"]["field"] == "count"
    assert labels["encoding"]["text"]["field"] == "count"
    # rows follow the lifecycle: scheduled, pending, running (first attempt before retries)
    assert cells["encoding"]["y"]["sort"] == ["AwaitingRetry", "Pending", "Running", "Retrying"]
    assert cells["encoding"]["x"]["sort"] == [
        "AwaitingRetry",
        "Running",
        "Retrying",
        "Completed",
        "Failed",
    ]
    pairs = {(r["from"], r["to"]): r["count"] for r in rows_of(chart)}
    assert pairs[("Running", "AwaitingRetry")] == 1
    assert pairs[("Pending", "Running")] == 2
    assert len(pairs) == 5


def test_bad_level(states: pl.DataFrame) -> None:
    with pytest.raises(ConfigurationError, match="level='state'"):
        transition_counts(states, level="state")  # type: ignore[arg-type]


@pytest.mark.parametrize("level", ["type", "name"])
def test_counting_a_set_of_runs_at_a_time_gives_the_same_counts(level: str) -> None:
    generated = tt.generate_states(600, seed=11)
    doubled = pl.concat([generated, generated.head(300)])  # copies of states, as an export overlap
    whole = transition_counts(doubled.lazy(), level=level)  # type: ignore[arg-type]
    in_sets = transition_counts(doubled.lazy(), level=level, parts=5)  # type: ignore[arg-type]
    assert in_sets.select("from", "to", "count").equals(whole.select("from", "to", "count"))
    for column in ("share", "from_order", "to_order"):
        assert in_sets[column].to_list() == pytest.approx(whole[column].to_list(), rel=1e-12)

from __future__ import annotations

import pytest

from trs_analytics.charts import transition_chart, transition_counts
from trs_analytics.exceptions import ConfigurationError


@pytest.fixture
def states(make_states):
    rows = [
        ("a", "PENDING", "Pending", 0),
        ("a", "RUNNING", "Running", 1),
        ("a", "SCHEDULED", "AwaitingRetry", 2),
        ("a", "RUNNING", "Retrying", 3),
        ("a", "COMPLETED", "Completed", 4),
        ("b", "PENDING", "Pending", 0),
        ("b", "RUNNING", "Running", 1),
        ("b", "FAILED", "Failed", 2),
        ("b", "FAILED", "Failed", 2),  # a duplicated row is not a transition
    ]
    frame = make_states(rows)
    return frame.with_columns(id=frame["id"].set(frame["id"].is_in(["7", "8"]), "7"))


def test_counts_by_type(states):
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


def test_counts_by_name_and_axis_order(states, rows_of):
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


def test_bad_level(states):
    with pytest.raises(ConfigurationError, match="level='state'"):
        transition_counts(states, level="state")  # type: ignore[arg-type]

from __future__ import annotations

import pytest

from trs_analytics.charts import STATE_COLORS, flow_run_segments, pick_flow_run, timeline_chart
from trs_analytics.exceptions import ConfigurationError


@pytest.fixture
def states(make_states):
    rows = [
        # flow run f1: one task run retried once after a 4 s wait, one clean
        ("a", "PENDING", "Pending", 0),
        ("a", "RUNNING", "Running", 1),
        ("a", "SCHEDULED", "AwaitingRetry", 3),
        ("a", "RUNNING", "Retrying", 7),
        ("a", "COMPLETED", "Completed", 9),
        ("b", "PENDING", "Pending", 2),
        ("b", "RUNNING", "Running", 2.5),
        ("b", "FAILED", "Failed", 4),
        # flow run f2: no retry, later
        ("c", "RUNNING", "Running", 100),
        ("c", "COMPLETED", "Completed", 101),
    ]
    flows = {"a": "f1", "b": "f1", "c": "f2"}
    names = {"a": "load-1", "b": "check-2", "c": "late-3"}
    return make_states(rows, flow_run_id=flows, task_run_name=names, flow_name="nightly")


def test_segments_give_attempts_and_waits(states):
    seg = flow_run_segments(states, "f1").filter(task_run_id="a")
    assert seg["name"].to_list() == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    assert seg["attempt"].to_list() == [1, 1, 1, 2, 2]
    assert seg["seconds"].to_list() == [1.0, 2.0, 4.0, 2.0, None]
    assert seg["terminal"].to_list() == [False, False, False, False, True]


def test_pick_flow_run_prefers_retries(states):
    assert pick_flow_run(states) == "f1"


def test_chart_bars_per_state_coloured_by_type(states, rows_of):
    chart = timeline_chart(states, "f1")
    spec = chart.to_dict()
    bars, ends = spec["layer"]
    assert bars["mark"]["type"] == "bar"
    assert (bars["encoding"]["x"]["field"], bars["encoding"]["x2"]["field"]) == ("x0", "x1")
    assert bars["encoding"]["x"]["title"].startswith("seconds since the flow run's first")
    y = bars["encoding"]["y"]
    assert (y["field"], y["sort"]) == ("task_run_id", ["a", "b"])  # keyed by id, by start
    assert y["axis"]["labelExpr"] == '{"a": "load-1", "b": "check-2"}[datum.value]'
    colour = bars["encoding"]["color"]
    assert colour["field"] == "type"
    assert dict(zip(colour["scale"]["domain"], colour["scale"]["range"], strict=True)) == {
        t: STATE_COLORS[t] for t in ("SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED")
    }
    assert ends["mark"]["type"] == "point"
    assert spec["title"]["text"] == "nightly — timeline"
    rows = rows_of(chart)
    assert len(rows) == 8
    wait = next(r for r in rows if r["name"] == "AwaitingRetry")
    assert (wait["x0"], wait["x1"], wait["from_utc"]) == (3.0, 7.0, "00:00:03.000")
    assert sum(r["type"] == "RUNNING" for r in rows) == 3  # three attempts drawn


def test_unknown_flow_run(states):
    with pytest.raises(ConfigurationError, match="flow run 'nope' has no states"):
        timeline_chart(states, "nope")


def test_rows_keyed_by_id_when_names_collide(make_states):
    rows = [(r, "RUNNING", "Running", i) for i, r in enumerate("xyz")]
    rows += [(r, "COMPLETED", "Completed", i + 1) for i, r in enumerate("xyz")]
    # Prefect's 3-character suffixes repeat: two runs named alike must stay two rows
    states = make_states(
        rows, flow_run_id="f", task_run_name={"x": "t-1a2", "y": "t-1a2", "z": "u"}
    )
    y = timeline_chart(states, "f").to_dict()["layer"][0]["encoding"]["y"]
    assert y["sort"] == ["x", "y", "z"]


def test_height_is_capped(make_states):
    rows = [(f"r{i:03}", "RUNNING", "Running", i) for i in range(121)]
    rows += [(f"r{i:03}", "COMPLETED", "Completed", i + 1) for i in range(121)]
    rows += [("r120", "RUNNING", "Retrying", 200), ("r120", "COMPLETED", "Completed", 201)]
    states = make_states(rows, flow_run_id="f")
    spec = timeline_chart(states, "f", max_rows=40).to_dict()
    y = spec["layer"][0]["encoding"]["y"]
    assert len(y["sort"]) == 40
    assert "r120" in y["sort"]  # the retried run is kept
    assert "81 more task runs not shown" in spec["title"]["subtitle"][1]

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.builders import history, states
from tests.charts.datasets import rows_of
from trs_analytics.charts import STATE_COLORS, flow_run_segments, pick_flow_run, timeline_chart
from trs_analytics.exceptions import ConfigurationError

if TYPE_CHECKING:
    import polars as pl


@pytest.fixture(name="states")
def states_fixture() -> pl.DataFrame:
    nightly = {"flow_name": "nightly"}
    return states(
        # flow run f1: one task run retried once after a 4 s wait, one clean
        history(
            "Pending@0 Running@1 AwaitingRetry@3 Retrying@7 Completed@9",
            task_run_id="a",
            flow_run_id="f1",
            task_run_name="load-1",
            **nightly,
        ),
        history(
            "Pending@2 Running@2.5 Failed@4",
            task_run_id="b",
            flow_run_id="f1",
            task_run_name="check-2",
            **nightly,
        ),
        # flow run f2: no retry, later
        history(
            "Running@100 Completed@101",
            task_run_id="c",
            flow_run_id="f2",
            task_run_name="late-3",
            **nightly,
        ),
    )


def test_segments_give_attempts_and_waits(states: pl.DataFrame) -> None:
    seg = flow_run_segments(states, "f1").filter(task_run_id="a")
    assert seg["name"].to_list() == ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"]
    assert seg["attempt"].to_list() == [1, 1, 1, 2, 2]
    assert seg["seconds"].to_list() == [1.0, 2.0, 4.0, 2.0, None]
    assert seg["terminal"].to_list() == [False, False, False, False, True]


def test_pick_flow_run_prefers_retries(states: pl.DataFrame) -> None:
    assert pick_flow_run(states) == "f1"


def test_chart_bars_per_state_coloured_by_type(states: pl.DataFrame) -> None:
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


def test_unknown_flow_run(states: pl.DataFrame) -> None:
    with pytest.raises(ConfigurationError, match="flow run 'nope' has no states"):
        timeline_chart(states, "nope")


def test_rows_keyed_by_id_when_names_collide() -> None:
    # Prefect's 3-character suffixes repeat: two runs named alike must stay two rows
    names = {"x": "t-1a2", "y": "t-1a2", "z": "u"}
    frame = states(
        *(
            history(
                f"Running@{i} Completed@{i + 1}",
                task_run_id=r,
                flow_run_id="f",
                task_run_name=names[r],
            )
            for i, r in enumerate("xyz")
        )
    )
    y = timeline_chart(frame, "f").to_dict()["layer"][0]["encoding"]["y"]
    assert y["sort"] == ["x", "y", "z"]


def test_height_is_capped() -> None:
    runs = [
        history(f"Running@{i} Completed@{i + 1}", task_run_id=f"r{i:03}", flow_run_id="f")
        for i in range(120)
    ]
    retried = history(
        "Running@120 Completed@121 Retrying@200 Completed@201", task_run_id="r120", flow_run_id="f"
    )
    spec = timeline_chart(states(*runs, retried), "f", max_rows=40).to_dict()
    y = spec["layer"][0]["encoding"]["y"]
    assert len(y["sort"]) == 40
    assert "r120" in y["sort"]  # the retried run is kept
    assert "81 more task runs not shown" in spec["title"]["subtitle"][1]

from __future__ import annotations

import narwhals as nw
import polars as pl
import pytest

from trs_analytics.charts import STATE_COLORS, failure_rate_chart, failure_rate_series
from trs_analytics.metrics import wilson

DAY = 86_400.0


def run(run_id: str, path: list[str], start: float) -> list[tuple[str, str, str, float]]:
    kinds = {
        "Running": "RUNNING",
        "Retrying": "RUNNING",
        "Completed": "COMPLETED",
        "Failed": "FAILED",
    }
    return [(run_id, kinds[name], name, start + i) for i, name in enumerate(path)]


@pytest.fixture
def states(make_states):
    rows = (
        # day 1, etl: one failure, one rescued by a retry, two clean -> 1/4 final, 2/4 first attempt
        run("e1", ["Running", "Failed"], 0)
        + run("e2", ["Running", "Retrying", "Completed"], 10)
        + run("e3", ["Running", "Completed"], 20)
        + run("e4", ["Running", "Completed"], 30)
        # day 2, etl: two clean runs
        + run("e5", ["Running", "Completed"], DAY + 5)
        + run("e6", ["Running", "Completed"], DAY + 6)
        # day 1, load: clean, still running (not counted)
        + run("l1", ["Running", "Completed"], 40)
        + run("l2", ["Running"], 50)
    )
    tasks = dict.fromkeys(("e1", "e2", "e3", "e4", "e5", "e6"), "etl") | {
        "l1": "load",
        "l2": "load",
    }
    return make_states(rows, task_name=tasks)


def test_series_values_and_wilson_band(states):
    series = failure_rate_series(states, every="1d")
    assert set(series["group"]) == {"etl"}  # load never failed: no panel
    day1 = series.filter(pl.col("bucket").dt.day() == 1).sort("rate")
    assert day1["rate"].to_list() == ["final", "first attempt"]
    assert day1["value"].to_list() == [0.25, 0.5]
    assert day1["runs"].to_list() == [4, 4]
    assert day1["failed"].to_list() == [1, 2]
    low, high = wilson(nw.col("x"), nw.col("n"))
    expected = nw.from_native(pl.DataFrame({"x": [1, 2], "n": [4, 4]})).select(low=low, high=high)
    assert day1["low"].to_list() == pytest.approx(expected["low"].to_list())
    assert day1["high"].to_list() == pytest.approx(expected["high"].to_list())
    day2 = series.filter(pl.col("bucket").dt.day() == 2)
    assert day2["value"].to_list() == [0.0, 0.0]


def test_chart_layers_and_encodings(states, rows_of):
    chart = failure_rate_chart(states, every="1d")
    spec = chart.to_dict()
    assert spec["facet"]["field"] == "group"
    # every group has several buckets: no single-bucket layers (empty, Vega would warn)
    assert [layer["mark"]["type"] for layer in spec["spec"]["layer"]] == [
        "area",
        "line",
        "line",
        "point",
    ]
    # one bucket per group: its interval as a bar (whiskers) and a note
    layers = failure_rate_chart(states, every="1w").to_dict()["spec"]["layer"]
    assert [layer["mark"]["type"] for layer in layers] == [
        "area",
        "rule",
        "line",
        "line",
        "point",
        "text",
    ]
    band, whiskers, first, line, points, _notes = layers
    assert (whiskers["encoding"]["y"]["field"], whiskers["encoding"]["y2"]["field"]) == (
        "low",
        "high",
    )
    assert points["mark"]["opacity"] > 0.5  # a lone bucket has no line: its point must show
    assert first["transform"] == [{"filter": "(datum.rate === 'first attempt')"}]
    assert line["transform"] == [{"filter": "(datum.rate === 'final')"}]  # drawn on top
    assert (band["encoding"]["y"]["field"], band["encoding"]["y2"]["field"]) == ("low", "high")
    assert band["encoding"]["y"]["axis"]["format"] == "%"
    assert line["encoding"]["y"]["field"] == "value"
    assert line["encoding"]["strokeDash"]["field"] == "rate"
    colour = band["encoding"]["color"]["scale"]
    assert colour["domain"] == ["final", "first attempt"]
    assert colour["range"][0] == STATE_COLORS["FAILED"]
    assert {t["field"] for t in points["encoding"]["tooltip"]} >= {"value", "low", "high", "runs"}
    assert len(rows_of(chart)) == 4  # 2 buckets x 2 rates


def test_top_groups_are_those_with_most_failures(make_states):
    rows, tasks = [], {}
    for task, failures in (("a", 3), ("b", 1), ("c", 2)):
        for i in range(4):
            rid = f"{task}{i}"
            tasks[rid] = task
            end = ("FAILED", "Failed") if i < failures else ("COMPLETED", "Completed")
            rows += [(rid, "RUNNING", "Running", i), (rid, *end, i + 1)]
    states = make_states(rows, task_name=tasks)
    series = failure_rate_series(states, every="1d", top=2)
    assert series["group"].unique(maintain_order=True).to_list() == ["a", "c"]


def test_overall_chart_is_one_panel(states, rows_of):
    chart = failure_rate_chart(states, by=None, every="1d")
    assert type(chart).__name__ == "LayerChart"
    assert {r["group"] for r in rows_of(chart)} == {"all runs"}


def test_one_bucket_still_draws_visible_points(make_states, rows_of):
    # probe failed 24 of 24 within seconds: one bucket, so no line and no band can be drawn
    rows = []
    for i in range(24):
        rows += [(f"p{i}", "RUNNING", "Running", i), (f"p{i}", "FAILED", "Failed", i + 0.5)]
    states = make_states(rows, task_name="probe")
    chart = failure_rate_chart(states)
    layers = chart.to_dict()["spec"]["layer"]
    marks = {layer["mark"]["type"]: layer["mark"] for layer in layers}
    assert marks["point"]["opacity"] > 0.5
    assert "rule" in marks  # the Wilson interval as a bar, visible with one bucket
    assert all(r["alone"] for r in rows_of(chart))
    final = [r for r in rows_of(chart) if r["rate"] == "final"]
    assert [(r["group"], r["value"], r["failed"], r["runs"]) for r in final] == [
        ("probe", 1.0, 24, 24)
    ]


def test_runs_without_flow_are_their_own_group(make_states):
    rows = [("a", "RUNNING", "Running", 0), ("a", "FAILED", "Failed", 1)]
    rows += [("b", "RUNNING", "Running", 0), ("b", "FAILED", "Failed", 1)]
    states = make_states(rows, flow_name={"a": "etl", "b": None})
    series = failure_rate_series(states, by="flow_name", every="1d")
    assert set(series["group"]) == {"etl", "(no flow)"}


def test_short_span_axis_has_no_date(make_states):
    rows = [(f"r{i}", "RUNNING", "Running", i) for i in range(45)]
    rows += [(f"r{i}", "FAILED", "Failed", i + 0.5) for i in range(45)]
    states = make_states(rows, task_name="probe")
    x = failure_rate_chart(states, every="10s").to_dict()["spec"]["layer"][0]["encoding"]["x"]
    assert x["axis"]["format"] == "%H:%M:%S"
    assert x["scale"]["type"] == "utc"

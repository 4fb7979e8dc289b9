from __future__ import annotations

from typing import Any

import narwhals as nw
import polars as pl
import pytest

from tests.builders import history, states
from tests.charts.datasets import rows_of
from trs_analytics.charts import STATE_COLORS, failure_rate_chart, failure_rate_series
from trs_analytics.metrics import wilson

DAY = 86_400.0


def run(run_id: str, path: list[str], start: float, **columns: Any) -> pl.DataFrame:
    """The states of ``path``, a second apart from ``start`` on."""
    return history(
        [(name, start + i) for i, name in enumerate(path)], task_run_id=run_id, **columns
    )


@pytest.fixture(name="states")
def states_fixture() -> pl.DataFrame:
    return states(
        # day 1, etl: one failure, one rescued by a retry, two clean -> 1/4 final, 2/4 first attempt
        run("e1", ["Running", "Failed"], 0, task_name="etl"),
        run("e2", ["Running", "Retrying", "Completed"], 10, task_name="etl"),
        run("e3", ["Running", "Completed"], 20, task_name="etl"),
        run("e4", ["Running", "Completed"], 30, task_name="etl"),
        # day 2, etl: two clean runs
        run("e5", ["Running", "Completed"], DAY + 5, task_name="etl"),
        run("e6", ["Running", "Completed"], DAY + 6, task_name="etl"),
        # day 1, load: clean, still running (not counted)
        run("l1", ["Running", "Completed"], 40, task_name="load"),
        run("l2", ["Running"], 50, task_name="load"),
    )


def test_series_values_and_wilson_band(states: pl.DataFrame) -> None:
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


def test_chart_layers_and_encodings(states: pl.DataFrame) -> None:
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


def test_top_groups_are_those_with_most_failures() -> None:
    runs = [
        run(f"{task}{i}", ["Running", "Failed" if i < failures else "Completed"], i, task_name=task)
        for task, failures in (("a", 3), ("b", 1), ("c", 2))
        for i in range(4)
    ]
    series = failure_rate_series(states(*runs), every="1d", top=2)
    assert series["group"].unique(maintain_order=True).to_list() == ["a", "c"]


def test_overall_chart_is_one_panel(states: pl.DataFrame) -> None:
    chart = failure_rate_chart(states, by=None, every="1d")
    assert type(chart).__name__ == "LayerChart"
    assert {r["group"] for r in rows_of(chart)} == {"all runs"}


def test_one_bucket_still_draws_visible_points() -> None:
    # probe failed 24 of 24 within half a second: one bucket (of 1 s, the shortest), so no
    # line and no band can be drawn
    probes = [
        history(f"Running@{i / 50} Failed@{i / 50 + 0.01}", task_run_id=f"p{i}", task_name="probe")
        for i in range(24)
    ]
    chart = failure_rate_chart(states(*probes))
    layers = chart.to_dict()["spec"]["layer"]
    marks = {layer["mark"]["type"]: layer["mark"] for layer in layers}
    assert marks["point"]["opacity"] > 0.5
    assert "rule" in marks  # the Wilson interval as a bar, visible with one bucket
    assert all(r["alone"] for r in rows_of(chart))
    final = [r for r in rows_of(chart) if r["rate"] == "final"]
    assert [(r["group"], r["value"], r["failed"], r["runs"]) for r in final] == [
        ("probe", 1.0, 24, 24)
    ]


def test_runs_without_flow_are_their_own_group() -> None:
    frame = states(
        history("Running@0 Failed@1", task_run_id="a", flow_name="etl"),
        history("Running@0 Failed@1", task_run_id="b", flow_name=None),
    )
    series = failure_rate_series(frame, by="flow_name", every="1d")
    assert set(series["group"]) == {"etl", "(no flow)"}


def test_short_span_axis_has_no_date() -> None:
    probes = [
        history(f"Running@{i} Failed@{i + 0.5}", task_run_id=f"r{i}", task_name="probe")
        for i in range(45)
    ]
    x = failure_rate_chart(states(*probes), every="10s").to_dict()["spec"]["layer"][0]["encoding"][
        "x"
    ]
    assert x["axis"]["format"] == "%H:%M:%S"
    assert x["scale"]["type"] == "utc"

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import trs_analytics as ta
from tests.builders import history, states
from tests.charts.datasets import rows_of
from trs_analytics.charts import STATE_COLORS, duration_chart, duration_stats
from trs_analytics.exceptions import ConfigurationError

if TYPE_CHECKING:
    import polars as pl


def run(run_id: str, task: str, seconds: float) -> pl.DataFrame:
    """Pending at 0, running at 1 for ``seconds``, then completed."""
    return history(
        f"Pending@0 Running@1 Completed@{1 + seconds}", task_run_id=run_id, task_name=task
    )


@pytest.fixture(name="states")
def states_fixture() -> pl.DataFrame:
    slow = [run(f"a{i}", "slow", s) for i, s in enumerate([1, 2, 3, 4, 10])]
    return states(*slow, run("b0", "fast", 0.0005), run("b1", "fast", 0.5))


def test_stats_are_quantiles_in_seconds(states: pl.DataFrame) -> None:
    stats = duration_stats(states).rows(named=True)
    assert [r["task_name"] for r in stats] == ["slow", "fast"]  # by p95, longest first
    slow = stats[0]
    assert slow["count"] == 5
    assert (slow["min"], slow["p25"], slow["p50"], slow["p75"], slow["max"]) == (1, 2, 3, 4, 10)
    assert slow["p95"] == pytest.approx(4 + 0.8 * 6)  # linear between 4 and 10


def test_chart_draws_box_median_and_p95(states: pl.DataFrame) -> None:
    chart = duration_chart(states)
    spec = chart.to_dict()
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["rule", "bar", "tick", "point"]
    rule, bar, tick, point = spec["layer"]
    assert (rule["encoding"]["x"]["field"], rule["encoding"]["x2"]["field"]) == ("min_x", "max_x")
    assert (bar["encoding"]["x"]["field"], bar["encoding"]["x2"]["field"]) == ("p25_x", "p75_x")
    assert tick["encoding"]["x"]["field"] == "p50_x"
    assert point["encoding"]["x"]["field"] == "p95_x"
    assert point["mark"]["color"] == STATE_COLORS["FAILED"]
    assert rule["encoding"]["x"]["scale"]["type"] == "log"
    assert spec["layer"][0]["encoding"]["y"]["sort"] == ["slow", "fast"]
    tooltips = {t["title"] for t in rule["encoding"]["tooltip"]}
    assert {"runs", "p50", "p95"} <= tooltips
    rows = {r["task_name"]: r for r in rows_of(chart)}
    assert rows["slow"]["p50_x"] == 3.0
    assert rows["slow"]["p95_label"] == "8.8 s"
    assert rows["fast"]["min_x"] == 0.001  # 0.5 ms drawn at the 1 ms floor
    assert rows["fast"]["min_label"] == "0.5 ms"  # the tooltip tells the truth


def test_top_keeps_the_longest_p95(states: pl.DataFrame) -> None:
    chart = duration_chart(states, top=1)
    assert [r["task_name"] for r in rows_of(chart)] == ["slow"]
    assert "2 groups, the 1 with the longest p95 shown" in chart.to_dict()["title"]["subtitle"]


def test_any_duration_and_grouping(states: pl.DataFrame) -> None:
    chart = duration_chart(states, metric="queue_wait", by="task_name")
    assert {r["p50_x"] for r in rows_of(chart)} == {1.0}
    assert chart.to_dict()["title"]["text"] == "Queue wait per task name"
    custom = duration_chart(
        states, metric=lambda s: ta.durations(s, start="PENDING", end="TERMINAL")
    )
    assert {r["task_name"]: r["max_x"] for r in rows_of(custom)}["slow"] == 11.0


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"metric": "nope"}, "metric='nope'"), ({"top": 0}, "top=0")]
)
def test_bad_arguments(states: pl.DataFrame, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        duration_chart(states, **kwargs)

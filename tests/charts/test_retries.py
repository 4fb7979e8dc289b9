from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.builders import history, states
from tests.charts.datasets import rows_of
from trs_analytics.charts import STATE_COLORS, retry_chart, retry_outcomes

if TYPE_CHECKING:
    import polars as pl


def run(run_id: str, task: str, attempts: int, end: str) -> pl.DataFrame:
    """``attempts`` attempts a second apart from 0 on, then ``end``."""
    tries = ["Running", *["Retrying"] * (attempts - 1)]
    return history(
        [*[(name, i) for i, name in enumerate(tries)], (end, attempts)],
        task_run_id=run_id,
        task_name=task,
    )


@pytest.fixture(name="states")
def states_fixture() -> pl.DataFrame:
    return states(
        run("x1", "x", 2, "Completed"),  # rescued
        run("x2", "x", 3, "Failed"),  # failed anyway, 2 retries
        run("x3", "x", 1, "Completed"),  # not retried
        run("y1", "y", 3, "Completed"),  # rescued, 2 retries
    )


def test_outcomes_count_retried_runs_by_end(states: pl.DataFrame) -> None:
    rows = retry_outcomes(states).rows(named=True)
    assert [(r["task_name"], r["final_type"], r["retried"]) for r in rows] == [
        ("x", "COMPLETED", 1),
        ("x", "FAILED", 1),
        ("y", "COMPLETED", 1),
    ]
    x = rows[0]
    assert (x["runs"], x["group_retried"], x["retries"], x["rescued"]) == (3, 2, 3, 1)


def test_chart_stacks_by_final_state_in_state_colours(states: pl.DataFrame) -> None:
    chart = retry_chart(states)
    spec = chart.to_dict()
    bars, labels = spec["layer"]
    assert bars["mark"]["type"] == "bar"
    assert bars["encoding"]["x"]["field"] == "retried"
    assert bars["encoding"]["color"]["field"] == "final_type"
    scale = bars["encoding"]["color"]["scale"]
    assert scale["domain"] == ["COMPLETED", "FAILED"]  # rescued first, then failures
    assert scale["range"] == [STATE_COLORS["COMPLETED"], STATE_COLORS["FAILED"]]
    assert bars["encoding"]["y"]["sort"] == ["x", "y"]  # most retried runs first
    assert labels["mark"]["type"] == "text"
    texts = {r["task_name"]: r["label"] for r in rows_of(chart) if r["first"]}
    assert texts == {"x": "3 retries · 1 rescued", "y": "2 retries · 1 rescued"}


def test_top_limits_groups(states: pl.DataFrame) -> None:
    assert {r["task_name"] for r in rows_of(retry_chart(states, top=1))} == {"x"}

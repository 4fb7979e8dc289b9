from __future__ import annotations

import pytest

from trs_analytics.charts import STATE_COLORS, retry_chart, retry_outcomes


def run(
    run_id: str, attempts: int, end: str, start: float = 0
) -> list[tuple[str, str, str, float]]:
    rows = [
        (run_id, "RUNNING", "Running" if i == 0 else "Retrying", start + i) for i in range(attempts)
    ]
    kinds = {"Completed": "COMPLETED", "Failed": "FAILED", "Crashed": "CRASHED"}
    return [*rows, (run_id, kinds[end], end, start + attempts)]


@pytest.fixture
def states(make_states):
    rows = (
        run("x1", 2, "Completed")  # rescued
        + run("x2", 3, "Failed")  # failed anyway, 2 retries
        + run("x3", 1, "Completed")  # not retried
        + run("y1", 3, "Completed")  # rescued, 2 retries
    )
    return make_states(rows, task_name={"x1": "x", "x2": "x", "x3": "x", "y1": "y"})


def test_outcomes_count_retried_runs_by_end(states):
    rows = retry_outcomes(states).rows(named=True)
    assert [(r["task_name"], r["final_type"], r["retried"]) for r in rows] == [
        ("x", "COMPLETED", 1),
        ("x", "FAILED", 1),
        ("y", "COMPLETED", 1),
    ]
    x = rows[0]
    assert (x["runs"], x["group_retried"], x["retries"], x["rescued"]) == (3, 2, 3, 1)


def test_chart_stacks_by_final_state_in_state_colours(states, rows_of):
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


def test_top_limits_groups(states, rows_of):
    assert {r["task_name"] for r in rows_of(retry_chart(states, top=1))} == {"x"}

from __future__ import annotations

import polars as pl
import pytest

from tests.builders import history, states
from tests.charts.datasets import rows_of
from trs_analytics.charts import wait_chart, wait_series, waits_agree

HOUR = 3600.0


@pytest.fixture(name="states")
def states_fixture() -> pl.DataFrame:
    # hour 0: three runs, late by 1, 2 and 6 s; queued 0.5, 1, 1.5 s
    runs = [
        history(
            f"Pending@{late - queue} Running@{late}", task_run_id=f"r{i}", expected_start_time=0
        )
        for i, (late, queue) in enumerate([(1, 0.5), (2, 1.0), (6, 1.5)])
    ]
    # hour 1: one run, expected at 1h, late by 10 s, queued 3 s
    late = history(
        f"Pending@{HOUR + 7} Running@{HOUR + 10}", task_run_id="s", expected_start_time=HOUR
    )
    return states(*runs, late)


def test_series_quantiles_per_bucket(states: pl.DataFrame) -> None:
    series = wait_series(states, every="1h")
    got = {
        (r["metric"], r["bucket"].hour, r["quantile"]): (r["seconds"], r["runs"])
        for r in series.iter_rows(named=True)
    }
    assert got[("Lateness", 0, "p50")] == (2.0, 3)
    assert got[("Lateness", 0, "p95")] == (pytest.approx(2 + 0.9 * 4), 3)  # linear
    assert got[("Queue wait", 0, "p50")] == (1.0, 3)
    assert got[("Lateness", 1, "p50")] == (10.0, 1)
    assert got[("Queue wait", 1, "p95")] == (3.0, 1)
    assert len(got) == 8


def test_chart_panels_and_encodings(states: pl.DataFrame) -> None:
    chart = wait_chart(states, every="1h")  # lateness differs from queue wait here
    spec = chart.to_dict()
    assert spec["facet"]["row"]["field"] == "metric"
    assert spec["facet"]["row"]["sort"] == ["Lateness", "Queue wait"]
    line, points = spec["spec"]["layer"]
    assert line["mark"]["type"] == "line"
    assert line["encoding"]["x"]["field"] == "bucket"
    assert line["encoding"]["y"]["field"] == "y"
    assert line["encoding"]["y"]["scale"]["type"] == "log"
    assert line["encoding"]["color"]["field"] == "quantile"
    assert {t["field"] for t in points["encoding"]["tooltip"]} >= {"label", "runs", "bucket_utc"}
    rows = pl.DataFrame(rows_of(chart))
    assert rows.height == 8
    assert rows.filter(metric="Lateness", quantile="p50")["label"].to_list() == ["2.0 s", "10.0 s"]


def test_equal_waits_are_one_panel() -> None:
    # Prefect 3: expected_start_time is the first (Pending) state's time, so lateness == queue wait
    frame = states(
        *(
            history(f"Pending@{i} Running@{i + wait}", task_run_id=f"r{i}", expected_start_time=i)
            for i, wait in enumerate((0.5, 1.0, 4.0))
        )
    )
    assert waits_agree(frame)
    chart = wait_chart(frame, every="1h")
    assert {r["metric"] for r in rows_of(chart)} == {"Queue wait = lateness"}
    subtitle = chart.to_dict()["title"]["subtitle"]
    assert any("expected start time is the moment its first state" in line for line in subtitle)
    assert not any("Prefect 3" in line for line in subtitle)  # the data's line is unknown (26.6)
    assert len(wait_chart(frame, every="1h", merge_equal=False).to_dict()["datasets"]) == 1
    assert {r["metric"] for r in rows_of(wait_chart(frame, every="1h", merge_equal=False))} == {
        "Lateness",
        "Queue wait",
    }

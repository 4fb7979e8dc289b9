"""anomaly_chart: what it draws is the detect_anomalies result, flagged buckets marked."""

from __future__ import annotations

import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.testing as tt
from tests.charts.datasets import rows_of
from trs_analytics import charts
from trs_analytics.exceptions import SchemaError


@pytest.fixture(scope="module")
def planted() -> tt.Planted:
    return tt.generate_planted(seed=1, n_tasks=3, days=21, runs_per_day=6, spikes=2)


def test_the_chart_draws_the_band_and_marks_the_flagged_buckets(planted: tt.Planted) -> None:
    result = ta.detect_anomalies(planted.states)
    rows = rows_of(charts.anomaly_chart(result, top=3))
    assert len(rows) == result.height
    flagged = sorted((r["group"], r["bucket_utc"][:10]) for r in rows if r["anomalous"])
    marked = result.filter("anomalous")
    assert flagged == sorted(
        zip(marked["task_name"], marked["bucket"].dt.strftime("%Y-%m-%d"), strict=True)
    )
    assert len(flagged) >= 2  # the two planted spikes at least
    drawn = {(r["group"], r["bucket_utc"]): (r["lower"], r["upper"]) for r in rows}
    for got in result.iter_rows(named=True):
        key = (got["task_name"], got["bucket"].strftime("%Y-%m-%d %H:%M:%S"))
        assert drawn[key] == (got["lower"], got["upper"])


def test_top_keeps_the_groups_with_most_flags_first(planted: tt.Planted) -> None:
    result = ta.detect_anomalies(planted.states)
    kept = charts.anomaly_series(result, top=1)["group"].unique().to_list()
    most = (
        result.group_by("task_name")
        .agg(pl.col("anomalous").sum(), pl.col("runs").sum())
        .sort(["anomalous", "runs"], descending=True)["task_name"][0]
    )
    assert kept == [most]


def test_failure_rates_get_a_percent_axis_and_one_group_one_panel(planted: tt.Planted) -> None:
    result = ta.detect_anomalies(planted.states, metric="failure_rate", by=None)
    spec = charts.anomaly_chart(result).to_dict()
    assert "facet" not in spec
    assert spec["layer"][0]["encoding"]["y"]["axis"]["format"] == "%"
    labels = charts.anomaly_series(result)["observed_label"].to_list()
    assert all(label.endswith("%") for label in labels)


def test_a_frame_that_is_not_a_result_is_refused(planted: tt.Planted) -> None:
    with pytest.raises(SchemaError, match=r"Hint: pass ta\.detect_anomalies"):
        charts.anomaly_chart(planted.states)

"""Summaries of durations per group, and window-over-window regression flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

import trs_analytics as ta
from tests.builders import T0, history, states
from trs_analytics.exceptions import ConfigurationError, SchemaError

S = timedelta(seconds=1)


def test_summarize_values_worked_by_hand() -> None:
    frame = pl.DataFrame(
        {"g": ["x"] * 10 + ["y"], "duration": [S * i for i in range(1, 11)] + [None]}
    )
    out = ta.summarize(frame, by="g")
    row = out.row(0, named=True)
    # linear interpolation at position q*(n-1) of the sorted values 1..10 s
    assert row == {
        "g": "x",
        "count": 10,
        "nulls": 0,
        "mean": 5.5 * S,
        "min": S,
        "p50": 5.5 * S,
        "p90": 9.1 * S,
        "p95": 9.55 * S,
        "p99": 9.91 * S,
        "max": 10 * S,
    }
    assert out.row(1) == ("y", 0, 1, None, None, None, None, None, None, None)


def test_summarize_numbers_overall() -> None:
    out = ta.summarize(pl.DataFrame({"attempts": [1, 1, 2, 4]}), value="attempts")
    assert out.row(0) == pytest.approx((4, 0, 2.0, 1, 1.5, 3.4, 3.7, 3.94, 4))


def test_summarize_a_named_duration_by_tags_lazily() -> None:
    frame = states(
        history("Running@0 Completed@2", task_run_id="a", tags=["etl"]),
        history("Running@0 Completed@4", task_run_id="b", tags=["etl", "ml"]),
        history("Running@0 Completed@9", task_run_id="c", tags=[]),
    )
    out = ta.summarize(ta.run_time(frame.lazy()), by="tags")
    assert isinstance(out, pl.LazyFrame)
    got = out.select("tags", "count", "p50").collect().rows()
    assert got == [("etl", 2, 3 * S), ("ml", 1, 4 * S), (None, 1, 9 * S)]


def test_in_seconds_turns_every_duration_into_float_seconds_in_place() -> None:
    """Issue 26.16: tables showed ``2s 3027µs``."""
    frame = pl.DataFrame(
        {
            "g": ["x", "y"],
            "wait": [timedelta(seconds=2, microseconds=3027), None],
            "n": [1, 2],
            "duration": [timedelta(days=1, microseconds=1), -S / 2],
        }
    )
    out = ta.in_seconds(frame)
    assert out.columns == ["g", "wait_s", "n", "duration_s"]
    assert out.schema["wait_s"] == out.schema["duration_s"] == pl.Float64
    assert out.rows() == [("x", 2.003027, 1, 86_400.000001), ("y", None, 2, -0.5)]
    lazily = ta.in_seconds(ta.summarize(frame.lazy(), by="g"))
    assert isinstance(lazily, pl.LazyFrame)
    assert lazily.select("g", "p50_s").collect().rows() == [("x", 86_400.000001), ("y", -0.5)]


def test_summarize_missing_column() -> None:
    with pytest.raises(SchemaError, match="'duration'"):
        ta.summarize(pl.DataFrame({"x": [1]}))


# ---- compare_windows / regressions ----------------------------------------------------------

DAY = 86_400


def _runs(task: str, day: int, n: int, failed: int, run_seconds: float) -> list[pl.DataFrame]:
    out = []
    for i in range(n):
        start = day * DAY + 3600 + i * 10
        end = "Failed" if i < failed else "Completed"
        spec = f"Pending@{start} Running@{start + 1} {end}@{start + 1 + run_seconds}"
        out.append(history(spec, task_run_id=f"{task}-{day}-{i}", task_name=task))
    return out


def _two_days() -> pl.DataFrame:
    return states(
        *_runs("flaky", 0, 100, 5, 1.0),
        *_runs("flaky", 1, 100, 40, 1.0),
        *_runs("slow", 0, 100, 0, 1.0),
        *_runs("slow", 1, 100, 0, 3.0),
        *_runs("steady", 0, 100, 3, 2.0),
        *_runs("steady", 1, 100, 4, 2.0),
        *_runs("rare", 0, 5, 0, 1.0),
        *_runs("rare", 1, 5, 5, 1.0),  # 0% -> 100%, but too few runs to call it
    )


AT = datetime(2026, 1, 3, tzinfo=UTC)


def test_compare_windows_flags_what_got_worse() -> None:
    out = ta.compare_windows(_two_days(), window="1d", now=AT, min_runs=20)
    flags = out.select("task_name", "failure_rate_worse", "p95_worse", "regressed").rows()
    assert flags == [
        ("flaky", True, False, True),
        ("rare", False, False, False),
        ("slow", False, True, True),
        ("steady", False, False, False),
    ]
    flaky = out.row(0, named=True)
    assert (flaky["runs_previous"], flaky["runs_current"]) == (100, 100)
    assert (flaky["failure_rate_previous"], flaky["failure_rate_current"]) == (0.05, 0.40)
    # pooled two-proportion z: 0.35 / sqrt(0.225 * 0.775 * (1/100 + 1/100))
    assert flaky["z"] == pytest.approx(5.9266, abs=1e-4)
    slow = out.row(2, named=True)
    assert (slow["p95_previous"], slow["p95_current"], slow["p95_ratio"]) == (S, 3 * S, 3.0)
    assert (out["current_start"][0], out["current_end"][0], out["previous_start"][0]) == (
        datetime(2026, 1, 2, tzinfo=UTC),
        AT,
        T0,
    )


def test_compare_windows_default_at_is_the_latest_run() -> None:
    out = ta.compare_windows(_two_days(), window="1d", min_runs=20)
    # latest first state: day 1 + 3600 + 99 * 10 s
    assert out["current_end"][0] == T0 + timedelta(seconds=DAY + 3600 + 990)
    assert out.filter(pl.col("regressed"))["task_name"].to_list() == ["flaky", "slow"]


def test_regressions_keeps_flagged_rows_lazily() -> None:
    out = ta.regressions(_two_days().lazy(), window=timedelta(days=1), now=AT, min_runs=20)
    assert isinstance(out, pl.LazyFrame)
    assert out.collect()["task_name"].to_list() == ["flaky", "slow"]


def test_min_runs_and_ratio_gate_the_flags() -> None:
    strict = ta.regressions(_two_days(), window="1d", now=AT, min_runs=200)
    assert strict.height == 0
    lenient = ta.compare_windows(_two_days(), window="1d", now=AT, min_runs=5, p95_ratio=4.0)
    assert lenient.filter(pl.col("regressed"))["task_name"].to_list() == ["flaky", "rare"]


def test_end_to_end_metric() -> None:
    out = ta.compare_windows(_two_days(), window="1d", now=AT, metric="end_to_end")
    slow = out.filter(pl.col("task_name") == "slow").row(0, named=True)
    assert (slow["p95_previous"], slow["p95_current"]) == (2 * S, 4 * S)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": "fortnight"}, "window="),
        ({"window": "-1d"}, "window="),
        ({"now": datetime(2026, 1, 3)}, "time zone"),
        ({"metric": "lateness"}, "metric="),
        ({"alpha": 1.5}, "alpha"),
    ],
)
def test_compare_windows_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        ta.compare_windows(_two_days(), **kwargs)  # type: ignore[arg-type]

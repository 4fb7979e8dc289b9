"""generate_planted: its truth is what the states hold, checked with the metrics and by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypedDict

import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.testing as tt
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.testing import PLANTED_KINDS, TRUTH_SCHEMA


class Nothing(TypedDict):
    """Counts of :func:`trs_analytics.testing.generate_planted` that plant nothing (but late runs)."""

    spikes: int
    failure_jumps: int
    gaps: int
    stuck: int
    slow_runs: int


@pytest.fixture(scope="module")
def planted() -> tt.Planted:
    return tt.generate_planted(seed=7, days=24, n_tasks=6, runs_per_day=12)


def test_schemas_counts_and_determinism(planted: tt.Planted) -> None:
    assert planted.states.schema == ta.STATES_SCHEMA
    assert planted.truth.schema == TRUTH_SCHEMA
    counts = dict(planted.truth.group_by("kind").len().iter_rows())
    assert counts == dict(zip(PLANTED_KINDS, [4, 2, 1, 2, 2, 2], strict=True))
    again = tt.generate_planted(seed=7, days=24, n_tasks=6, runs_per_day=12)
    assert again.states.equals(planted.states)
    assert not tt.generate_planted(seed=8, days=24, n_tasks=6, runs_per_day=12).truth.equals(
        planted.truth
    )
    assert planted.end == datetime(2026, 1, 29, tzinfo=UTC)


def _per_day(planted: tt.Planted) -> pl.DataFrame:
    runs = ta.run_time(planted.states).with_columns(day=pl.col("start_time").dt.truncate("1d"))
    return runs.group_by("task_name", "day").agg(
        median=pl.col("duration").dt.total_microseconds().median() / 1e6, runs=pl.len()
    )


def test_spiked_task_days_are_slower_by_about_their_factor(planted: tt.Planted) -> None:
    days = _per_day(planted)
    for spike in planted.truth.filter(kind="duration_spike").iter_rows(named=True):
        mine = days.filter(task_name=spike["task_name"])
        # the same weekday a week before or after, not spiked (weekly seasonality)
        here = mine.filter(day=spike["bucket"])["median"].item()
        others = mine.filter(
            pl.col("day").is_in(
                [spike["bucket"] - timedelta(days=7), spike["bucket"] + timedelta(days=7)]
            )
        )["median"].median()
        assert 2.0 < here / others < 4.5


def test_failure_jumps_gaps_and_stuck_runs_are_in_the_states(planted: tt.Planted) -> None:
    rates = ta.failure_rates(planted.states, every="1d")
    for jump in planted.truth.filter(kind="failure_jump").iter_rows(named=True):
        row = rates.filter(task_name=jump["task_name"], bucket=jump["bucket"])
        assert row["failure_rate"].item() >= 0.25  # 50% over 12 runs
    days = _per_day(planted)
    for gap in planted.truth.filter(kind="gap").iter_rows(named=True):
        assert days.filter(task_name=gap["task_name"], day=gap["bucket"]).is_empty()
    outcomes = ta.run_outcomes(planted.states)
    unfinished = outcomes.filter(~pl.col("final_type").is_in(ta.TERMINAL_TYPES))
    stuck = planted.truth.filter(kind="stuck")
    assert sorted(unfinished["task_run_id"]) == sorted(stuck["task_run_id"])
    assert sorted(unfinished["final_type"].cast(pl.String)) == ["PENDING", "RUNNING"]
    assert (stuck["size"] >= 3 * 3600).all()
    assert (stuck["end"] == planted.end).all()


def test_slow_and_late_runs_are_measured_as_planted(planted: tt.Planted) -> None:
    slow = planted.truth.filter(kind="slow_run").join(ta.run_time(planted.states), on="task_run_id")
    assert slow["size"].to_list() == pytest.approx(
        (slow["duration"].dt.total_microseconds() / 1e6).to_list()
    )
    medians = slow.join(planted.tasks.select("task_name", "median_run_time"), on="task_name")
    assert (medians["size"] > 10 * medians["median_run_time"]).all()
    late = planted.truth.filter(kind="late_run").join(ta.lateness(planted.states), on="task_run_id")
    assert (late["duration"] >= timedelta(minutes=30)).all()
    assert late["size"].to_list() == pytest.approx(
        (late["duration"].dt.total_microseconds() / 1e6).to_list()
    )


def test_a_clean_history_has_no_truth_and_no_unfinished_run() -> None:
    nothing: Nothing = {"spikes": 0, "failure_jumps": 0, "gaps": 0, "stuck": 0, "slow_runs": 0}
    clean = tt.generate_planted(seed=2, days=16, n_tasks=2, late_runs=0, **nothing)
    assert clean.truth.is_empty()
    assert ta.run_outcomes(clean.states)["final_type"].is_in(ta.TERMINAL_TYPES).all()


@pytest.mark.parametrize(
    "options",
    [
        {"start": datetime(2026, 1, 5, 1, tzinfo=UTC)},
        {"spikes": -1},
        {"days": 16, "n_tasks": 1, "spikes": 3},
        {"stuck": 3, "n_tasks": 2},
        {"stuck_age": timedelta(days=2)},
    ],
)
def test_bad_arguments_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="Hint"):
        tt.generate_planted(**options)  # type: ignore[arg-type]

"""How well detect_anomalies finds planted anomalies, and how rarely it cries wolf.

Ground truth is what :func:`trs_analytics.testing.generate_planted` planted (its
``truth``), never our own output. Targets (issue 11): recall >= 0.95 for
duration spikes of 3x the typical duration; at most 1 false alarm per 1,000
clean group-buckets. Measured on Polars, with the default options unless
said otherwise (figures for seeds 0-4 in docs/anomalies.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.testing as tt

if TYPE_CHECKING:
    from trs_analytics.metrics import AnomalyOptions


class History(TypedDict):
    """Options of :func:`trs_analytics.testing.generate_planted` shared by the recall tests."""

    days: int
    n_tasks: int
    gaps: int
    stuck: int
    slow_runs: int
    late_runs: int


class Nothing(TypedDict, total=False):
    """Counts of :func:`trs_analytics.testing.generate_planted` that plant nothing."""

    spikes: int
    failure_jumps: int
    gaps: int
    stuck: int
    slow_runs: int
    late_runs: int


#: A history with anomalies only after the 14-day warm-up: 60 tasks x 20 judged days.
PLANTED: History = {
    "days": 35,
    "n_tasks": 60,
    "gaps": 0,
    "stuck": 0,
    "slow_runs": 2,
    "late_runs": 2,
}


def recall_precision(found: Any, truth: pl.DataFrame, kind: str) -> tuple[float, float]:
    flagged = found.filter("anomalous").select("task_name", "bucket")
    planted = truth.filter(kind=kind).select("task_name", "bucket")
    hits = flagged.join(planted, on=["task_name", "bucket"]).height
    return hits / planted.height, hits / max(flagged.height, 1)


@pytest.mark.parametrize(("factor", "seed"), [(3.0, 0), (3.0, 1), (1 / 3, 2)])
def test_duration_spikes_and_drops_of_3x_are_found(factor: float, seed: int) -> None:
    planted = tt.generate_planted(
        seed=seed, spikes=60, spike_factor=factor, failure_jumps=0, **PLANTED
    )
    found = ta.detect_anomalies(planted.states)
    recall, precision = recall_precision(found, planted.truth, "duration_spike")
    assert recall >= 0.95
    assert precision >= 0.95
    side = "spike" if factor > 1 else "drop"
    flagged = found.filter("anomalous").join(
        planted.truth.filter(kind="duration_spike"), on=["task_name", "bucket"]
    )
    assert set(flagged["direction"]) == {side}


def test_spikes_are_found_with_day_of_week_seasonality() -> None:
    planted = tt.generate_planted(
        seed=3, days=56, n_tasks=40, warmup_days=21, spikes=40, failure_jumps=0, gaps=0, stuck=0
    )
    found = ta.detect_anomalies(planted.states, seasonality="day_of_week")
    recall, precision = recall_precision(found, planted.truth, "duration_spike")
    assert recall >= 0.95
    assert precision >= 0.95


def test_failure_rate_jumps_are_found() -> None:
    planted = tt.generate_planted(seed=4, spikes=0, failure_jumps=60, **PLANTED)
    found = ta.detect_anomalies(planted.states, metric="failure_rate")
    recall, precision = recall_precision(found, planted.truth, "failure_jump")
    assert recall >= 0.9  # a jump to 50% over 24 runs, against 1-5% before
    assert precision >= 0.95


@pytest.fixture(scope="module")
def clean() -> pl.DataFrame:
    """200 tasks x 40 days, 12 runs a day, weekly seasonality and noise, nothing planted."""
    nothing: Nothing = {"spikes": 0, "failure_jumps": 0, "gaps": 0, "stuck": 0}
    nothing |= {"slow_runs": 0, "late_runs": 0}
    planted = tt.generate_planted(seed=11, days=40, n_tasks=200, runs_per_day=12, **nothing)
    assert planted.truth.is_empty()
    return planted.states


@pytest.mark.parametrize(
    "options",
    [{}, {"seasonality": "day_of_week"}, {"metric": "failure_rate", "direction": "both"}],
    ids=["run_time", "run_time-day_of_week", "failure_rate-both"],
)
def test_a_clean_history_raises_at_most_one_alarm_per_thousand_buckets(
    clean: pl.DataFrame, options: AnomalyOptions
) -> None:
    found = ta.detect_anomalies(clean, **options)
    judged = found.filter(pl.col("training_size") >= 14, pl.col("runs") >= 5).height
    assert judged >= 3_000  # enough group-buckets for the rate to mean something
    assert found["anomalous"].sum() <= judged / 1_000

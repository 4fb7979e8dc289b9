"""Rules that hold across the public API: every ``by`` takes a name or a sequence of names.

The functions are found, not listed (:mod:`tests.public`): a new public function
with a ``by`` is held to the rule without editing this file, as long as it runs
on task-run states (else it gets its input below).
"""

from __future__ import annotations

import inspect
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.charts as tc
import trs_analytics.testing as tt
from tests.public import with_parameter

if TYPE_CHECKING:
    from collections.abc import Callable

NOW = datetime(2026, 1, 3, tzinfo=UTC)
STATES = tt.generate_states(400, seed=1, days=2)
FLOW_RUNS = tt.generate_flow_run_states(400, seed=1, days=2)

#: The first argument of the functions that do not take task-run states.
INPUTS: dict[str, Callable[[], Any]] = {
    "currently_failing": lambda: FLOW_RUNS,
    "time_to_resolution": lambda: FLOW_RUNS,
    "landing_times": lambda: FLOW_RUNS,
    "landing_time_chart": lambda: FLOW_RUNS,
    "flow_duration_chart": lambda: FLOW_RUNS,
    "summarize": lambda: ta.run_time(STATES),
    "draw_durations": lambda: tc.duration_stats(STATES),
    "draw_failure_rates": lambda: tc.failure_rate_series(STATES),
    "draw_retries": lambda: tc.retry_outcomes(STATES),
    "duration_trend_chart": lambda: ta.duration_trend(STATES, every="1d"),
}
#: Arguments a function needs besides its input and ``by``.
EXTRA: dict[str, dict[str, Any]] = {
    "duration_trend": {"every": "1d"},
    "stuck_runs": {"now": NOW},
    "compare_windows": {"now": NOW, "window": "1d"},
}
#: The group of functions whose default is ``None`` (all runs) or that have none.
GROUP: dict[str, str] = {"explode_tags": "tags"}

BY = with_parameter("by")


def _result(value: Any) -> Any:
    """What two calls are compared on: a frame's rows, a chart's Vega-Lite spec."""
    if isinstance(value, pl.DataFrame):
        return value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, pl.DataFrame):
        return a.equals(b)
    return bool(a == b)


def test_the_rule_reaches_the_metrics_and_the_charts() -> None:
    names = {name.rsplit(".", 1)[1] for name, _ in BY}
    assert {"outcome_counts", "error_messages", "duration_trend", "failure_rates"} <= names
    assert {"duration_chart", "retry_outcomes", "landing_times"} <= names


@pytest.mark.parametrize(("name", "fn"), BY, ids=[name for name, _ in BY])
def test_by_takes_a_name_or_a_sequence_of_names_alike(name: str, fn: Callable[..., Any]) -> None:
    short = name.rsplit(".", 1)[1]
    default = inspect.signature(fn).parameters["by"].default
    group = GROUP.get(short, default if isinstance(default, str) else "flow_name")
    data = INPUTS.get(short, lambda: STATES)()
    extra = EXTRA.get(short, {})
    as_name = fn(data, by=group, **extra)
    as_list = fn(data, by=[group], **extra)
    as_tuple = fn(data, by=(group,), **extra)
    assert _equal(_result(as_name), _result(as_list)), name
    assert _equal(_result(as_name), _result(as_tuple)), name


@pytest.mark.parametrize(
    ("fn", "extra"),
    [(ta.outcome_counts, {}), (ta.duration_trend, {"every": "1d"}), (ta.error_messages, {})],
    ids=["outcome_counts", "duration_trend", "error_messages"],
)
def test_metrics_that_took_one_name_now_group_by_several(
    fn: Callable[..., Any], extra: dict[str, Any]
) -> None:
    out = fn(STATES, by=["flow_name", "task_name"], **extra)
    assert out.columns[:2] == ["flow_name", "task_name"]
    # independent truth: each task belongs to one flow, so the pairs are the tasks seen
    pairs = STATES.select("flow_name", "task_name").unique()
    assert set(out.select("flow_name", "task_name").iter_rows()) <= set(pairs.iter_rows())


def test_outcome_counts_by_two_columns_counts_each_pair_runs() -> None:
    out = ta.outcome_counts(STATES, by=["flow_name", "task_name"])
    truth = STATES.group_by("flow_name", "task_name").agg(runs=pl.col("task_run_id").n_unique())
    joined = out.join(truth, on=["flow_name", "task_name"], suffix="_truth")
    assert joined.height == truth.height == out.height
    assert (joined["runs"] == joined["runs_truth"]).all()


def test_a_chart_refuses_several_group_columns_with_a_hint() -> None:
    with pytest.raises(ta.ConfigurationError, match=r"one group column\. Hint: "):
        tc.duration_chart(STATES, by=["flow_name", "task_name"])


# -- every: one rule for its default (docs/metrics.md, "Time buckets") -------------------

EVERY = [
    (name, fn)
    for name, fn in with_parameter("every")
    if inspect.signature(fn).parameters["every"].kind is inspect.Parameter.KEYWORD_ONLY
]


def test_the_every_rule_reaches_metrics_charts_and_the_check() -> None:
    names = {name for name, _ in EVERY}
    assert {"trs_analytics.run_volume", "trs_analytics.failure_rates"} <= names
    assert {"trs_analytics.charts.wait_chart", "trs_analytics.check.run_check"} <= names


@pytest.mark.parametrize(("name", "fn"), EVERY, ids=[name for name, _ in EVERY])
def test_every_defaults_by_the_one_rule(name: str, fn: Callable[..., Any]) -> None:
    default = inspect.signature(fn).parameters["every"].default
    if name.startswith("trs_analytics.charts."):
        assert default is None, f"{name}: a chart picks every from the data's span (None)"
    elif default is None:
        # buckets are optional: None means none, and the docstring says so
        assert "``None``: no buckets" in (inspect.getdoc(fn) or ""), name
    else:
        assert default == "1d", f"{name}: a metric's buckets are one day by default"


def test_without_every_a_chart_picks_the_width_from_the_span_and_a_metric_takes_a_day() -> None:
    # two days of flow runs (47.7 h) in at most 40 buckets: 1.2 h each, rounded up to 3 h
    auto = tc.flow_duration_chart(FLOW_RUNS).to_dict()
    assert auto == tc.flow_duration_chart(FLOW_RUNS, every="3h").to_dict()
    assert auto != tc.flow_duration_chart(FLOW_RUNS, every="1d").to_dict()
    volume = ta.run_volume(STATES)
    assert volume["bucket"].dt.date().unique().sort().to_list() == [
        date(2026, 1, 1 + d) for d in range(2)
    ]
    assert volume.equals(ta.run_volume(STATES, every="1d"))
    assert ta.peak_concurrency(STATES).equals(ta.peak_concurrency(STATES, every="1d"))

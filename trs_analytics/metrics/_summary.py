"""Summaries of any duration per group, and window-over-window regressions."""

from __future__ import annotations

from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

import narwhals as nw

from trs_analytics._time import micros_at
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.metrics._buckets import duration_micros
from trs_analytics.metrics._common import (
    RUN,
    as_list,
    explode_tags,
    group_keys,
    is_type,
    once_closed,
    outcomes,
)
from trs_analytics.metrics._durations import end_to_end, queue_wait, run_time
from trs_analytics.metrics._frames import (
    describe,
    finish,
    is_duration,
    lazy,
    quantile,
    schema_of,
    with_micros,
)
from trs_analytics.metrics._run_table import per_run
from trs_analytics.schema import FAILURE_TYPES, require_columns, run_id_column

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime, timedelta

    from trs_analytics.metrics._frames import Frame

__all__ = ["QUANTILES", "CompareOptions", "Metric", "compare_windows", "regressions", "summarize"]

#: The quantiles :func:`summarize` reports, by column name.
QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}

#: The per-run durations :func:`compare_windows` can compare.
Metric = Literal["run_time", "end_to_end", "queue_wait"]

_METRICS: dict[str, Callable[[Any], Any]] = {
    "run_time": run_time,
    "end_to_end": end_to_end,
    "queue_wait": queue_wait,
}


class CompareOptions(TypedDict, total=False):
    """The options of :func:`compare_windows`, which :func:`regressions` takes too."""

    window: str | timedelta
    now: datetime | None
    by: str | Sequence[str] | None
    metric: Metric
    min_runs: int
    p95_ratio: float
    alpha: float


def summarize(
    frame: Frame,
    *,
    value: str = "duration",
    by: str | Sequence[str] | None = None,
) -> Frame:
    """Describe the distribution of a column per group: count, mean, min, quantiles, max.

    Quantiles interpolate linearly between the two nearest values (like
    NumPy's default and DuckDB's ``quantile_cont``); quantiles of durations
    are rounded to the microsecond. Nulls (for example the
    durations of runs that have not finished) are left out and counted in
    ``nulls``.

    Args:
        frame: any frame, typically the output of :func:`durations` or a named form.
        value: the column to describe (a Duration or a number).
        by: grouping column(s), ``None`` for one overall row. A row counts
            once in each of its ``tags`` when ``tags`` is among them.

    Returns:
        The kind of frame given, ordered by group: the ``by`` columns,
        ``count``, ``nulls``, ``mean``, ``min``, ``p50``, ``p90``, ``p95``,
        ``p99``, ``max``.

    Raises:
        SchemaError: ``value`` or a ``by`` column is missing.

    Examples:
        >>> from datetime import timedelta
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> runs = pl.DataFrame({
        ...     "task_name": ["a", "a", "a", "b"],
        ...     "duration": [timedelta(seconds=s) for s in (1, 2, 6)] + [None],
        ... })
        >>> ta.summarize(runs, by="task_name").select("task_name", "count", "nulls", "mean", "p50")
        shape: (2, 5)
        ┌───────────┬───────┬───────┬──────────────┬──────────────┐
        │ task_name ┆ count ┆ nulls ┆ mean         ┆ p50          │
        │ ---       ┆ ---   ┆ ---   ┆ ---          ┆ ---          │
        │ str       ┆ u32   ┆ u32   ┆ duration[μs] ┆ duration[μs] │
        ╞═══════════╪═══════╪═══════╪══════════════╪══════════════╡
        │ a         ┆ 3     ┆ 0     ┆ 3s           ┆ 2s           │
        │ b         ┆ 0     ┆ 1     ┆ null         ┆ null         │
        └───────────┴───────┴───────┴──────────────┴──────────────┘
    """
    keys: list[str] = as_list(by)
    lf = lazy(frame, caller="summarize")
    require_columns(lf, [value, *keys], caller="summarize")
    duration = is_duration(lf, value)
    lf = explode_tags(lf, keys)
    lf = with_micros(lf, durations={"_v": value}) if duration else lf.with_columns(_v=nw.col(value))
    result = describe(lf, keys, "_v", QUANTILES)
    if keys:
        result = result.sort(keys, nulls_last=True)
    spread = ["mean", "min", *QUANTILES, "max"]
    return finish(
        result,
        frame,
        durations=spread if duration else [],
        counts=["count", "nulls"],
    )


def compare_windows(
    states: Frame,
    *,
    window: str | timedelta = "7d",
    now: datetime | None = None,
    by: str | Sequence[str] | None = "task_name",
    metric: Metric = "run_time",
    min_runs: int = 20,
    p95_ratio: float = 1.5,
    alpha: float = 0.05,
) -> Frame:
    """Compare each group's failure rate and p95 duration in a window with the window before.

    A run belongs to the window holding its first state's timestamp: the
    *current* window is ``(now - window, now]``, the *previous* one
    ``(now - 2*window, now - window]``.

    A group's failure rate got significantly worse when both windows have at
    least ``min_runs`` runs (completed + failed) and a one-sided
    two-proportion z-test (pooled) rejects "not worse" at level ``alpha``.
    Its p95 got significantly worse when both windows have at least
    ``min_runs`` measured durations and the current p95 is at least
    ``p95_ratio`` times the previous one (and larger).

    Args:
        states: a states frame.
        window: the window length, a Polars duration string (``"1d"``,
            ``"7d"``) or a ``timedelta``.
        now: the end of the current window (time-zone aware); default: the
            latest first-state timestamp among the runs.
        by: grouping column(s), ``None`` for one overall row.
        metric: the per-run duration whose p95 is compared: ``"run_time"``,
            ``"end_to_end"`` or ``"queue_wait"``.
        min_runs: the fewest runs (and durations) per window for a flag.
        p95_ratio: how many times larger the current p95 must be.
        alpha: the significance level of the failure-rate test.

    Returns:
        The kind of frame given, one row per group seen in either window:
        the ``by`` columns, ``previous_start``, ``current_start``,
        ``current_end``, ``runs_previous``, ``runs_current``,
        ``failed_previous``, ``failed_current``, ``failure_rate_previous``,
        ``failure_rate_current``, ``z``, ``failure_rate_worse``,
        ``durations_previous``, ``durations_current``, ``p95_previous``,
        ``p95_current``, ``p95_ratio``, ``p95_worse``, ``regressed``.

    Raises:
        SchemaError: a required or ``by`` column is missing.
        ConfigurationError: a bad ``window``, ``now``, ``metric`` or threshold.

    Examples:
        >>> import trs_analytics as ta
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(400, seed=1, days=2, n_tasks=2, n_flows=1)
        >>> ta.compare_windows(states, window="1d", min_runs=10).select(
        ...     "task_name", "runs_previous", "runs_current", "regressed").shape
        (2, 4)
    """
    if metric not in _METRICS:
        msg = f"metric={metric!r} is not one of {sorted(_METRICS)}. Hint: use metric='run_time'."
        raise ConfigurationError(msg)
    if not 0 < alpha < 1 or p95_ratio <= 0 or min_runs < 0:
        msg = (
            f"need 0 < alpha < 1, p95_ratio > 0 and min_runs >= 0, got alpha={alpha}, "
            f"p95_ratio={p95_ratio}, min_runs={min_runs}. Hint: the defaults are 0.05, 1.5, 20."
        )
        raise ConfigurationError(msg)
    keys: list[str] = as_list(by)
    step = duration_micros(window, argument="window")
    end = None if now is None else micros_at(now)
    per_run = _measured_runs(states, keys, metric)
    current_end = nw.col("start_time").max() if end is None else nw.lit(end)
    per_run = per_run.with_columns(current_end=current_end).with_columns(
        current_start=nw.col("current_end") - step,
        previous_start=nw.col("current_end") - 2 * step,
    )
    per_run = per_run.with_columns(
        _current=(nw.col("start_time") > nw.col("current_start"))
        & (nw.col("start_time") <= nw.col("current_end")),
        _previous=(nw.col("start_time") > nw.col("previous_start"))
        & (nw.col("start_time") <= nw.col("current_start")),
    )
    per_run = explode_tags(per_run.filter(nw.col("_current") | nw.col("_previous")), keys)
    agg = _window_stats(per_run, keys)
    z_crit = NormalDist().inv_cdf(1 - alpha)
    return finish(
        _flag(agg, keys, min_runs, p95_ratio, z_crit),
        states,
        timestamps=["previous_start", "current_start", "current_end"],
        durations=["p95_previous", "p95_current"],
        counts=[f"{c}_{w}" for c in ("runs", "failed", "durations") for w in _WINDOWS],
    )


def _measured_runs(states: Any, keys: list[str], metric: str) -> nw.LazyFrame[Any]:
    """:func:`outcomes` of each run, with ``_duration``: its ``metric`` (microseconds).

    Run time comes from the outcomes' own pass, as :func:`run_time` takes it
    (null for a run that never ran, which ``run_time`` leaves out, or is still
    running); the other metrics are computed apart and joined on the run.
    """
    if metric == "run_time":
        runs = per_run(
            states,
            caller="compare_windows",
            needs=keys,
            build=lambda tl: outcomes(tl, group_keys(keys), spent=is_type("RUNNING")),
        )
        ran = nw.col("attempts") > 0
        return runs.with_columns(_duration=nw.when(ran).then(once_closed("_time")))
    run = run_id_column(schema_of(states).names())
    measured = with_micros(
        lazy(_METRICS[metric](states), caller="compare_windows"),
        durations={"_duration": "duration"},
    ).select(nw.col(run).alias(RUN), "_duration")
    runs = per_run(
        states,
        caller="compare_windows",
        needs=keys,
        build=lambda tl: outcomes(tl, group_keys(keys)),
    )
    return runs.join(measured, on=RUN, how="left")


#: The two windows compared, in the order of the output columns.
_WINDOWS = ("previous", "current")


def _window_stats(per_run: nw.LazyFrame[Any], keys: list[str]) -> nw.LazyFrame[Any]:
    failed = nw.col("final_type").is_in(FAILURE_TYPES)
    counted = (nw.col("final_type") == "COMPLETED") | failed
    flags = []
    stats: list[nw.Expr] = [
        nw.col("previous_start", "current_start", "current_end").max(),
    ]
    for name in _WINDOWS:
        inside = nw.col(f"_{name}")
        flags += [
            (counted & inside).cast(nw.Int64()).alias(f"_counted_{name}"),
            (failed & inside).cast(nw.Int64()).alias(f"_failed_{name}"),
            nw.when(inside).then(nw.col("_duration")).alias(f"_duration_{name}"),
        ]
        stats += [
            nw.col(f"_counted_{name}").sum().alias(f"runs_{name}"),
            nw.col(f"_failed_{name}").sum().alias(f"failed_{name}"),
            nw.col(f"_duration_{name}").count().alias(f"durations_{name}"),
            quantile(nw.col(f"_duration_{name}"), 0.95).alias(f"p95_{name}"),
        ]
    lf = per_run.with_columns(*flags)
    if keys:
        return lf.group_by(*keys, drop_null_keys=False).agg(*stats)
    return lf.select(*stats)


def _flag(
    agg: nw.LazyFrame[Any], keys: list[str], min_runs: int, p95_ratio: float, z_crit: float
) -> nw.LazyFrame[Any]:
    n1, n2 = nw.col("runs_previous"), nw.col("runs_current")
    f1, f2 = nw.col("failed_previous"), nw.col("failed_current")
    both = (n1 > 0) & (n2 > 0)
    r1 = nw.when(n1 > 0).then(f1 / n1)
    r2 = nw.when(n2 > 0).then(f2 / n2)
    pooled = nw.when(both).then((f1 + f2) / (n1 + n2))
    se = nw.when(both).then((pooled * (1 - pooled) * (1 / n1 + 1 / n2)).sqrt())
    z = nw.when(se > 0).then((r2 - r1) / se)
    p95_1, p95_2 = nw.col("p95_previous"), nw.col("p95_current")
    enough_runs = (n1 >= min_runs) & (n2 >= min_runs)
    enough_durations = (nw.col("durations_previous") >= min_runs) & (
        nw.col("durations_current") >= min_runs
    )
    out = agg.with_columns(
        failure_rate_previous=r1,
        failure_rate_current=r2,
        z=z,
        failure_rate_worse=(enough_runs & (z > z_crit)).fill_null(value=False),
        p95_ratio=nw.when(p95_1 > 0).then(p95_2 / p95_1),
        p95_worse=(enough_durations & (p95_2 >= p95_ratio * p95_1) & (p95_2 > p95_1)).fill_null(
            value=False
        ),
    ).with_columns(regressed=nw.col("failure_rate_worse") | nw.col("p95_worse"))
    out = out.select(
        *keys,
        "previous_start",
        "current_start",
        "current_end",
        "runs_previous",
        "runs_current",
        "failed_previous",
        "failed_current",
        "failure_rate_previous",
        "failure_rate_current",
        "z",
        "failure_rate_worse",
        "durations_previous",
        "durations_current",
        "p95_previous",
        "p95_current",
        "p95_ratio",
        "p95_worse",
        "regressed",
    )
    return out.sort(keys, nulls_last=True) if keys else out


def regressions(states: Frame, **options: Unpack[CompareOptions]) -> Frame:
    """Return the rows of :func:`compare_windows` whose failure rate or p95 got significantly worse.

    Takes the same options as :func:`compare_windows` (:class:`CompareOptions`).

    Examples:
        >>> import trs_analytics as ta
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(200, seed=3, days=2, n_tasks=3, n_flows=1)
        >>> ta.regressions(states, window="1d", min_runs=1_000).height
        0
    """
    table: Any = compare_windows(states, **options)
    flagged = lazy(table, caller="regressions").filter(nw.col("regressed"))
    return finish(flagged, states)

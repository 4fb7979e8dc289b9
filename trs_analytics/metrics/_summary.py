"""Summaries of any duration per group, and window-over-window regressions."""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import NormalDist
from typing import TYPE_CHECKING, Literal

import polars as pl

from trs_analytics.exceptions import ConfigurationError
from trs_analytics.metrics._common import (
    RUN,
    Frame,
    as_list,
    carried,
    explode_tags,
    like,
    timeline,
)
from trs_analytics.metrics._durations import end_to_end, queue_wait, run_time
from trs_analytics.metrics._retries import outcomes
from trs_analytics.schema import FAILURE_TYPES, UTC_US, require_columns

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["QUANTILES", "Metric", "compare_windows", "regressions", "summarize"]

#: The quantiles :func:`summarize` reports, by column name.
QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}

#: The per-run durations :func:`compare_windows` can compare.
Metric = Literal["run_time", "end_to_end", "queue_wait"]

_METRICS: dict[str, Callable[[pl.LazyFrame], pl.LazyFrame]] = {
    "run_time": run_time,
    "end_to_end": end_to_end,
    "queue_wait": queue_wait,
}


def _quantile(value: pl.Expr, q: float, *, duration: bool) -> pl.Expr:
    """Linear-interpolated quantile; a Duration's is rounded to the nearest microsecond."""
    if not duration:
        return value.quantile(q, interpolation="linear")
    micros = value.dt.total_microseconds().quantile(q, interpolation="linear")
    return micros.round().cast(pl.Int64).cast(pl.Duration("us"))


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
    require_columns(frame, [value, *keys], caller="summarize")
    lf = explode_tags(frame.lazy(), keys)
    v: pl.Expr = pl.col(value)
    is_duration: bool = isinstance(frame.lazy().collect_schema()[value], pl.Duration)
    stats = [
        v.count().cast(pl.UInt32).alias("count"),
        v.null_count().cast(pl.UInt32).alias("nulls"),
        v.mean().alias("mean"),
        v.min().alias("min"),
        *(_quantile(v, q, duration=is_duration).alias(name) for name, q in QUANTILES.items()),
        v.max().alias("max"),
    ]
    result = lf.group_by(keys).agg(stats).sort(keys, nulls_last=True) if keys else lf.select(stats)
    return like(frame, result)


def _window_string(window: str | timedelta) -> str:
    if isinstance(window, timedelta):
        micros = window // timedelta(microseconds=1)
        text = f"{micros}us"
    else:
        text = window
    epoch = pl.lit(0).cast(UTC_US)
    try:
        ok = pl.select(epoch.dt.offset_by(text) > epoch).item()
    except (pl.exceptions.PolarsError, ValueError, TypeError) as err:
        msg = f"window={window!r} is not a duration. Hint: use a string such as '1d' or '7d'."
        raise ConfigurationError(msg) from err
    if not ok:
        msg = f"window={window!r} must be positive. Hint: use a string such as '1d' or '7d'."
        raise ConfigurationError(msg)
    return text


def _at(at: datetime | None) -> pl.Expr:
    if at is None:
        return pl.col("start_time").max()
    if at.tzinfo is None:
        msg = (
            f"at={at!r} has no time zone. Hint: pass an aware datetime, "
            "for example datetime(2026, 1, 8, tzinfo=UTC)."
        )
        raise ConfigurationError(msg)
    return pl.lit(at).cast(UTC_US)


def compare_windows(
    states: Frame,
    *,
    window: str | timedelta = "7d",
    at: datetime | None = None,
    by: str | Sequence[str] | None = "task_name",
    metric: Metric = "run_time",
    min_runs: int = 20,
    p95_ratio: float = 1.5,
    alpha: float = 0.05,
) -> Frame:
    """Compare each group's failure rate and p95 duration in a window with the window before.

    A run belongs to the window holding its first state's timestamp: the
    *current* window is ``(at - window, at]``, the *previous* one
    ``(at - 2*window, at - window]``.

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
        at: the end of the current window (time-zone aware); default: the
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
        ConfigurationError: a bad ``window``, ``at``, ``metric`` or threshold.

    Examples:
        >>> import trs_analytics as ta
        >>> states = ta.generate_states(400, seed=1, days=2, n_tasks=2, n_flows=1)
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
    step = _window_string(window)
    end = _at(at)
    lf = timeline(states, caller="compare_windows", needs=keys)
    per_run = outcomes(lf, carried(states, keys)).join(
        _METRICS[metric](states.lazy()).select(RUN, "duration"), on=RUN, how="left"
    )
    per_run = per_run.with_columns(current_end=end).with_columns(
        current_start=pl.col("current_end").dt.offset_by(f"-{step}")
    )
    per_run = per_run.with_columns(
        previous_start=pl.col("current_start").dt.offset_by(f"-{step}")
    ).with_columns(
        _current=(pl.col("start_time") > pl.col("current_start"))
        & (pl.col("start_time") <= pl.col("current_end")),
        _previous=(pl.col("start_time") > pl.col("previous_start"))
        & (pl.col("start_time") <= pl.col("current_start")),
    )
    per_run = explode_tags(per_run.filter(pl.col("_current") | pl.col("_previous")), keys)
    agg = _window_stats(per_run, keys)
    return like(states, _flag(agg, keys, min_runs, p95_ratio, NormalDist().inv_cdf(1 - alpha)))


def _window_stats(per_run: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    failed = pl.col("final_type").is_in(FAILURE_TYPES)
    counted = (pl.col("final_type") == "COMPLETED") | failed
    stats: list[pl.Expr] = [
        pl.col("previous_start", "current_start", "current_end").first(),
    ]
    for name in ("previous", "current"):
        inside = pl.col(f"_{name}")
        stats += [
            (counted & inside).sum().cast(pl.UInt32).alias(f"runs_{name}"),
            (failed & inside).sum().cast(pl.UInt32).alias(f"failed_{name}"),
            pl.col("duration").filter(inside).count().cast(pl.UInt32).alias(f"durations_{name}"),
            _quantile(pl.col("duration").filter(inside), 0.95, duration=True).alias(f"p95_{name}"),
        ]
    grouped = per_run.group_by(keys) if keys else per_run.group_by(pl.lit(0).alias("_all"))
    return grouped.agg(stats)


def _flag(
    agg: pl.LazyFrame, keys: list[str], min_runs: int, p95_ratio: float, z_crit: float
) -> pl.LazyFrame:
    n1, n2 = pl.col("runs_previous"), pl.col("runs_current")
    f1, f2 = pl.col("failed_previous"), pl.col("failed_current")
    r1 = f1 / pl.when(n1 > 0).then(n1)
    r2 = f2 / pl.when(n2 > 0).then(n2)
    pooled = (f1 + f2) / pl.when(n1 + n2 > 0).then(n1 + n2)
    se = (pooled * (1 - pooled) * (1 / n1 + 1 / n2)).sqrt()
    z = pl.when(se > 0).then((r2 - r1) / se)
    p95_1 = pl.col("p95_previous").dt.total_microseconds()
    p95_2 = pl.col("p95_current").dt.total_microseconds()
    enough_runs = (n1 >= min_runs) & (n2 >= min_runs)
    enough_durations = (pl.col("durations_previous") >= min_runs) & (
        pl.col("durations_current") >= min_runs
    )
    out = agg.with_columns(
        failure_rate_previous=r1,
        failure_rate_current=r2,
        z=z,
        failure_rate_worse=(enough_runs & (z > z_crit)).fill_null(value=False),
        p95_ratio=p95_2 / pl.when(p95_1 > 0).then(p95_1),
        p95_worse=(enough_durations & (p95_2 >= p95_ratio * p95_1) & (p95_2 > p95_1)).fill_null(
            value=False
        ),
    ).with_columns(regressed=pl.col("failure_rate_worse") | pl.col("p95_worse"))
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


def regressions(
    states: Frame,
    *,
    window: str | timedelta = "7d",
    at: datetime | None = None,
    by: str | Sequence[str] | None = "task_name",
    metric: Metric = "run_time",
    min_runs: int = 20,
    p95_ratio: float = 1.5,
    alpha: float = 0.05,
) -> Frame:
    """Return the rows of :func:`compare_windows` whose failure rate or p95 got significantly worse.

    Takes the same arguments as :func:`compare_windows`.

    Examples:
        >>> import trs_analytics as ta
        >>> states = ta.generate_states(200, seed=3, days=2, n_tasks=3, n_flows=1)
        >>> ta.regressions(states, window="1d", min_runs=1_000).height
        0
    """
    table = compare_windows(
        states,
        window=window,
        at=at,
        by=by,
        metric=metric,
        min_runs=min_runs,
        p95_ratio=p95_ratio,
        alpha=alpha,
    )
    return table.filter(pl.col("regressed"))

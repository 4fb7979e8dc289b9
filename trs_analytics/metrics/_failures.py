"""Failure rates per group and time bucket, with 95% Wilson intervals.

A task run's outcome is the type of its latest state (see :func:`retry_counts`):

- COMPLETED counts as a success, FAILED and CRASHED as a failure;
- CANCELLED is counted apart (``cancelled``): cancelling is a decision taken
  about a run, not an outcome of its code;
- a run whose latest state is not terminal is counted apart (``unfinished``),
  never as a success.

``runs = completed + failed`` is the denominator of every rate.

Rates are hash aggregates over the runs (no sort), on every engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import narwhals as nw

from trs_analytics.metrics._buckets import bucket_of
from trs_analytics.metrics._common import (
    as_list,
    explode_tags,
    group_keys,
    outcomes,
)
from trs_analytics.metrics._frames import finish
from trs_analytics.metrics._run_table import per_run
from trs_analytics.schema import FAILURE_TYPES

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trs_analytics.metrics._frames import Frame

__all__ = ["Z95", "failure_rates", "wilson"]

#: The 97.5th percentile of the standard normal distribution.
Z95: Final = 1.959963984540054


def wilson(successes: nw.Expr, trials: nw.Expr, *, z: float = Z95) -> tuple[nw.Expr, nw.Expr]:
    """Return the (low, high) Wilson score interval for ``successes / trials``.

    Both bounds are null where ``trials`` is 0.

    Examples:
        >>> import narwhals as nw
        >>> import polars as pl
        >>> low, high = wilson(nw.col("x"), nw.col("n"))
        >>> nw.from_native(pl.DataFrame({"x": [0, 5], "n": [10, 10]})).select(
        ...     low=low.round(4), high=high.round(4)).rows()
        [(0.0, 0.2775), (0.2366, 0.7634)]
    """
    n = trials.cast(nw.Float64())
    p = successes.cast(nw.Float64()) / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * (p * (1 - p) / n + z2 / (4 * n * n)).sqrt()
    none = nw.lit(None, dtype=nw.Float64())
    # at p = 0 (p = 1) the bound is exactly 0 (1): say so rather than leave rounding noise
    low = (
        nw.when(trials <= 0)
        .then(none)
        .otherwise(
            nw.when(successes == 0)
            .then(nw.lit(0.0))
            .otherwise((centre - half).clip(lower_bound=0.0))
        )
    )
    high = (
        nw.when(trials <= 0)
        .then(none)
        .otherwise(
            nw.when(successes == trials)
            .then(nw.lit(1.0))
            .otherwise((centre + half).clip(upper_bound=1.0))
        )
    )
    return low, high


def failure_rates(
    states: Frame,
    *,
    by: str | Sequence[str] | None = "task_name",
    every: str | None = None,
) -> Frame:
    """Compute final and first-attempt failure rates per group, optionally per time bucket.

    Args:
        states: a states frame (DataFrame or LazyFrame).
        by: grouping column(s): ``task_name``, ``task_key``, ``flow_name``,
            ``tags`` or any column that is constant within a task run;
            ``None`` for one overall row. A run counts once in each of its
            ``tags`` (a run without tags in a null tag).
        every: bucket width such as ``"1h"`` or ``"1d"``; a run falls in the
            UTC bucket that holds its *first* state's timestamp, so it stays
            in one bucket while it is still running. ``None``: no buckets.

    Returns:
        The kind of frame given, ordered by group (and ``bucket``): the ``by``
        columns, ``bucket`` (start of the bucket, when ``every`` is given),
        ``runs`` (completed + failed), ``completed``, ``failed`` (FAILED or
        CRASHED), ``crashed``, ``cancelled``, ``unfinished``, ``failure_rate``,
        ``ci_low``, ``ci_high`` (95% Wilson interval), ``first_attempt_failed``
        (runs whose first attempt failed, retried or not),
        ``first_attempt_failure_rate``, ``first_attempt_ci_low``,
        ``first_attempt_ci_high``, ``rescued``. Rates are null when ``runs`` is 0.

    Raises:
        SchemaError: a required or ``by`` column is missing.
        ConfigurationError: ``every`` is not a positive duration.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "a", "b", "b", "b", "c", "c", "d"],
        ...     "task_name": ["etl"] * 8,
        ...     "type": ["RUNNING", "COMPLETED", "RUNNING", "RUNNING", "COMPLETED",
        ...              "RUNNING", "FAILED", "RUNNING"],
        ...     "name": ["Running", "Completed", "Running", "Retrying", "Completed",
        ...              "Running", "Failed", "Running"],
        ...     "timestamp": [t(0), t(1), t(0), t(1), t(2), t(0), t(1), t(0)],
        ... })
        >>> ta.failure_rates(states).select(
        ...     "task_name", "runs", "failed", "unfinished", "failure_rate",
        ...     "first_attempt_failure_rate").rows()
        [('etl', 3, 1, 1, 0.3333333333333333, 0.6666666666666666)]
    """
    keys: list[str] = as_list(by)
    built = per_run(
        states,
        caller="failure_rates",
        needs=keys,
        build=lambda tl: outcomes(tl, group_keys(keys)),
    )
    runs = explode_tags(built, keys)
    groups = list(keys)
    if every is not None:
        runs = runs.with_columns(bucket=bucket_of(nw.col("start_time"), every))
        groups.append("bucket")
    final = nw.col("final_type")
    failed = final.is_in(FAILURE_TYPES)
    counted = (final == "COMPLETED") | failed
    flags = runs.with_columns(
        _counted=counted.cast(nw.Int64()),
        _completed=(final == "COMPLETED").cast(nw.Int64()),
        _failed=failed.cast(nw.Int64()),
        _crashed=(final == "CRASHED").cast(nw.Int64()),
        _cancelled=(final == "CANCELLED").cast(nw.Int64()),
        _unfinished=(~nw.col("terminal")).cast(nw.Int64()),
        _first=(counted & nw.col("first_attempt_failed")).cast(nw.Int64()),
        _rescued=nw.col("rescued").cast(nw.Int64()),
    )
    sums = {
        "runs": "_counted",
        "completed": "_completed",
        "failed": "_failed",
        "crashed": "_crashed",
        "cancelled": "_cancelled",
        "unfinished": "_unfinished",
        "first_attempt_failed": "_first",
        "rescued": "_rescued",
    }
    totals = [nw.col(flag).sum().alias(name) for name, flag in sums.items()]
    if groups:
        agg = flags.group_by(*groups, drop_null_keys=False).agg(*totals)
    else:
        agg = flags.select(*totals)
    low, high = wilson(nw.col("failed"), nw.col("runs"))
    first_low, first_high = wilson(nw.col("first_attempt_failed"), nw.col("runs"))
    n = nw.when(nw.col("runs") > 0).then(nw.col("runs").cast(nw.Float64()))
    result = agg.select(
        *groups,
        "runs",
        "completed",
        "failed",
        "crashed",
        "cancelled",
        "unfinished",
        failure_rate=nw.col("failed") / n,
        ci_low=low,
        ci_high=high,
        first_attempt_failed=nw.col("first_attempt_failed"),
        first_attempt_failure_rate=nw.col("first_attempt_failed") / n,
        first_attempt_ci_low=first_low,
        first_attempt_ci_high=first_high,
        rescued=nw.col("rescued"),
    )
    if groups:
        result = result.sort(groups, nulls_last=True)
    return finish(
        result,
        states,
        timestamps=["bucket"] if every is not None else [],
        counts=list(sums),
    )

"""Concurrency over time: how many runs were RUNNING at each moment, and waits for a slot.

A run is *running* while it is in a RUNNING-type state (``Running``,
``Retrying``): from that state's timestamp to the run's next state. Each
such span adds +1 when it starts and -1 when it ends; a span still open
(the run's latest state is RUNNING) only adds +1. Changes at one instant
are summed (a ``Running`` followed by ``Retrying`` at the same instant is no
change) and the running count is their cumulative sum in time order, per
group. This works alike on task-run states (counting task runs) and on
flow-run states (counting flow runs).

``AwaitingConcurrencySlot`` is the SCHEDULED-type state Prefect gives a task
run that waits for a tag concurrency limit; :func:`slot_waits` measures it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import narwhals as nw

from trs_analytics.metrics._buckets import bucket_of, parse_every
from trs_analytics.metrics._common import (
    RUN,
    as_list,
    carried_timestamps,
    explode_tags,
    is_type,
    next_us,
    outcomes,
)
from trs_analytics.metrics._frames import finish
from trs_analytics.metrics._runs import run_carry, run_timeline

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trs_analytics.metrics._frames import Frame

__all__ = ["SLOT_WAIT", "concurrency", "peak_concurrency", "slot_waits"]

#: The state a run is in while it waits for a concurrency slot.
SLOT_WAIT: Final = "AwaitingConcurrencySlot"


def _over(expr: nw.Expr, keys: Sequence[str], order: str) -> nw.Expr:
    return expr.over(*keys, order_by=order) if keys else expr.over(order_by=order)


def _series(states: Any, *, caller: str, keys: Sequence[str]) -> nw.LazyFrame[Any]:
    """The step series in microseconds: ``keys``, ``_t``, ``change``, ``running``."""
    tl, _ = run_timeline(states, caller=caller, needs=keys)
    spans = (
        tl.with_columns(_next_us=next_us())
        .filter(is_type("RUNNING"))
        .select(*keys, "_us", "_next_us")
    )
    spans = explode_tags(spans, keys)
    starts = spans.select(*keys, _t=nw.col("_us"), _d=nw.lit(1, dtype=nw.Int64()))
    ends = spans.filter(~nw.col("_next_us").is_null()).select(
        *keys, _t=nw.col("_next_us"), _d=nw.lit(-1, dtype=nw.Int64())
    )
    events = nw.concat([starts, ends], how="vertical")
    steps: nw.LazyFrame[Any] = (
        events.group_by(*keys, "_t", drop_null_keys=False)
        .agg(change=nw.col("_d").sum())
        .filter(nw.col("change") != 0)
    )
    return steps.with_columns(running=_over(nw.col("change").cum_sum(), keys, "_t"))


def concurrency(states: Frame, *, by: str | Sequence[str] | None = None) -> Frame:
    """The step series of how many runs were RUNNING at each moment.

    Args:
        states: task-run states (counting task runs) or flow-run states
            (counting flow runs) of any supported engine.
        by: the grouping column(s): ``None`` for one series, ``"tags"`` (a run
            counts in each of its tags), ``"work_pool_name"``,
            ``"deployment_name"`` (flow-run states)...

    Returns:
        The kind of frame given, one row per moment the count changed,
        ordered by group and time: the ``by`` columns, ``timestamp``,
        ``change`` (runs that started minus runs that stopped running then)
        and ``running`` (how many were running from then on).

    Raises:
        SchemaError: a required or ``by`` column is missing.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "a", "a", "b", "b"],
        ...     "type": ["RUNNING", "RUNNING", "COMPLETED", "RUNNING", "FAILED"],
        ...     "name": ["Running", "Retrying", "Completed", "Running", "Failed"],
        ...     "timestamp": [t(0), t(2), t(5), t(1), t(3)],
        ... })
        >>> ta.concurrency(states).select(pl.col("timestamp").dt.second(), "change", "running").rows()
        [(0, 1, 1), (1, 1, 2), (3, -1, 1), (5, -1, 0)]
    """
    keys = as_list(by)
    series = _series(states, caller="concurrency", keys=keys)
    result = series.select(*keys, timestamp=nw.col("_t"), change="change", running="running")
    result = result.sort([*keys, "timestamp"], nulls_last=True)
    return finish(result, states, timestamps=["timestamp"])


def peak_concurrency(
    states: Frame, *, by: str | Sequence[str] | None = None, every: str = "1d"
) -> Frame:
    """The most runs RUNNING at once in each time bucket, per group.

    The peak of a bucket counts the runs still running as it begins. Buckets
    in which the count never changes are left out: their count is the
    ``running`` of the last change before them (see :func:`concurrency`).

    Args:
        states: task-run or flow-run states of any supported engine.
        by: the grouping column(s), as for :func:`concurrency`.
        every: the bucket width (``"1m"``, ``"1h"``, ``"1d"``...), aligned to
            the epoch (weeks to Mondays), in UTC; one day by default (see
            docs/metrics.md, "Time buckets").

    Returns:
        The kind of frame given, ordered by group and bucket: the ``by``
        columns, ``bucket`` (its start), ``peak`` and ``changes`` (moments
        the count changed in the bucket).

    Raises:
        ConfigurationError: ``every`` is not a duration in fixed units.
        SchemaError: a required or ``by`` column is missing.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda m: datetime(2026, 1, 1, 0, m, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "flow_run_id": ["a", "a", "b", "b", "c", "c"],
        ...     "type": ["RUNNING", "COMPLETED"] * 3,
        ...     "name": ["Running", "Completed"] * 3,
        ...     "timestamp": [t(0), t(30), t(10), t(20), t(40), t(50)],
        ... })
        >>> ta.peak_concurrency(states, every="15m").select(
        ...     pl.col("bucket").dt.minute(), "peak", "changes").rows()
        [(0, 2, 2), (15, 2, 1), (30, 1, 2), (45, 1, 1)]
    """
    keys = as_list(by)
    width = parse_every(every)
    series = _series(states, caller="peak_concurrency", keys=keys).with_columns(
        _before=nw.col("running") - nw.col("change"),
        bucket=bucket_of(nw.col("_t"), width),
    )
    peaks = series.group_by(*keys, "bucket", drop_null_keys=False).agg(
        _after=nw.col("running").max(),
        _entering=nw.col("_before").max(),
        changes=nw.len(),
    )
    result = peaks.select(
        *keys,
        "bucket",
        peak=nw.max_horizontal("_after", "_entering"),
        changes="changes",
    ).sort([*keys, "bucket"], nulls_last=True)
    return finish(result, states, timestamps=["bucket"], counts=["changes"])


def slot_waits(states: Frame) -> Frame:
    """How long each run waited for a concurrency slot (``AwaitingConcurrencySlot``).

    Each ``AwaitingConcurrencySlot`` state lasts until the run's next state.
    A run may wait several times (once per attempt, or after being put back).

    Args:
        states: task-run states (or flow-run states) of any supported engine.

    Returns:
        The kind of frame given, one row per run that waited, ordered by run
        id: the run id (``task_run_id`` or ``flow_run_id``), its carried
        columns (``task_name``, ``tags``... those present), ``waits`` (its
        ``AwaitingConcurrencySlot`` states), ``slot_wait`` (their total
        duration, waits that have not ended left out) and ``waiting`` (the
        run's latest state is still ``AwaitingConcurrencySlot``).

    Raises:
        SchemaError: a required column is missing.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a"] * 5 + ["b"] * 2,
        ...     "type": ["PENDING", "SCHEDULED", "PENDING", "RUNNING", "COMPLETED",
        ...              "PENDING", "RUNNING"],
        ...     "name": ["Pending", "AwaitingConcurrencySlot", "Pending", "Running", "Completed",
        ...              "Pending", "Running"],
        ...     "timestamp": [t(0), t(1), t(31), t(32), t(40), t(0), t(1)],
        ... })
        >>> ta.slot_waits(states).select("task_run_id", "waits", "slot_wait", "waiting").rows()
        [('a', 1, datetime.timedelta(seconds=30), False)]
    """
    tl, column = run_timeline(states, caller="slot_waits")
    carry = run_carry(states, column)
    slot = nw.col("name") == SLOT_WAIT
    tl = tl.with_columns(_next_us=next_us()).with_columns(
        _slot=slot.cast(nw.Int64()),
        _slot_us=nw.when(slot).then(nw.col("_next_us") - nw.col("_us")),
        _open=(slot & nw.col("_next_us").is_null()).cast(nw.Int64()),
    )
    extra = {
        "waits": nw.col("_slot").sum(),
        "slot_wait": nw.col("_slot_us").sum(),
        "_open": nw.col("_open").sum(),
    }
    runs = outcomes(tl, carry, extra=extra).filter(nw.col("waits") > 0)
    result = runs.select(
        nw.col(RUN).alias(column), *carry, "waits", "slot_wait", waiting=nw.col("_open") > 0
    ).sort(column)
    stamps = carried_timestamps(carry)
    return finish(result, states, timestamps=stamps, durations=["slot_wait"], counts=["waits"])

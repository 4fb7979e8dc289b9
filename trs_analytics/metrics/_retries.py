"""Attempts, retries and final outcome of each task run, counted from its states.

Every attempt of a task run enters a RUNNING-type state exactly once, on
every Prefect version: ``Running`` for the first attempt, then ``Retrying``
(Prefect 3, with or without an ``AwaitingRetry`` in between) or ``Running``
again after ``Awaiting Retry`` (older Prefect 2). So ``attempts`` is the
number of RUNNING-type states and ``retries = max(attempts - 1, 0)``. The
``run_count`` column is not used: it was wrong on retried runs before Prefect 3.

Both metrics are hash aggregates over the runs (see
:func:`~trs_analytics.metrics._common.outcomes`): no sort, on every engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import narwhals as nw

from trs_analytics.metrics._common import (
    RUN,
    as_list,
    carried,
    carried_timestamps,
    explode_tags,
    group_keys,
    outcomes,
)
from trs_analytics.metrics._frames import finish
from trs_analytics.metrics._run_table import per_run

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trs_analytics.metrics._frames import Frame

__all__ = ["retry_counts", "retry_distribution"]

#: retry_counts' columns after the run's own.
_OUTCOME_COLUMNS = (
    "attempts",
    "retries",
    "final_type",
    "final_name",
    "terminal",
    "first_attempt_failed",
    "rescued",
    "start_time",
    "end_time",
)


def retry_counts(states: Frame) -> Frame:
    """Count attempts and retries of each task run and give its final outcome.

    Args:
        states: a states frame: a Polars DataFrame or LazyFrame, a DuckDB
            relation or a PySpark DataFrame.

    Returns:
        The kind of frame given, one row per task run, ordered by
        ``task_run_id``: the run's columns (``task_name``, ``flow_name``...
        those present), ``attempts`` (RUNNING-type states), ``retries``
        (``attempts - 1``, at least 0), ``final_type`` and ``final_name``
        (the run's latest state), ``terminal`` (the latest state is
        COMPLETED, FAILED, CANCELLED or CRASHED), ``first_attempt_failed``
        (the run was retried, or ended FAILED/CRASHED), ``rescued`` (ended
        COMPLETED after a retry or an earlier FAILED/CRASHED state),
        ``start_time`` and ``end_time`` (its first and latest state).

    Raises:
        SchemaError: a required column is missing or ``timestamp`` has no time zone.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["p3"] * 5 + ["p2"] * 4,
        ...     "type": ["PENDING", "RUNNING", "RUNNING", "RUNNING", "COMPLETED",
        ...              "PENDING", "RUNNING", "SCHEDULED", "RUNNING"],
        ...     "name": ["Pending", "Running", "Retrying", "Retrying", "Completed",
        ...              "Pending", "Running", "Awaiting Retry", "Running"],
        ...     "timestamp": [t(0), t(1), t(2), t(3), t(4), t(0), t(1), t(2), t(3)],
        ... })
        >>> ta.retry_counts(states).select(
        ...     "task_run_id", "attempts", "retries", "final_type", "terminal", "rescued")
        shape: (2, 6)
        ┌─────────────┬──────────┬─────────┬────────────┬──────────┬─────────┐
        │ task_run_id ┆ attempts ┆ retries ┆ final_type ┆ terminal ┆ rescued │
        │ ---         ┆ ---      ┆ ---     ┆ ---        ┆ ---      ┆ ---     │
        │ str         ┆ u32      ┆ u32     ┆ enum       ┆ bool     ┆ bool    │
        ╞═════════════╪══════════╪═════════╪════════════╪══════════╪═════════╡
        │ p2          ┆ 2        ┆ 1       ┆ RUNNING    ┆ false    ┆ false   │
        │ p3          ┆ 3        ┆ 2       ┆ COMPLETED  ┆ true     ┆ true    │
        └─────────────┴──────────┴─────────┴────────────┴──────────┴─────────┘
    """
    carry = carried(states)
    runs = per_run(
        states,
        caller="retry_counts",
        build=lambda tl: outcomes(tl, carry, finals={"final_name": "name"}),
    )
    result = runs.select(RUN, *carry, *_OUTCOME_COLUMNS).sort(RUN)
    return finish(
        result,
        states,
        timestamps=["start_time", "end_time", *carried_timestamps(carry)],
        counts=["attempts", "retries"],
        state_types=["final_type"],
    )


def retry_distribution(states: Frame, *, by: str | Sequence[str] | None = "task_name") -> Frame:
    """Count finished task runs by number of retries, per group.

    Only runs in a terminal state count: a running run may still retry.

    Args:
        states: a states frame.
        by: the grouping column(s), ``None`` for one overall distribution. A
            run counts once in each of its ``tags`` when ``tags`` is among them.

    Returns:
        The kind of frame given: the ``by`` columns, ``retries``, ``runs`` and
        ``share`` (of the group's finished runs), ordered by group and retries.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "a", "b", "b", "b", "c", "c"],
        ...     "task_name": ["etl"] * 7,
        ...     "type": ["RUNNING", "COMPLETED", "RUNNING", "RUNNING", "FAILED",
        ...              "RUNNING", "COMPLETED"],
        ...     "name": ["Running", "Completed", "Running", "Retrying", "Failed",
        ...              "Running", "Completed"],
        ...     "timestamp": [t(0), t(1), t(0), t(1), t(2), t(0), t(1)],
        ... })
        >>> ta.retry_distribution(states).rows()
        [('etl', 0, 2, 0.6666666666666666), ('etl', 1, 1, 0.3333333333333333)]
    """
    keys: list[str] = as_list(by)
    built = per_run(
        states,
        caller="retry_distribution",
        needs=keys,
        build=lambda tl: outcomes(tl, group_keys(keys)),
    )
    runs = explode_tags(built, keys).filter(nw.col("terminal"))
    counted = runs.group_by(*keys, "retries", drop_null_keys=False).agg(runs=nw.len())
    total = nw.col("runs").sum().over(*keys) if keys else nw.col("runs").sum()
    result = counted.with_columns(share=nw.col("runs") / total).sort(
        [*keys, "retries"], nulls_last=True
    )
    return finish(result, states, counts=["runs", "retries"])

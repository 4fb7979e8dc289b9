"""Each state as an interval of its run, and the transitions between consecutive states."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import narwhals as nw

from trs_analytics.metrics._common import (
    RUN,
    carried,
    carried_timestamps,
    check_level,
    in_run,
    is_type,
    next_us,
    timeline,
    type_of_rank,
)
from trs_analytics.metrics._frames import finish

if TYPE_CHECKING:
    from trs_analytics.metrics._frames import Frame

__all__ = ["state_intervals", "transitions"]


def _ordered(tl: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """Add each state's position in its run and the next state's timestamp, rank and name."""
    running = is_type("RUNNING").cast(nw.Int64())
    return tl.with_columns(
        position=in_run(nw.col("_us").cum_count()) - 1,
        _next_us=next_us(),
        _next_rank=in_run(nw.col("_rank").shift(-1)),
        _next_name=in_run(nw.col("name").shift(-1)),
        _attempt=in_run(running.cum_sum()),
    )


def state_intervals(states: Frame) -> Frame:
    """Give every state of every run as an interval: from its timestamp to the next state's.

    A run's last state has no end yet: its ``end_time`` and ``duration`` are
    null. What the timeline chart draws, on any engine.

    Args:
        states: a states frame: a Polars DataFrame or LazyFrame, a DuckDB
            relation or a PySpark DataFrame.

    Returns:
        The kind of frame given, one row per (de-duplicated) state, ordered by
        run and position: ``task_run_id``, the run's columns, ``type``,
        ``name``, ``position`` (0 for the run's first state), ``attempt`` (1
        up to the first retry, then 2...), ``start_time``, ``end_time``,
        ``duration``.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a"] * 4,
        ...     "type": ["PENDING", "RUNNING", "RUNNING", "COMPLETED"],
        ...     "name": ["Pending", "Running", "Retrying", "Completed"],
        ...     "timestamp": [t(0), t(2), t(5), t(6)],
        ... })
        >>> ta.state_intervals(states).select("name", "attempt", "duration").rows()
        [('Pending', 1, datetime.timedelta(seconds=2)), ('Running', 1, datetime.timedelta(seconds=3)), ('Retrying', 2, datetime.timedelta(seconds=1)), ('Completed', 2, None)]
    """
    carry = carried(states)
    tl = _ordered(timeline(states, caller="state_intervals"))
    result = tl.select(
        RUN,
        *carry,
        type=type_of_rank(nw.col("_rank")),
        name=nw.col("name"),
        position=nw.col("position"),
        attempt=nw.when(nw.col("_attempt") > 1).then(nw.col("_attempt")).otherwise(nw.lit(1)),
        start_time=nw.col("_us"),
        end_time=nw.col("_next_us"),
        duration=nw.col("_next_us") - nw.col("_us"),
    ).sort(RUN, "position")
    return finish(
        result,
        states,
        timestamps=["start_time", "end_time", *carried_timestamps(carry)],
        durations=["duration"],
        counts=["position", "attempt"],
        state_types=["type"],
    )


def transitions(states: Frame, *, level: Literal["type", "name"] = "type") -> Frame:
    """Count how often a task run went from one state to the next.

    Each run's states are de-duplicated and ordered (as every metric does);
    every pair of consecutive states is one transition.

    Args:
        states: a states frame of any supported engine.
        level: ``"type"`` counts transitions between state types, ``"name"``
            between state names.

    Returns:
        The kind of frame given: ``from``, ``to`` (text), ``count``,
        ``share`` (of all transitions leaving ``from``), ``from_order`` and
        ``to_order`` (the state type's lifecycle position times 1000 plus the
        state's mean position in its run: what orders a chart's axes), by
        descending count, then ``from`` and ``to``.

    Raises:
        ConfigurationError: ``level`` is not ``"type"`` or ``"name"``.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "a", "a", "b", "b"],
        ...     "type": ["PENDING", "RUNNING", "COMPLETED", "PENDING", "RUNNING"],
        ...     "name": ["Pending", "Running", "Completed", "Pending", "Running"],
        ...     "timestamp": [t(0), t(1), t(2), t(0), t(1)],
        ... })
        >>> ta.transitions(states).select("from", "to", "count", "share").rows()
        [('PENDING', 'RUNNING', 2, 1.0), ('RUNNING', 'COMPLETED', 1, 1.0)]
    """
    check_level(level)
    # only the windows a transition reads (each ordered window sorts every run's states)
    tl = timeline(states, caller="transitions").with_columns(
        position=in_run(nw.col("_us").cum_count()) - 1,
        _next_us=next_us(),
        _next_rank=in_run(nw.col("_rank").shift(-1)),
        **({"_next_name": in_run(nw.col("name").shift(-1))} if level == "name" else {}),
    )
    if level == "type":
        source, target = type_of_rank(nw.col("_rank")), type_of_rank(nw.col("_next_rank"))
    else:
        source, target = nw.col("name"), nw.col("_next_name")
    order = nw.col("_rank").cast(nw.Float64()) * 1000 + nw.col("position").cast(nw.Float64())
    pairs = (
        tl.filter(~nw.col("_next_us").is_null())
        .with_columns(
            _order=order,
            _to_order=nw.col("_next_rank").cast(nw.Float64()) * 1000
            + (nw.col("position") + 1).cast(nw.Float64()),
        )
        .with_columns(**{"from": source, "to": target})
        .group_by("from", "to", drop_null_keys=False)
        .agg(
            count=nw.len(),
            from_order=nw.col("_order").mean(),
            to_order=nw.col("_to_order").mean(),
        )
    )
    result = (
        pairs.with_columns(share=nw.col("count") / nw.col("count").sum().over("from"))
        .select("from", "to", "count", "share", "from_order", "to_order")
        .sort(["count", "from", "to"], descending=[True, False, False])
    )
    return finish(result, states, counts=["count"])

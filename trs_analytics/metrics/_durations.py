"""Durations between task-run states: the general form and the named forms.

A run's *timeline* is its de-duplicated states ordered by ``timestamp`` (see
:mod:`trs_analytics.metrics._common`). A duration goes from a *start* state to
the next state after it on that timeline that matches *end*, so it is never
negative: a late-arriving or clock-skewed state changes the order of the
timeline, not the sign of a duration. Only :func:`lateness` compares a state
with something outside the timeline (``expected_start_time``); there a
negative difference is reported as null and flagged.
"""

from __future__ import annotations

from typing import Literal, get_args

import polars as pl

from trs_analytics.exceptions import ConfigurationError
from trs_analytics.metrics._common import (
    RUN,
    Frame,
    Selector,
    carried,
    cum_in_run,
    join_run_columns,
    like,
    match,
    next_in_run,
    timeline,
    total_in_run,
    with_run_columns,
)
from trs_analytics.schema import TERMINAL_TYPES

__all__ = [
    "Occurrence",
    "durations",
    "end_to_end",
    "lateness",
    "queue_wait",
    "retry_wait",
    "run_time",
    "time_in_state",
]

#: Which start states of a run give a duration.
Occurrence = Literal["first", "last", "every"]

#: The next state's timestamp within the run (null for a run's last state).
_next_timestamp = pl.when(~pl.col("_last")).then(pl.col("timestamp").shift(-1))

_OUT = ("occurrence", "start_state", "end_state", "start_time", "end_time", "duration")


def _occurrence(occurrence: str) -> Occurrence:
    for allowed in get_args(Occurrence):
        if occurrence == allowed:
            return allowed  # type: ignore[no-any-return]
    msg = (
        f"occurrence={occurrence!r} is not one of 'first', 'last', 'every'. "
        "Hint: 'first' measures from a run's first start state, 'last' from its last, "
        "'every' gives one row per start state."
    )
    raise ConfigurationError(msg)


def _between(
    lf: pl.LazyFrame, start: pl.Expr, end: pl.Expr, occurrence: Occurrence, carry: list[str]
) -> pl.LazyFrame:
    """Measure from each selected start state to the next end state after it."""
    # ``& row`` broadcasts a scalar selector (``"*"``, ``pl.lit(True)``) to every row
    row = pl.col(RUN).is_not_null()
    is_end = end.fill_null(value=False) & row
    lf = lf.with_columns(
        _start=start.fill_null(value=False) & row,
        end_time=next_in_run(is_end, pl.col("timestamp")),
        end_state=next_in_run(is_end, pl.col("name")),
    )
    starts = pl.col("_start").cast(pl.UInt32)
    lf = lf.with_columns(occurrence=cum_in_run(starts), _occurrences=total_in_run(starts))
    lf = lf.filter(pl.col("_start"))
    if occurrence == "first":
        lf = lf.filter(pl.col("occurrence") == 1)
    elif occurrence == "last":
        lf = lf.filter(pl.col("occurrence") == pl.col("_occurrences"))
    return lf.select(
        RUN,
        *carry,
        "occurrence",
        "end_state",
        start_state="name",
        start_time="timestamp",
        end_time="end_time",
        duration=pl.col("end_time") - pl.col("timestamp"),
    ).select(RUN, *carry, *_OUT)


def durations(
    states: Frame,
    *,
    start: Selector,
    end: Selector,
    occurrence: Occurrence = "first",
) -> Frame:
    """Measure, per task run, the time from a start state to the next end state.

    On each run's timeline (states de-duplicated and ordered by timestamp), a
    duration starts at a state matching ``start`` and ends at the first later
    state matching ``end``. It is never negative. When no such end state
    follows (the run has not got there yet), ``end_time`` and ``duration`` are
    null. Runs with no ``start`` state give no row.

    Args:
        states: a states frame (DataFrame or LazyFrame).
        start: the state(s) to measure from: a state type (``"PENDING"``), a
            state name (``"AwaitingRetry"``), ``"TERMINAL"``, ``"*"`` (any
            state), a collection of these, or a boolean ``pl.Expr``.
        end: the state(s) to measure to, in the same forms.
        occurrence: ``"first"`` measures from the run's first start state,
            ``"last"`` from its last, ``"every"`` gives one row per start
            state (intervals may then share an end state).

    Returns:
        The kind of frame given, one row per run (per start state for
        ``"every"``): ``task_run_id``, the run's columns (``task_name``,
        ``flow_name``, ``tags``... those present), ``occurrence`` (1-based
        index of the start state among the run's start states),
        ``start_state``, ``end_state`` (state names), ``start_time``,
        ``end_time`` and ``duration`` (``Duration("us")``).

    Raises:
        SchemaError: a required column is missing or ``timestamp`` has no time zone.
        ConfigurationError: a selector or ``occurrence`` is not valid.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a"] * 5,
        ...     "type": ["PENDING", "RUNNING", "SCHEDULED", "RUNNING", "COMPLETED"],
        ...     "name": ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"],
        ...     "timestamp": [t(0), t(2), t(5), t(9), t(10)],
        ... })
        >>> ta.durations(states, start="RUNNING", end="*", occurrence="every").select(
        ...     "start_state", "end_state", "duration")
        shape: (2, 3)
        ┌─────────────┬───────────────┬──────────────┐
        │ start_state ┆ end_state     ┆ duration     │
        │ ---         ┆ ---           ┆ ---          │
        │ str         ┆ str           ┆ duration[μs] │
        ╞═════════════╪═══════════════╪══════════════╡
        │ Running     ┆ AwaitingRetry ┆ 3s           │
        │ Retrying    ┆ Completed     ┆ 1s           │
        └─────────────┴───────────────┴──────────────┘
    """
    how = _occurrence(occurrence)
    lf = timeline(states, caller="durations")
    carry = carried(states)
    result = _between(lf, match(start, argument="start"), match(end, argument="end"), how, carry)
    return like(states, result)


def queue_wait(states: Frame) -> Frame:
    """Measure queue wait: a run's first SCHEDULED/PENDING state to its next RUNNING state.

    Same output as :func:`durations` with ``start=["SCHEDULED", "PENDING"]``,
    ``end="RUNNING"``, ``occurrence="first"``.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "a", "a"],
        ...     "type": ["PENDING", "RUNNING", "COMPLETED"],
        ...     "name": ["Pending", "Running", "Completed"],
        ...     "timestamp": [t(0), t(2), t(7)],
        ... })
        >>> ta.queue_wait(states)["duration"].to_list()
        [datetime.timedelta(seconds=2)]
    """
    return durations(states, start=["SCHEDULED", "PENDING"], end="RUNNING")


def end_to_end(states: Frame) -> Frame:
    """Measure end-to-end time: a run's first state to its final, terminal state.

    The end is the run's latest state when that state is terminal (a Failed
    state written between attempts is not the end). Runs not yet terminal
    have a null ``end_time`` and ``duration``. Otherwise the output is that
    of :func:`durations` with ``occurrence="first"``.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "a", "a", "b"],
        ...     "type": ["PENDING", "RUNNING", "FAILED", "PENDING"],
        ...     "name": ["Pending", "Running", "Failed", "Pending"],
        ...     "timestamp": [t(0), t(2), t(7), t(1)],
        ... })
        >>> ta.end_to_end(states).select("task_run_id", "end_state", "duration").rows()
        [('a', 'Failed', datetime.timedelta(seconds=7)), ('b', None, None)]
    """
    final = pl.col("_last") & pl.col("type").is_in(TERMINAL_TYPES)
    return durations(states, start="*", end=final)


def retry_wait(states: Frame, *, occurrence: Occurrence = "every") -> Frame:
    """Measure retry waits: each SCHEDULED-type state after a run's first attempt to the next RUNNING state.

    This is AwaitingRetry → Retrying on Prefect 3 and "Awaiting Retry" →
    Running on older Prefect 2. A retry with ``retry_delay_seconds=0`` goes
    straight from one RUNNING state to the next and has no wait, hence no row.

    Args:
        states: a states frame.
        occurrence: ``"every"`` (default) gives one row per wait; ``"first"``
            or ``"last"`` one per run.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a"] * 6,
        ...     "type": ["SCHEDULED", "RUNNING", "SCHEDULED", "RUNNING", "SCHEDULED", "RUNNING"],
        ...     "name": ["Late", "Running", "AwaitingRetry", "Retrying", "Awaiting Retry", "Running"],
        ...     "timestamp": [t(0), t(1), t(2), t(5), t(6), t(10)],
        ... })
        >>> ta.retry_wait(states)["duration"].dt.total_seconds().to_list()
        [3, 4]
    """
    running = (pl.col("type") == "RUNNING").cast(pl.UInt32)
    after_first_attempt = cum_in_run(running) - running > 0
    start = (pl.col("type") == "SCHEDULED") & after_first_attempt
    return durations(states, start=start, end="RUNNING", occurrence=occurrence)


def time_in_state(states: Frame, *, level: Literal["type", "name"] = "type") -> Frame:
    """Sum, per task run, the time spent in each state type (or state name).

    A state lasts from its timestamp to the next state's timestamp on the
    run's timeline. A run's last state has no end yet (for a finished run it
    is the terminal state), so it adds nothing. The durations of a run's rows
    therefore add up to its last state's timestamp minus its first.

    Args:
        states: a states frame.
        level: ``"type"`` groups by state type, ``"name"`` by state name.

    Returns:
        The kind of frame given: ``task_run_id``, the run's columns, ``type``
        (or ``name``), ``entries`` (how many times the run entered it) and
        ``duration``, ordered by run and then by type (or name).

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a"] * 5,
        ...     "type": ["PENDING", "RUNNING", "SCHEDULED", "RUNNING", "COMPLETED"],
        ...     "name": ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"],
        ...     "timestamp": [t(0), t(2), t(5), t(9), t(10)],
        ... })
        >>> ta.time_in_state(states).select("type", "entries", "duration").rows()
        [('SCHEDULED', 1, datetime.timedelta(seconds=4)), ('PENDING', 1, datetime.timedelta(seconds=2)), ('RUNNING', 2, datetime.timedelta(seconds=4))]
    """
    if level not in ("type", "name"):
        msg = f"level={level!r} is not 'type' or 'name'. Hint: use level='type' or level='name'."
        raise ConfigurationError(msg)
    carry = carried(states)
    tl = timeline(states, caller="time_in_state")
    agg = (
        tl.with_columns(_next=_next_timestamp)
        .filter(~pl.col("_last"))
        .group_by("_run", level)
        .agg(
            entries=pl.len().cast(pl.UInt32),
            duration=(pl.col("_next") - pl.col("timestamp")).sum(),
        )
        .sort("_run", level)
    )
    result = join_run_columns(tl, agg, carry).select(RUN, *carry, level, "entries", "duration")
    return like(states, result)


def run_time(states: Frame) -> Frame:
    """Sum, per task run, the time spent in RUNNING-type states over all attempts.

    Each RUNNING-type state (Running, Retrying) lasts until the next state.
    ``start_time`` is the first RUNNING state, ``end_time`` the end of the
    last one. A run still in a RUNNING state has its time unknown: its
    ``end_time`` and ``duration`` are null. Runs that never ran give no row.

    Returns:
        The kind of frame given: ``task_run_id``, the run's columns,
        ``attempts`` (RUNNING-type states), ``start_time``, ``end_time``,
        ``duration``.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a"] * 5,
        ...     "type": ["PENDING", "RUNNING", "SCHEDULED", "RUNNING", "COMPLETED"],
        ...     "name": ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"],
        ...     "timestamp": [t(0), t(2), t(5), t(9), t(10)],
        ... })
        >>> ta.run_time(states).select("attempts", "duration").rows()
        [(2, datetime.timedelta(seconds=4))]
    """
    carry = carried(states)
    tl = timeline(states, caller="run_time")
    running = pl.col("type") == "RUNNING"
    agg = (
        tl.with_columns(_next=_next_timestamp)
        .group_by("_run")
        .agg(
            attempts=running.sum().cast(pl.UInt32),
            start_time=pl.col("timestamp").filter(running).first(),
            end_time=pl.col("_next").filter(running).last(),
            duration=(pl.col("_next") - pl.col("timestamp")).filter(running).sum(),
        )
        .with_columns(duration=pl.when(pl.col("end_time").is_not_null()).then("duration"))
    )
    result = (
        with_run_columns(tl, agg, carry)
        .filter(pl.col("attempts") > 0)
        .select(RUN, *carry, "attempts", "start_time", "end_time", "duration")
    )
    return like(states, result)


def lateness(states: Frame) -> Frame:
    """Measure lateness: a run's first RUNNING state minus its ``expected_start_time``.

    ``expected_start_time`` is set when the run is created, possibly by
    another clock than the one that stamped the states. A negative
    difference (the run seemingly started early) is not reported as real:
    ``duration`` is null and ``negative`` is true.

    Returns:
        The kind of frame given: ``task_run_id``, the run's columns,
        ``start_time`` (``expected_start_time``), ``end_time`` (first
        RUNNING state), ``duration``, ``negative``. Runs that never ran give
        no row.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "a", "b"],
        ...     "type": ["PENDING", "RUNNING", "RUNNING"],
        ...     "name": ["Pending", "Running", "Running"],
        ...     "timestamp": [t(1), t(3), t(4)],
        ...     "expected_start_time": [t(0), t(0), t(5)],
        ... })
        >>> ta.lateness(states).select("task_run_id", "duration", "negative").rows()
        [('a', datetime.timedelta(seconds=3), False), ('b', None, True)]
    """
    carry = carried(states)
    tl = timeline(states, caller="lateness", needs=["expected_start_time"])
    diff = pl.col("end_time") - pl.col("start_time")
    running = pl.col("type") == "RUNNING"
    agg = (
        tl.group_by("_run")
        .agg(
            _ran=running.any(),
            start_time=pl.col("expected_start_time").filter(running).first(),
            end_time=pl.col("timestamp").filter(running).first(),
        )
        .with_columns(negative=(diff < pl.duration(microseconds=0)).fill_null(value=False))
        .with_columns(duration=pl.when(~pl.col("negative")).then(diff))
    )
    result = (
        with_run_columns(tl, agg, carry)
        .filter(pl.col("_ran"))
        .select(RUN, *carry, "start_time", "end_time", "duration", "negative")
    )
    return like(states, result)

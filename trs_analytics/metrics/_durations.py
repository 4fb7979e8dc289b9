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

from typing import TYPE_CHECKING, Any, Literal, get_args

import narwhals as nw

from trs_analytics.exceptions import ConfigurationError
from trs_analytics.metrics._common import (
    RUN,
    Selector,
    attempt_count,
    carried,
    carried_timestamps,
    check_level,
    in_run,
    is_type,
    match,
    narrow_windows,
    next_us,
    once_closed,
    run_aggregate,
    timeline,
    type_of_rank,
    with_carried,
    with_polars_selectors,
)
from trs_analytics.metrics._frames import aggregate, finish
from trs_analytics.metrics._run_table import table_runs
from trs_analytics.schema import EXPECTED_START, TERMINAL_TYPES

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from trs_analytics.metrics._frames import Frame

__all__ = [
    "Occurrence",
    "durations",
    "end_to_end",
    "lateness",
    "queue_wait",
    "retry_wait",
    "run_time",
    "run_time_rows",
    "time_in_state",
]

#: Which start states of a run give a duration.
Occurrence = Literal["first", "last", "every"]

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
    tl: nw.LazyFrame[Any],
    start: nw.Expr,
    end: nw.Expr,
    occurrence: Occurrence,
    carry: list[str],
) -> nw.LazyFrame[Any]:
    """Measure from each selected start state to the next end state after it."""
    lf = tl.with_columns(
        _start=start.fill_null(value=False), _end=end.fill_null(value=False)
    ).with_columns(
        # the end state after each row: the next row's value if it is an end, filled
        # backwards over the rows that are not
        _end_us=in_run(nw.when(nw.col("_end")).then(nw.col("_us")).shift(-1)),
        _end_name=in_run(nw.when(nw.col("_end")).then(nw.col("name")).shift(-1)),
        occurrence=in_run(nw.col("_start").cast(nw.Int64()).cum_sum()),
        _occurrences=nw.col("_start").cast(nw.Int64()).sum().over(RUN),
    )
    lf = lf.with_columns(
        end_time=in_run(nw.col("_end_us").fill_null(strategy="backward")),
        end_state=in_run(nw.col("_end_name").fill_null(strategy="backward")),
    ).filter(nw.col("_start"))
    if occurrence == "first":
        lf = lf.filter(nw.col("occurrence") == 1)
    elif occurrence == "last":
        lf = lf.filter(nw.col("occurrence") == nw.col("_occurrences"))
    # the run's attributes travel through the windows on Polars only (narrow_windows)
    narrow = narrow_windows(tl)
    lf = lf.select(
        RUN,
        *([] if narrow else carry),
        "occurrence",
        start_state=nw.col("name"),
        end_state=nw.col("end_state"),
        start_time=nw.col("_us"),
        end_time=nw.col("end_time"),
        duration=nw.col("end_time") - nw.col("_us"),
    )
    if narrow:
        lf = with_carried(lf, tl, carry)
    return lf.select(RUN, *carry, *_OUT).sort(RUN, "occurrence")


def _durations(
    states: Frame,
    *,
    start: Selector,
    end: Selector,
    occurrence: str,
    caller: str,
    helpers: Callable[[nw.LazyFrame[Any]], nw.LazyFrame[Any]] | None = None,
) -> Frame:
    how = _occurrence(occurrence)
    native, selectors = with_polars_selectors(states, {"start": start, "end": end}, caller=caller)
    tl = timeline(native, caller=caller)
    if helpers is not None:
        tl = helpers(tl)
    carry = carried(states)
    result = _between(
        tl,
        match(selectors["start"], argument="start"),
        match(selectors["end"], argument="end"),
        how,
        carry,
    )
    return finish(
        result,
        states,
        timestamps=["start_time", "end_time", *carried_timestamps(carry)],
        durations=["duration"],
        counts=["occurrence"],
    )


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
        states: a states frame: a Polars DataFrame or LazyFrame, a DuckDB
            relation or a PySpark DataFrame.
        start: the state(s) to measure from: a state type (``"PENDING"``), a
            state name (``"AwaitingRetry"``), ``"TERMINAL"``, ``"*"`` (any
            state), a collection of these, or a boolean expression
            (``narwhals`` on any engine, ``polars`` on Polars frames).
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
    return _durations(states, start=start, end=end, occurrence=occurrence, caller="durations")


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
    return _durations(
        states,
        start=["SCHEDULED", "PENDING"],
        end="RUNNING",
        occurrence="first",
        caller="queue_wait",
    )


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
    final = nw.col("_is_last") & is_type(*TERMINAL_TYPES)

    def last_row(tl: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
        return tl.with_columns(_is_last=next_us().is_null())

    return _durations(
        states, start="*", end=final, occurrence="first", caller="end_to_end", helpers=last_row
    )


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
    running = is_type("RUNNING").cast(nw.Int64())

    def attempts_before(tl: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
        return tl.with_columns(_attempts_before=in_run(running.cum_sum()) - running)

    start = is_type("SCHEDULED") & (nw.col("_attempts_before") > 0)
    return _durations(
        states,
        start=start,
        end="RUNNING",
        occurrence=occurrence,
        caller="retry_wait",
        helpers=attempts_before,
    )


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
    check_level(level)
    carry = carried(states)
    tl = timeline(states, caller="time_in_state")
    key = "_rank" if level == "type" else "name"
    steps = tl.with_columns(_next=next_us()).filter(~nw.col("_next").is_null())
    aggs = {"entries": nw.len(), "duration": (nw.col("_next") - nw.col("_us")).sum()}
    result = aggregate(steps, [RUN, key], carry=carry, aggs=aggs).sort(RUN, key)
    if level == "type":
        result = result.with_columns(type=type_of_rank(nw.col("_rank")))
    result = result.select(RUN, *carry, level, "entries", "duration")
    return finish(
        result,
        states,
        timestamps=carried_timestamps(carry),
        durations=["duration"],
        counts=["entries"],
        state_types=["type"] if level == "type" else [],
    )


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
    result = run_time_rows(states, carry).sort(RUN)
    return finish(
        result,
        states,
        timestamps=["start_time", "end_time", *carried_timestamps(carry)],
        durations=["duration"],
        counts=["attempts"],
    )


def run_time_rows(states: Any, carry: Sequence[str]) -> nw.LazyFrame[Any]:
    """:func:`run_time`'s rows in no order, in microseconds (``RUN``, ``carry``, ``attempts``,
    ``start_time``, ``end_time``, ``duration``): for metrics that aggregate them."""
    runs = table_runs(states, caller="run_time")
    if runs is None:
        tl = timeline(states, caller="run_time", copies=True)
        running = is_type("RUNNING")
        aggs = {
            "attempts": attempt_count(tl),
            "start_time": nw.when(running).then(nw.col("_us")).min(),
        }
        runs = run_aggregate(tl, carry, aggs, spent=running)
    else:
        runs = runs.with_columns(start_time=nw.col("_run_from"))
    return (
        runs.filter(nw.col("attempts") > 0)
        .with_columns(end_time=once_closed("_end"), duration=once_closed("_time"))
        .select(RUN, *carry, "attempts", "start_time", "end_time", "duration")
    )


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
    diff = nw.col("end_time") - nw.col("start_time")
    runs = table_runs(states, caller="lateness", needs=[EXPECTED_START])
    if runs is None:
        tl = timeline(states, caller="lateness", needs=[EXPECTED_START], copies=True)
        running = is_type("RUNNING")
        steps = tl.with_columns(
            _running=running.cast(nw.Int64()),
            _expected=nw.when(running).then(nw.col(EXPECTED_START)),
            _start=nw.when(running).then(nw.col("_us")),
        )
        aggs = {
            **{c: nw.col(c).min() for c in carried_timestamps(carry)},
            "_ran": nw.col("_running").sum(),
            "start_time": nw.col("_expected").min(),
            "end_time": nw.col("_start").min(),
        }
        attrs = [c for c in carry if c not in carried_timestamps(carry)]
        runs = aggregate(steps, [RUN], carry=attrs, aggs=aggs)
    else:
        runs = runs.with_columns(start_time=nw.col("_expected_run"), end_time=nw.col("_run_from"))
    result = (
        runs.filter(nw.col("_ran") > 0)
        .with_columns(negative=(diff < 0).fill_null(value=False))
        .with_columns(duration=nw.when(~nw.col("negative")).then(diff))
        .select(RUN, *carry, "start_time", "end_time", "duration", "negative")
        .sort(RUN)
    )
    return finish(
        result,
        states,
        timestamps=["start_time", "end_time", *carried_timestamps(carry)],
        durations=["duration"],
    )

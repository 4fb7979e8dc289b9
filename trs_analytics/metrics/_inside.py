"""Inside a flow run, from task-run states alone: the critical path and where time went.

Each task run of a flow run is an interval: it *starts* at its first
RUNNING-type state (its first state when it never ran, for example a cached
run) and *ends* at its latest state.

**Critical path.** Walking back from the task run that ended last, each
step goes to the *predecessor*: the task run that ended last at or before
this one started (end of one -> start of the next; among runs ending at one
instant the largest ``task_run_id``), until no run ended before. The chain
is what set the flow run's end-to-end time: shorten a run off the chain and
the flow run does not end sooner. The walk follows pointers, which no
engine evaluates lazily without recursion: the per-task-run intervals (one
small row per task run) are computed on the frame's engine, the walk runs in
Polars over them, and the path's rows are picked back out on the engine.

**Time shares.** A flow run's *span* goes from its first to its latest
task-run state. At each moment of it, the flow run is counted as

1. *running* if some task run is in a RUNNING-type state, else
2. *retrying* if some task run waits in a SCHEDULED or PENDING-type state
   after one of its attempts (``AwaitingRetry``, then ``Pending``), else
3. *queued* if some task run is in a SCHEDULED or PENDING-type state before
   its first attempt (created, waiting for upstream tasks, a worker or a
   concurrency slot), else
4. *waiting*: no task run is active (between tasks: the flow's own code, or
   PAUSED/CANCELLING states).

The four add up to the span; each share is the part of the span.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING, Any, Final

import narwhals as nw

from trs_analytics.metrics._common import RUN, in_run, is_type, next_us, outcomes
from trs_analytics.metrics._frames import finish, lazy
from trs_analytics.metrics._runs import FLOW_RUN, run_timeline
from trs_analytics.schema import require_columns

if TYPE_CHECKING:
    import polars as pl

    from trs_analytics.metrics._frames import Frame

__all__ = ["critical_path", "flow_time_shares"]

#: Per-flow-run columns of task-run states carried into flow-run outputs, when present.
_FLOW_COLUMNS: Final = ("flow_run_name", "flow_name", "deployment_id", "work_pool_name")

#: The four parts of a flow run's time, in the order they take precedence.
PARTS: Final = ("running", "retrying", "queued", "waiting")


def _task_runs(states: Any, *, caller: str) -> nw.LazyFrame[Any]:
    """The timeline of task-run states that name their flow run (others are refused).

    Raises:
        SchemaError: ``task_run_id`` or ``flow_run_id`` is missing (flow-run
            states hold no task runs).
    """
    require_columns(lazy(states, caller=caller), ["task_run_id", FLOW_RUN], caller=caller)
    tl, _ = run_timeline(states, caller=caller, needs=[FLOW_RUN])
    return tl


def _intervals(states: Any, *, caller: str) -> tuple[nw.LazyFrame[Any], list[str]]:
    """One row per task run with a flow run: ``_start``/``_end`` microseconds, its task name."""
    tl = _task_runs(states, caller=caller)
    tl = tl.filter(~nw.col(FLOW_RUN).is_null()).with_columns(
        _run_start=nw.when(is_type("RUNNING")).then(nw.col("_us"))
    )
    names = tl.collect_schema().names()
    carry = [FLOW_RUN, *(["task_name"] if "task_name" in names else [])]
    runs = outcomes(tl, carry, extra={"_run_start": nw.col("_run_start").min()})
    return runs.with_columns(
        _start=nw.col("_run_start").fill_null(nw.col("start_time")), _end=nw.col("end_time")
    ), carry


def _walk(tasks: pl.DataFrame) -> list[str]:
    """The task runs on each flow run's critical path (``flow_run_id``, id, ``_start``, ``_end``)."""
    on_path: list[str] = []
    ordered = tasks.sort(FLOW_RUN, "_end", RUN)
    for (_,), group in ordered.group_by(FLOW_RUN, maintain_order=True):
        ids, starts, ends = group[RUN].to_list(), group["_start"].to_list(), group["_end"].to_list()
        current = len(ids) - 1
        while current >= 0:
            on_path.append(ids[current])
            current = min(bisect_right(ends, starts[current]), current) - 1
    return on_path


def critical_path(states: Frame) -> Frame:
    """Give each flow run's critical path: the chain of task runs that set its end-to-end time.

    See the module's description (and docs/metrics.md) for the walk. This
    metric computes the per-task-run intervals (one row per task run, four
    columns) to walk the chains: a lazy input is evaluated that far.

    Args:
        states: task-run states of any supported engine, with ``flow_run_id``.

    Returns:
        The kind of frame given, one row per task run on a path, ordered by
        flow run and step: ``flow_run_id``, ``step`` (0 for the first run of
        the chain), ``task_run_id``, ``task_name`` (when present),
        ``start_time``, ``end_time``, ``duration`` (end - start),
        ``gap_before`` (from the previous step's end to this start; null at
        step 0) and ``share`` (``duration`` over the path's span, from its
        first start to its last end; null for a zero span).

    Raises:
        SchemaError: a required column (``flow_run_id`` among them) is missing.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> runs = {"extract": (0, 4), "side": (1, 3), "load": (5, 9), "notify": (6, 7)}
        >>> states = pl.DataFrame({
        ...     "task_run_id": [name for name in runs for _ in (0, 1)],
        ...     "task_name": [name for name in runs for _ in (0, 1)],
        ...     "flow_run_id": ["f"] * 8,
        ...     "type": ["RUNNING", "COMPLETED"] * 4,
        ...     "name": ["Running", "Completed"] * 4,
        ...     "timestamp": [t(s) for span in runs.values() for s in span],
        ... })
        >>> ta.critical_path(states).select("step", "task_name", "gap_before", "share").rows()
        [(0, 'extract', None, 0.4444444444444444), (1, 'load', datetime.timedelta(seconds=1), 0.4444444444444444)]
    """
    tasks, carry = _intervals(states, caller="critical_path")
    walked = tasks.select(FLOW_RUN, RUN, "_start", "_end").collect(backend="polars").to_native()
    path = tasks.filter(nw.col(RUN).is_in(_walk(walked)))
    order = ["_end", RUN]
    path = path.with_columns(
        step=nw.col("_end").cum_count().over(FLOW_RUN, order_by=order) - 1,
        _previous_end=nw.col("_end").shift(1).over(FLOW_RUN, order_by=order),
        _first=nw.col("_start").min().over(FLOW_RUN),
        _last=nw.col("_end").max().over(FLOW_RUN),
    )
    span = nw.col("_last") - nw.col("_first")
    duration = nw.col("_end") - nw.col("_start")
    result = path.select(
        FLOW_RUN,
        "step",
        RUN,
        *carry[1:],
        start_time=nw.col("_start"),
        end_time=nw.col("_end"),
        duration=duration,
        gap_before=nw.col("_start") - nw.col("_previous_end"),
        share=nw.when(span > 0).then(duration / span),
    ).sort(FLOW_RUN, "step")
    return finish(
        result,
        states,
        timestamps=["start_time", "end_time"],
        durations=["duration", "gap_before"],
        counts=["step"],
    )


def _part(spans: nw.LazyFrame[Any], name: str, which: nw.Expr) -> nw.LazyFrame[Any]:
    """+1/-1 events of one part: its spans' starts and ends, per flow run."""
    chosen = spans.filter(which)
    zero = {p: nw.lit(0, dtype=nw.Int64()) for p in PARTS[:3] if p != name}
    one = nw.lit(1, dtype=nw.Int64())
    starts = chosen.select(FLOW_RUN, _t=nw.col("_us"), **{name: one}, **zero)
    ends = chosen.select(FLOW_RUN, _t=nw.col("_next_us"), **{name: -one}, **zero)
    return nw.concat(
        [starts.select(FLOW_RUN, "_t", *PARTS[:3]), ends.select(FLOW_RUN, "_t", *PARTS[:3])],
        how="vertical",
    )


def flow_time_shares(states: Frame) -> Frame:
    """Split each flow run's time into queued, running, retrying and waiting between tasks.

    See the module's description (and docs/metrics.md) for the precise
    definition: at each moment the flow run is running if any task run is,
    else retrying, else queued, else waiting.

    Args:
        states: task-run states of any supported engine, with ``flow_run_id``.

    Returns:
        The kind of frame given, one row per flow run, ordered by
        ``flow_run_id``: its carried columns (``flow_run_name``,
        ``flow_name``... those present), ``span`` (first to latest task-run
        state), the durations ``running``, ``retrying``, ``queued``,
        ``waiting`` (adding up to ``span``) and their shares
        ``running_share``... ``waiting_share`` (null for a zero span).

    Raises:
        SchemaError: a required column (``flow_run_id`` among them) is missing.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a"] * 5 + ["b"] * 3,
        ...     "flow_run_id": ["f"] * 8,
        ...     "type": ["PENDING", "RUNNING", "SCHEDULED", "RUNNING", "COMPLETED",
        ...              "PENDING", "RUNNING", "COMPLETED"],
        ...     "name": ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed",
        ...              "Pending", "Running", "Completed"],
        ...     "timestamp": [t(0), t(1), t(2), t(4), t(5), t(7), t(9), t(10)],
        ... })
        >>> ta.flow_time_shares(states).select(
        ...     "running", "retrying", "queued", "waiting", "running_share").rows()
        [(datetime.timedelta(seconds=3), datetime.timedelta(seconds=2), datetime.timedelta(seconds=3), datetime.timedelta(seconds=2), 0.3)]
    """
    tl = _task_runs(states, caller="flow_time_shares")
    tl = tl.filter(~nw.col(FLOW_RUN).is_null()).with_columns(_next_us=next_us())
    names = tl.collect_schema().names()
    carry = [c for c in _FLOW_COLUMNS if c in names]
    running = is_type("RUNNING")
    tl = tl.with_columns(_ran=in_run(running.cast(nw.Int64()).cum_sum()) - running.cast(nw.Int64()))
    spans = tl.filter(~nw.col("_next_us").is_null())
    waiting = is_type("SCHEDULED", "PENDING")
    events = nw.concat(
        [
            _part(spans, "running", running),
            _part(spans, "retrying", waiting & (nw.col("_ran") > 0)),
            _part(spans, "queued", waiting & (nw.col("_ran") == 0)),
        ],
        how="vertical",
    )
    steps = events.group_by(FLOW_RUN, "_t").agg(*(nw.col(p).sum() for p in PARTS[:3]))
    level = {f"_{p}": nw.col(p).cum_sum().over(FLOW_RUN, order_by="_t") for p in PARTS[:3]}
    steps = steps.with_columns(
        **level, _next_t=nw.col("_t").shift(-1).over(FLOW_RUN, order_by="_t")
    )
    length = (nw.col("_next_t") - nw.col("_t")).fill_null(0)
    part = (
        nw.when(nw.col("_running") > 0)
        .then(nw.lit("running"))
        .when(nw.col("_retrying") > 0)
        .then(nw.lit("retrying"))
        .when(nw.col("_queued") > 0)
        .then(nw.lit("queued"))
        .otherwise(nw.lit("waiting"))
    )
    steps = steps.with_columns(_part=part, _length=length)
    sums = steps.group_by(FLOW_RUN).agg(
        *(
            nw.when(nw.col("_part") == p).then(nw.col("_length")).otherwise(0).sum().alias(p)
            for p in PARTS[:3]
        )
    )
    flows = tl.group_by(FLOW_RUN).agg(
        *(nw.col(c).any_value() for c in carry),
        _first=nw.col("_us").min(),
        _last=nw.col("_us").max(),
    )
    joined = flows.join(sums, on=FLOW_RUN, how="left").with_columns(
        span=nw.col("_last") - nw.col("_first"),
        **{p: nw.col(p).fill_null(0) for p in PARTS[:3]},
    )
    joined = joined.with_columns(
        waiting=nw.col("span") - nw.col("running") - nw.col("retrying") - nw.col("queued")
    )
    span = nw.col("span")
    shares = {f"{p}_share": nw.when(span > 0).then(nw.col(p) / span) for p in PARTS}
    result = joined.select(FLOW_RUN, *carry, "span", *PARTS, **shares).sort(FLOW_RUN)
    return finish(result, states, durations=["span", *PARTS])

"""Flow-level measures: landing times, groups currently failing, time to resolution.

They take flow-run states (:func:`~trs_analytics.schema.empty_flow_run_states`,
one row per flow-run state, no ``task_run_id``) and count flow runs; given
task-run states they count task runs the same way (see
:mod:`~trs_analytics.metrics._runs`). Each run is first reduced to one row by
hash aggregates (:func:`~trs_analytics.metrics._common.outcomes`): its latest
state, and its ordering key ``_key = end microseconds * 16 + lifecycle rank``.

- A run is *finished* when its latest state is COMPLETED, FAILED or CRASHED; it
  *failed* when FAILED or CRASHED. CANCELLED runs are left out of streaks and
  resolutions: a cancellation says nothing about whether the work succeeds.
- Runs of a group are ordered by ``_key`` (when they finished; at one instant
  a failure ranks after a success).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import narwhals as nw

from trs_analytics._format import missing_label
from trs_analytics.metrics._common import (
    RANK_BITS,
    RUN,
    as_list,
    carried_timestamps,
    explode_tags,
    is_type,
    outcomes,
)
from trs_analytics.metrics._frames import finish, lazy, with_micros
from trs_analytics.metrics._runs import run_carry, run_timeline
from trs_analytics.schema import EXPECTED_START, FAILURE_TYPES, TERMINAL_TYPES

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trs_analytics.metrics._frames import Frame

__all__ = [
    "NO_DEPLOYMENT",
    "currently_failing",
    "deployment_or_flow",
    "landing_time",
    "time_to_resolution",
]

#: Final types of a finished run (CANCELLED runs neither fail nor succeed).
_FINISHED: Final = ("COMPLETED", *FAILURE_TYPES)

#: The column :func:`deployment_or_flow` fills.
_BY: Final = "deployment_name"

#: What :func:`deployment_or_flow` puts after the flow's name of a run without a deployment.
NO_DEPLOYMENT: Final = " (no deployment)"

#: Larger than any ordering key.
_NO_KEY: Final = 2**62


def _over(expr: nw.Expr, keys: Sequence[str]) -> nw.Expr:
    """``expr`` over each group (over every run for no group: ``_all`` is a constant)."""
    return expr.over(*(keys or ["_all"]))


def _finished_runs(
    states: Any, *, caller: str, keys: Sequence[str]
) -> tuple[nw.LazyFrame[Any], str, list[str]]:
    """One row per finished run: group keys, carried columns, ``_last_key``, ``end_time``."""
    tl, column = run_timeline(states, caller=caller, needs=keys)
    carry = run_carry(states, column, keys)
    runs = outcomes(tl, carry).filter(nw.col("final_type").is_in(_FINISHED))
    runs = runs.with_columns(
        _failed=nw.col("final_type").is_in(FAILURE_TYPES),
        _succeeded=nw.col("final_type") == "COMPLETED",
        _all=nw.lit(0),
    )
    return explode_tags(runs, keys), column, carry


def deployment_or_flow(flow_run_states: Frame) -> Frame:
    """Each run's ``deployment_name``, or ``"<flow> (no deployment)"`` when it has none.

    A flow called as a script has no deployment: grouping ``by="deployment_name"``
    would lump every such flow in one null group. After this, the
    ``deployment_name`` groups are the deployments and, apart, each flow run
    without one (the report's "Flow runs" sections group so). A frame without
    ``flow_name`` or ``deployment_name`` comes back as it is; any engine.

    Examples:
        >>> import polars as pl
        >>> runs = pl.DataFrame({"flow_name": ["etl", "etl", "sync"],
        ...     "deployment_name": ["etl/k8s", None, None]})
        >>> deployment_or_flow(runs)["deployment_name"].to_list()
        ['etl/k8s', 'etl (no deployment)', 'sync (no deployment)']
    """
    frame = lazy(flow_run_states, caller="deployment_or_flow")
    names = frame.collect_schema().names()
    if "flow_name" not in names or _BY not in names:
        return flow_run_states
    flow = nw.concat_str(nw.col("flow_name"), nw.lit(NO_DEPLOYMENT))
    grouped = nw.coalesce(nw.col(_BY), flow, nw.lit(missing_label(_BY)))
    return finish(frame.with_columns(grouped.alias(_BY)), flow_run_states)


def landing_time(flow_run_states: Frame) -> Frame:
    """Give each finished run's landing time: its end minus its scheduled start.

    Airflow's "Landing Times": how long after it was meant to start a run
    had landed. The scheduled start is ``expected_start_time``, or when that
    is null (or absent) the earliest ``details_scheduled_time`` of the run's
    SCHEDULED-type states; the end is the timestamp of the run's terminal
    state. Runs not yet in a terminal state are left out. A run that ended
    before its scheduled start has a negative landing time.

    Args:
        flow_run_states: flow-run states (or task-run states: then task runs
            are measured) of any supported engine.

    Returns:
        The kind of frame given, one row per finished run, ordered by the run
        id (``flow_run_id``, or ``task_run_id``): the run's carried columns
        (``flow_name``, ``deployment_name``, ``work_pool_name``... those
        present), ``scheduled_time``, ``end_time``, ``final_type`` and
        ``landing_time`` (a duration; null when no scheduled start is known).

    Raises:
        SchemaError: a required column is missing or ``timestamp`` has no time zone.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda m: datetime(2026, 1, 1, 0, m, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "flow_run_id": ["r1"] * 3 + ["r2"] * 2,
        ...     "deployment_name": ["etl/daily"] * 5,
        ...     "type": ["SCHEDULED", "RUNNING", "COMPLETED", "SCHEDULED", "RUNNING"],
        ...     "name": ["Scheduled", "Running", "Completed", "Scheduled", "Running"],
        ...     "timestamp": [t(0), t(5), t(12), t(0), t(1)],
        ...     "expected_start_time": [t(2)] * 3 + [t(1)] * 2,
        ... })
        >>> ta.landing_time(states).select("flow_run_id", "final_type", "landing_time")
        shape: (1, 3)
        ┌─────────────┬────────────┬──────────────┐
        │ flow_run_id ┆ final_type ┆ landing_time │
        │ ---         ┆ ---        ┆ ---          │
        │ str         ┆ enum       ┆ duration[μs] │
        ╞═════════════╪════════════╪══════════════╡
        │ r1          ┆ COMPLETED  ┆ 10m          │
        └─────────────┴────────────┴──────────────┘
    """
    tl, column = run_timeline(flow_run_states, caller="landing_time")
    names = tl.collect_schema().names()
    carry = run_carry(flow_run_states, column)
    scheduled: nw.Expr = nw.lit(None, dtype=nw.Int64())
    if "details_scheduled_time" in names:
        tl = with_micros(tl, timestamps={"_sched": "details_scheduled_time"})
        scheduled = nw.when(is_type("SCHEDULED")).then(nw.col("_sched"))
    tl = tl.with_columns(_scheduled=scheduled)
    runs = outcomes(tl, carry, extra={"_scheduled": nw.col("_scheduled").min()})
    runs = runs.filter(nw.col("final_type").is_in(TERMINAL_TYPES))
    expected = nw.col(EXPECTED_START) if EXPECTED_START in carry else None
    start = nw.col("_scheduled") if expected is None else expected.fill_null(nw.col("_scheduled"))
    result = (
        runs.with_columns(scheduled_time=start)
        .with_columns(landing_time=nw.col("end_time") - nw.col("scheduled_time"))
        .select(
            nw.col(RUN).alias(column),
            *carry,
            "scheduled_time",
            "end_time",
            "final_type",
            "landing_time",
        )
        .sort(column)
    )
    stamps = carried_timestamps(carry)
    return finish(
        result,
        flow_run_states,
        timestamps=[*stamps, "scheduled_time", "end_time"],
        durations=["landing_time"],
        state_types=["final_type"],
    )


def currently_failing(
    flow_run_states: Frame, *, by: str | Sequence[str] | None = "deployment_name"
) -> Frame:
    """Name the groups whose latest finished run failed, since when, and how often in a row.

    Per group, the *failing streak* is the failed runs (FAILED, CRASHED) that
    finished after the group's last COMPLETED run (all of its failures when it
    never completed). A group is currently failing when its streak is not
    empty, that is when its latest finished run failed.

    Args:
        flow_run_states: flow-run states (or task-run states) of any engine.
        by: the grouping column(s) (``"deployment_name"``, ``"flow_name"``,
            ``"work_pool_name"``...); ``None`` for all runs together. A run
            counts in each of its ``tags`` when ``tags`` is among them.

    Returns:
        The kind of frame given, one row per currently failing group, ordered
        by group: the ``by`` columns, ``failing_since`` (when the streak's
        first failure ended), ``failures`` (the streak's length),
        ``last_failure`` (when its latest failure ended), ``last_failed_run``
        (that run's id) and ``last_success`` (when the group's last
        COMPLETED run ended; null if none).

    Raises:
        SchemaError: a required or ``by`` column is missing.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda m: datetime(2026, 1, 1, 0, m, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "flow_run_id": ["a1", "a2", "a3", "b1"],
        ...     "deployment_name": ["etl/daily", "etl/daily", "etl/daily", "report/hourly"],
        ...     "type": ["COMPLETED", "FAILED", "CRASHED", "COMPLETED"],
        ...     "name": ["Completed", "Failed", "Crashed", "Completed"],
        ...     "timestamp": [t(1), t(2), t(3), t(4)],
        ... })
        >>> ta.currently_failing(states).select(
        ...     "deployment_name", "failures", "failing_since", "last_failed_run").rows()
        [('etl/daily', 2, datetime.datetime(2026, 1, 1, 0, 2, tzinfo=zoneinfo.ZoneInfo(key='UTC')), 'a3')]
    """
    keys = as_list(by)
    runs, _, _ = _finished_runs(flow_run_states, caller="currently_failing", keys=keys)
    success_key = nw.when(nw.col("_succeeded")).then(nw.col("_last_key"))
    success_end = nw.when(nw.col("_succeeded")).then(nw.col("end_time"))
    runs = runs.with_columns(
        _success_key=_over(success_key.max(), keys),
        last_success=_over(success_end.max(), keys),
    )
    streak = runs.filter(
        nw.col("_failed") & (nw.col("_last_key") > nw.col("_success_key").fill_null(-1))
    ).with_columns(_latest=_over(nw.col("_last_key").max(), keys))
    latest_run = nw.when(nw.col("_last_key") == nw.col("_latest")).then(nw.col(RUN))
    stats = {
        "failing_since": nw.col("end_time").min(),
        "failures": nw.len(),
        "last_failure": nw.col("end_time").max(),
        "last_failed_run": latest_run.max(),
        "last_success": nw.col("last_success").max(),
    }
    if keys:
        result = (
            streak.group_by(*keys, drop_null_keys=False).agg(**stats).sort(keys, nulls_last=True)
        )
    else:
        result = streak.select(**stats).filter(nw.col("failures") > 0)
    return finish(
        result,
        flow_run_states,
        timestamps=["failing_since", "last_failure", "last_success"],
        counts=["failures"],
    )


def time_to_resolution(
    flow_run_states: Frame, *, by: str | Sequence[str] | None = "deployment_name"
) -> Frame:
    """For each failed run, the time until the next successful run of its group.

    Dagster's "time to resolution": from when a run failed (its FAILED or
    CRASHED state) to when the next COMPLETED run of the same group finished
    (the first to finish after it). Unresolved failures keep a null. For a
    summary per group, give the result to :func:`~trs_analytics.summarize`
    (``value="time_to_resolution"``): unresolved failures are its ``nulls``.

    Args:
        flow_run_states: flow-run states (or task-run states) of any engine.
        by: the grouping column(s), ``None`` for all runs together. A run
            counts in each of its ``tags`` when ``tags`` is among them.

    Returns:
        The kind of frame given, one row per failed run (per tag with
        ``tags``), ordered by group, failure time and run id: the ``by``
        columns, the run id (``flow_run_id`` or ``task_run_id``),
        ``final_type``, ``failed_at``, ``resolved_at`` and
        ``time_to_resolution`` (null while unresolved).

    Raises:
        SchemaError: a required or ``by`` column is missing.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda m: datetime(2026, 1, 1, 0, m, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "flow_run_id": ["a1", "a2", "a3", "a4"],
        ...     "deployment_name": ["etl/daily"] * 4,
        ...     "type": ["FAILED", "FAILED", "COMPLETED", "CRASHED"],
        ...     "name": ["Failed", "Failed", "Completed", "Crashed"],
        ...     "timestamp": [t(1), t(2), t(10), t(12)],
        ... })
        >>> ttr = ta.time_to_resolution(states)
        >>> ttr.select("flow_run_id", "time_to_resolution")
        shape: (3, 2)
        ┌─────────────┬────────────────────┐
        │ flow_run_id ┆ time_to_resolution │
        │ ---         ┆ ---                │
        │ str         ┆ duration[μs]       │
        ╞═════════════╪════════════════════╡
        │ a1          ┆ 9m                 │
        │ a2          ┆ 8m                 │
        │ a4          ┆ null               │
        └─────────────┴────────────────────┘
        >>> ta.summarize(ttr, value="time_to_resolution", by="deployment_name").select(
        ...     "count", "nulls", "p50").rows()
        [(2, 1, datetime.timedelta(seconds=510))]
    """
    keys = as_list(by)
    runs, column, _ = _finished_runs(flow_run_states, caller="time_to_resolution", keys=keys)
    success = nw.when(nw.col("_succeeded")).then(nw.col("_last_key")).otherwise(_NO_KEY)
    order = ["_last_key", RUN]
    following = success.cum_min(reverse=True)
    next_key = following.over(*keys, order_by=order) if keys else following.over(order_by=order)
    resolved = nw.when(nw.col("_next") < _NO_KEY).then(nw.col("_next") // RANK_BITS)
    result = (
        runs.with_columns(_next=next_key)
        .filter(nw.col("_failed"))
        .with_columns(failed_at=nw.col("end_time"), resolved_at=resolved)
        .with_columns(time_to_resolution=nw.col("resolved_at") - nw.col("failed_at"))
        .select(
            *keys,
            nw.col(RUN).alias(column),
            "final_type",
            "failed_at",
            "resolved_at",
            "time_to_resolution",
        )
        .sort([*keys, "failed_at", column], nulls_last=True)
    )
    return finish(
        result,
        flow_run_states,
        timestamps=["failed_at", "resolved_at"],
        durations=["time_to_resolution"],
        state_types=["final_type"],
    )

"""Breakdowns a Prefect user looks for: outcomes per flow, deployment and work pool, run volume,
error messages, run time over time, and the runs to open in the Prefect UI.

Each function is written once with narwhals, so it runs in the engine the
frame lives in: a Polars DataFrame or LazyFrame, a DuckDB relation, a PySpark
DataFrame. The frame comes back as the same kind (``.to_native()``); charts
and tables take the few aggregated rows. Only expressions narwhals supports
on its lazy backends are used: ``group_by().agg()`` with simple
aggregations, ``filter``, ``with_columns``, ``when/then``, ``dt.truncate``,
joins and window expressions with ``over(order_by=...)``.

Everything starts from :func:`run_outcomes`, one row per task run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import narwhals as nw
import polars as pl

from trs_analytics.metrics._buckets import bucket_of
from trs_analytics.metrics._common import (
    RUN,
    as_list,
    is_type,
    outcomes,
)
from trs_analytics.metrics._frames import collect_shared, finish, lazy, schema_of
from trs_analytics.metrics._run_table import per_run
from trs_analytics.schema import require_columns, run_id_column

if TYPE_CHECKING:
    from collections.abc import Sequence

    from narwhals.typing import IntoFrameT

__all__ = [
    "OUTCOME_COLUMNS",
    "distinct_values",
    "duration_trend",
    "error_messages",
    "failed_runs",
    "outcome_counts",
    "run_breakdowns",
    "run_outcomes",
    "run_volume",
    "slowest_runs",
]

#: Per-run columns :func:`run_outcomes` carries when the states have them.
_CARRIED: Final = (
    "task_run_name",
    "task_name",
    "flow_run_id",
    "flow_run_name",
    "flow_name",
    "deployment_id",
    "deployment_name",
    "work_pool_name",
)

#: The outcome columns of :func:`outcome_counts`, each counting runs whose last state is so.
OUTCOME_COLUMNS: Final = {
    "completed": "COMPLETED",
    "failed": "FAILED",
    "crashed": "CRASHED",
    "cancelled": "CANCELLED",
}

#: Message variations that would split one error into many: quoted values, then numbers.
_MESSAGE_NOISE: Final = ((r"'[^']*'", "'…'"), (r'"[^"]*"', '"…"'), (r"[0-9]+", "N"))


def _frame(states: Any, columns: list[str], *, caller: str) -> nw.LazyFrame[Any]:
    """``states`` as a narwhals LazyFrame, once its columns are checked (any engine)."""
    frame = lazy(states, caller=caller)
    require_columns(frame, columns, caller=caller)
    return frame


def _seconds(micros: nw.Expr) -> nw.Expr:
    return micros.cast(nw.Float64()) / 1_000_000


def distinct_values(column: str) -> nw.Expr:
    """Count the distinct values of ``column``, a null not among them: an aggregate (of a
    ``select`` or a group-by) on any engine, ``count(DISTINCT column)`` in SQL.

    narwhals' ``n_unique`` counts a null as one value (as Polars does), which is
    taken off again: task runs outside any flow are in no flow run.

    Examples:
        >>> import narwhals as nw
        >>> import polars as pl
        >>> runs = pl.DataFrame({"flow": ["a", "a", "b"], "flow_run_id": ["1", "2", None]})
        >>> nw.from_native(runs).group_by("flow").agg(distinct_values("flow_run_id")).sort(
        ...     "flow").to_native().rows()
        [('a', 2), ('b', 0)]
    """
    values = nw.col(column)
    return values.n_unique() - values.is_null().cast(nw.Int64()).max()


def run_outcomes(states: IntoFrameT) -> IntoFrameT:
    """Summarise each task run: when it ran, how long it ran, how it ended and why.

    A run's states are de-duplicated by ``id`` (when present) and ordered by
    time, then lifecycle. Its last state gives ``final_type`` and
    ``final_message``; ``run_seconds`` adds up its RUNNING states (every
    attempt) until the next state.

    Args:
        states: a states frame (Polars, DuckDB, PySpark...).

    Returns:
        The kind of frame given, one row per task run: ``task_run_id``, the
        run's names and ids (``task_run_name``, ``task_name``, ``flow_run_id``,
        ``flow_run_name``, ``flow_name``, ``deployment_id``,
        ``work_pool_name``, those present), ``start`` and ``end`` (its first
        and last state), ``attempts`` (RUNNING states), ``run_seconds``,
        ``final_type`` (as text) and ``final_message``.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a"] * 4 + ["b"] * 3,
        ...     "type": ["PENDING", "RUNNING", "RUNNING", "FAILED", "PENDING", "RUNNING", "CRASHED"],
        ...     "name": ["Pending", "Running", "Retrying", "Failed", "Pending", "Running", "Crashed"],
        ...     "timestamp": [t(0), t(1), t(3), t(6), t(0), t(2), t(9)],
        ...     "message": [None, None, None, "boom", None, None, "lost"],
        ... })
        >>> run_outcomes(states).select("task_run_id", "attempts", "run_seconds", "final_type",
        ...     "final_message").sort("task_run_id").rows()
        [('a', 2, 5.0, 'FAILED', 'boom'), ('b', 1, 7.0, 'CRASHED', 'lost')]
    """
    return _finish(_outcomes(states, caller="run_outcomes"), states)


def _outcomes(states: Any, *, caller: str, needs: Sequence[str] = ()) -> nw.LazyFrame[Any]:
    """One row per run, on the metrics' timeline: ``start``/``end`` in microseconds."""
    names = schema_of(states).names()
    own = run_id_column(names)
    carry = [c for c in dict.fromkeys([*_CARRIED, *needs]) if c in names and c != own]
    message = {"final_message": "message"} if "message" in names else {}

    def build(tl: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
        runs = outcomes(tl, carry, finals=message, spent=is_type("RUNNING"))
        if message:
            return runs
        return runs.with_columns(final_message=nw.lit(None, dtype=nw.String()))

    runs = per_run(states, caller=caller, needs=needs, build=build)
    return runs.select(
        RUN,
        *carry,
        start=nw.col("start_time"),
        end=nw.col("end_time"),
        attempts=nw.col("attempts"),
        run_seconds=_seconds(nw.col("_run_us")),
        final_type=nw.col("final_type"),
        final_message=nw.col("final_message"),
    )


def _finish(
    out: nw.LazyFrame[Any], states: IntoFrameT, *, times: Sequence[str] = ("start", "end")
) -> IntoFrameT:
    present = out.collect_schema().names()
    return finish(out, states, timestamps=[c for c in times if c in present])


def outcome_counts(states: IntoFrameT, *, by: str | Sequence[str] = "task_name") -> IntoFrameT:
    """Count task runs per group by how they ended: completed, failed, crashed, cancelled.

    Crashed (infrastructure) and cancelled (by a person or automation) runs are
    counted apart from failed ones (the task's code raised).

    Args:
        states: a states frame.
        by: a per-run column or several: ``task_name``, ``flow_name``,
            ``deployment_id``, ``work_pool_name``... Runs without a value form a
            group whose key is null.

    Returns:
        The kind of frame given, one row per group, most runs first: ``by``,
        ``flow_runs`` (distinct flow runs, when the states have ``flow_run_id``),
        ``runs``, ``completed``, ``failed``, ``crashed``, ``cancelled``,
        ``unfinished`` (no terminal state yet) and ``failure_rate`` (failed
        and crashed among finished runs, null when none finished).

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> outcome_counts(generate_states(200, seed=1), by="flow_name").columns
        ['flow_name', 'flow_runs', 'runs', 'completed', 'failed', 'crashed', 'cancelled', 'unfinished', 'failure_rate']
    """
    keys = as_list(by)
    runs = _outcomes(states, caller="outcome_counts", needs=keys)
    return finish(_counts(runs, keys), states)


def _counts(runs: nw.LazyFrame[Any], keys: list[str]) -> nw.LazyFrame[Any]:
    counts = {
        name: (nw.col("final_type") == state).cast(nw.Int64).sum()
        for name, state in OUTCOME_COLUMNS.items()
    }
    flows = {"flow_runs": distinct_values("flow_run_id")} if "flow_run_id" in runs.columns else {}
    grouped = runs.group_by(keys, drop_null_keys=False).agg(**flows, runs=nw.len(), **counts)
    finished = sum((nw.col(c) for c in OUTCOME_COLUMNS), nw.lit(0))
    return grouped.with_columns(
        unfinished=nw.col("runs") - finished,
        failure_rate=nw.when(finished > 0).then((nw.col("failed") + nw.col("crashed")) / finished),
    ).sort(["runs", *keys], descending=[True] + [False] * len(keys), nulls_last=True)


def run_volume(states: IntoFrameT, *, every: str = "1d") -> IntoFrameT:
    """Count task runs per time bucket (of their first state) and final state type.

    Args:
        states: a states frame.
        every: the bucket width (``"1h"``, ``"1d"``), aligned to the epoch (UTC).

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> volume = run_volume(generate_states(200, seed=1), every="1d")
        >>> volume.columns, int(volume["runs"].sum())
        (['bucket', 'final_type', 'runs'], 200)
    """
    return _finish(_volume(_outcomes(states, caller="run_volume"), every), states, times=["bucket"])


def _volume(runs: nw.LazyFrame[Any], every: str) -> nw.LazyFrame[Any]:
    return (
        runs.with_columns(bucket=bucket_of(nw.col("start"), every))
        .group_by("bucket", "final_type", drop_null_keys=False)
        .agg(runs=nw.len())
        .sort("bucket", "final_type", nulls_last=True)
    )


def _normalised(message: nw.Expr) -> nw.Expr:
    for pattern, replacement in _MESSAGE_NOISE:
        message = message.str.replace_all(pattern, replacement)
    return message


def error_messages(
    states: IntoFrameT, *, by: str | Sequence[str] = "task_name", top: int = 5
) -> IntoFrameT:
    """Rank the error messages of failed and crashed states per group.

    Messages that differ only in quoted values or numbers (``planned failure
    of 'b51' on attempt 1``) are one error: quoted text becomes ``'…'`` and
    numbers ``N``. On Prefect 3 a failed attempt that is retried leaves no
    message (its AwaitingRetry state has none): these are final failures.

    Args:
        states: a states frame with a ``message`` column.
        by: the grouping column(s).
        top: how many messages to keep per group (the most frequent).

    Returns:
        The kind of frame given: ``by``, ``error`` (the normalised message),
        ``failures`` (states), ``runs`` (distinct task runs), ``last_seen``
        and ``example`` (one original message), by group and then most
        failures first.

    Examples:
        >>> import polars as pl
        >>> from datetime import UTC, datetime
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "b", "c"], "task_name": ["etl"] * 3,
        ...     "type": ["FAILED", "FAILED", "CRASHED"],
        ...     "timestamp": [datetime(2026, 1, 1, tzinfo=UTC)] * 3,
        ...     "message": ["no file 'x.csv' (2 tries)", "no file 'y.csv' (3 tries)", "OOM"],
        ... })
        >>> error_messages(states).select("error", "failures", "runs").rows()
        [("no file '…' (N tries)", 2, 2), ('OOM', 1, 1)]
    """
    run = run_id_column(schema_of(states).names())
    keys = as_list(by)
    columns = list(dict.fromkeys([run, "type", "timestamp", "message", *keys]))
    frame = _frame(states, columns, caller="error_messages")
    failed = frame.filter(
        nw.col("type").cast(nw.String).is_in(["FAILED", "CRASHED"]),
        ~nw.col("message").is_null(),
        nw.col("message") != "",
    )
    grouped = (
        failed.with_columns(error=_normalised(nw.col("message")))
        .group_by([*keys, "error"], drop_null_keys=False)
        .agg(
            failures=nw.len(),
            runs=nw.col(run).n_unique(),
            last_seen=nw.col("timestamp").max(),
            example=nw.col("message").max(),
        )
    )
    ranked = grouped.with_columns(
        _rank=nw.col("failures").rank("ordinal", descending=True).over(*keys)
    )
    out = (
        ranked.filter(nw.col("_rank") <= top)
        .sort(
            [*keys, "failures", "error"],
            descending=[*[False] * len(keys), True, False],
            nulls_last=True,
        )
        .drop("_rank")
    )
    return finish(out, states)


def duration_trend(
    states: IntoFrameT, *, every: str = "1d", by: str | Sequence[str] = "task_name"
) -> IntoFrameT:
    """Each group's run time over time: p50, p95 and max per bucket, beside the group's median.

    The Prefect counterpart of Airflow's "Task Duration" view. A run falls in
    the bucket of its first state; its run time is its time in RUNNING states
    (all attempts). Runs that never ran are left out.

    Args:
        states: a states frame.
        every: the bucket width (``"1h"``, ``"1d"``), aligned to the epoch (UTC).
        by: the grouping column(s).

    Returns:
        The kind of frame given: ``by``, ``bucket``, ``runs``, ``p50``,
        ``p95``, ``max`` (seconds) and ``median`` (the group's median over
        all buckets), by group and bucket.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> trend = duration_trend(generate_states(300, seed=1), every="1d")
        >>> trend.columns
        ['task_name', 'bucket', 'runs', 'p50', 'p95', 'max', 'median']
    """
    keys = as_list(by)
    runs = _outcomes(states, caller="duration_trend", needs=keys)
    return _finish(_trend(runs, every, keys), states, times=["bucket"])


def _trend(runs: nw.LazyFrame[Any], every: str, keys: list[str]) -> nw.LazyFrame[Any]:
    ran = runs.filter(nw.col("attempts") > 0)
    s = nw.col("run_seconds")
    per_bucket = (
        ran.with_columns(bucket=bucket_of(nw.col("start"), every))
        .group_by([*keys, "bucket"], drop_null_keys=False)
        .agg(
            runs=nw.len(),
            p50=s.quantile(0.5, interpolation="linear"),
            p95=s.quantile(0.95, interpolation="linear"),
            max=s.max(),
        )
    )
    medians = ran.group_by(keys, drop_null_keys=False).agg(
        median=s.quantile(0.5, interpolation="linear")
    )
    joined = per_bucket.join(medians, on=keys, how="left")
    return joined.sort([*keys, "bucket"], nulls_last=True)


def slowest_runs(states: IntoFrameT, *, top: int = 10) -> IntoFrameT:
    """The ``top`` task runs with the longest run time (see :func:`run_outcomes`).

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> slow = slowest_runs(generate_states(300, seed=1), top=3)
        >>> slow.height, slow["run_seconds"].is_sorted(descending=True)
        (3, True)
    """
    return _finish(_slowest(_outcomes(states, caller="slowest_runs"), top), states)


def _slowest(runs: nw.LazyFrame[Any], top: int) -> nw.LazyFrame[Any]:
    return runs.sort(["run_seconds", RUN], descending=[True, False]).head(top)


def failed_runs(states: IntoFrameT, *, top: int = 20) -> IntoFrameT:
    """The latest ``top`` task runs that ended FAILED, CRASHED or CANCELLED, newest first.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> failed = failed_runs(generate_states(300, seed=1), top=5)
        >>> set(failed["final_type"]) <= {"FAILED", "CRASHED", "CANCELLED"}
        True
    """
    return _finish(_failed(_outcomes(states, caller="failed_runs"), top), states)


def _failed(runs: nw.LazyFrame[Any], top: int) -> nw.LazyFrame[Any]:
    return (
        runs.filter(nw.col("final_type").is_in(["FAILED", "CRASHED", "CANCELLED"]))
        .sort(["end", RUN], descending=[True, False])
        .head(top)
    )


def run_breakdowns(
    states: Any,
    *,
    every: str,
    by: Sequence[str] = ("task_name",),
    trend_by: str = "task_name",
    failed_top: int = 20,
    slowest_top: int = 10,
) -> dict[str, pl.DataFrame]:
    """Every breakdown of this module from one per-run pass, as small Polars frames.

    The per-run outcomes (:func:`run_outcomes`) are computed once, on the
    states' engine (:func:`~._frames.collect_shared`: cached in the one
    Polars query, a Parquet file on DuckDB, persisted on Spark), and read
    by :func:`run_volume`, :func:`outcome_counts` per ``by`` column,
    :func:`duration_trend`, :func:`failed_runs` and :func:`slowest_runs`,
    which each give the same rows as on their own.

    Returns:
        ``volume``, ``outcomes:<by>`` for each ``by`` column present in the
        states, ``trend``, ``failed``, ``slowest``.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> parts = run_breakdowns(generate_states(200, seed=1), every="1d", by=["flow_name"])
        >>> sorted(parts), int(parts["volume"]["runs"].sum())
        (['failed', 'outcomes:flow_name', 'slowest', 'trend', 'volume'], 200)
    """
    names = schema_of(states).names()
    groups = [b for b in by if b in names]
    runs = _outcomes(states, caller="run_breakdowns", needs=[*groups, trend_by])
    trend_keys = as_list(trend_by)
    template = states.lazy() if isinstance(states, pl.DataFrame) else states

    def queries(shared: nw.LazyFrame[Any]) -> dict[str, Any]:
        return {
            "volume": _finish(_volume(shared, every), template, times=["bucket"]),
            **{f"outcomes:{b}": finish(_counts(shared, [b]), template) for b in groups},
            "trend": _finish(_trend(shared, every, trend_keys), template, times=["bucket"]),
            "failed": _finish(_failed(shared, failed_top), template),
            "slowest": _finish(_slowest(shared, slowest_top), template),
        }

    return collect_shared(runs, queries)

"""run_table: one row per run, computed once, read by every per-run metric.

Most metrics reduce each run's states to one row (its attempts, how it
ended, when it ran, how long it ran) and then aggregate those rows. On a
large dataset that reduction is the whole cost: it reads, de-duplicates and
orders every state. :func:`run_table` does it once, for everything the
per-run metrics read, and the metrics accept its result in place of the
states (:func:`table_runs`):

    runs = ta.run_table(states)          # one pass over the states
    ta.failure_rates(runs, by="flow_name")
    ta.summarize(ta.run_time(runs), by="task_name")

The answers are the same as from the states. Keep the table where it is
cheap to read again: ``runs.collect()`` on Polars (one row per run, a few
per cent of the states' memory), a table on DuckDB, ``persist()`` on Spark
(:func:`~._frames.materialized` does that for any engine); the report and
the check do so.

The table has the run's public columns (typed as the other metrics type
them) and, under names that start with ``_``, the same figures in integer
microseconds, which the metrics read; a column ``_run_table`` marks it.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import narwhals as nw

from trs_analytics.exceptions import SchemaError
from trs_analytics.metrics._common import (
    RUN,
    TIME_ORDER,
    carried,
    carried_timestamps,
    in_run,
    is_type,
    narrow_windows,
    once_closed,
    outcomes,
    timeline,
)
from trs_analytics.metrics._frames import (
    finish,
    lazy,
    materialized_by_run,
    schema_of,
    with_micros,
)
from trs_analytics.schema import EXPECTED_START, require_columns, run_id_column

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from contextlib import AbstractContextManager

    from trs_analytics.metrics._frames import Frame

__all__ = [
    "RUN_TABLE_COLUMNS",
    "RUN_TABLE_MARK",
    "is_run_table",
    "kept_run_table",
    "per_run",
    "run_table",
    "table_runs",
]

#: The column that marks a frame as :func:`run_table`'s; its name holds the layout's
#: version, so a table saved by another version is refused, not misread.
RUN_TABLE_MARK: Final = "_run_table_v1"

#: The run table's own columns that are stored (the rest of :data:`RUN_TABLE_COLUMNS` is
#: computed from the internal ones on read).
_OWN: Final = (
    "attempts",
    "retries",
    "final_type",
    "final_name",
    "final_message",
    "terminal",
    "first_attempt_failed",
    "rescued",
)

#: The public columns of a run table, after the run id and the carried columns.
RUN_TABLE_COLUMNS: Final = (
    *_OWN,
    "start_time",
    "end_time",
    "run_start",
    "run_end",
    "run_time",
    "lateness",
    "queue_start",
    "queue_wait",
)

#: The internal columns (microseconds and flags), as :func:`outcomes` names them
#: inside a metric, and the name each is stored under where the two differ.
_STORED: Final = {"start_time": "_start_us", "end_time": "_end_us"}
_INTERNAL: Final = (
    "_last_key",
    "_failed",
    "_time",
    "_end",
    "_open",
    "_ran",
    "_wait_from",
    "_run_from",
    "_expected_run",
    "_queue_end",
)


def is_run_table(frame: Any) -> bool:
    """Whether ``frame`` is :func:`run_table`'s result (any engine).

    Examples:
        >>> import trs_analytics as ta
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(20, seed=1)
        >>> is_run_table(states), is_run_table(ta.run_table(states))
        (False, True)
    """
    return any(c.startswith("_run_table") for c in schema_of(frame).names())


def run_table(states: Frame, *, needs: Sequence[str] = ()) -> Frame:
    """Reduce each run's states to one row that every per-run metric can read.

    One pass over the states (the metrics' timeline: de-duplicated, ordered),
    instead of one per metric. :func:`~trs_analytics.failure_rates`,
    :func:`~trs_analytics.run_time`, :func:`~trs_analytics.lateness`,
    :func:`~trs_analytics.retry_counts`, :func:`~trs_analytics.retry_distribution`,
    :func:`~trs_analytics.compare_windows`, :func:`~trs_analytics.regressions`,
    :func:`~trs_analytics.detect_anomalies` (``run_time`` and failure rates),
    :func:`~trs_analytics.stuck_runs`, :func:`~trs_analytics.sla_report` and the
    run breakdowns (:func:`~trs_analytics.run_volume`, ...) take it in place of
    the states and give the same result. Metrics that read the states one by
    one (``queue_wait``, ``transitions``, ``time_in_state``...) refuse it.

    Args:
        states: a task-run or flow-run states frame of any supported engine.
        needs: columns to carry beyond the run's own (:data:`RUN_COLUMNS`,
            those present): a ``by`` column a later metric groups by.

    Returns:
        The kind of frame given, one row per run, in no order: the run id
        (``task_run_id``, or ``flow_run_id`` of flow-run states), the run's
        columns, ``attempts`` (RUNNING states), ``retries``, ``final_type``,
        ``final_name``, ``final_message`` (null without a ``message``
        column), ``terminal``, ``first_attempt_failed``, ``rescued``,
        ``start_time`` and ``end_time`` (its first and latest state),
        ``run_start`` (first RUNNING state), ``run_end`` and ``run_time``
        (as :func:`~trs_analytics.run_time` gives them: null while running or
        never ran), ``lateness`` (as :func:`~trs_analytics.lateness`: null
        when negative or unknown), ``queue_start`` and ``queue_wait`` (the
        first of :func:`~trs_analytics.queue_wait`'s rows: from the first
        SCHEDULED/PENDING state to the next RUNNING state; null without
        one), and the internal ``_`` columns.

    Raises:
        SchemaError: a required or ``needs`` column is missing.

    Examples:
        >>> import trs_analytics as ta
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(300, seed=1)
        >>> runs = ta.run_table(states)
        >>> runs.height, ta.failure_rates(runs).equals(ta.failure_rates(states))
        (300, True)
    """
    return _public(_core(states, needs))


def _core(states: Frame, needs: Sequence[str]) -> Frame:
    """Each run's figures, each stored once: the outcome columns and the internal
    microseconds (the public times and durations are :func:`_public`'s, from them)."""
    names = schema_of(states).names()
    tl = timeline(states, caller="run_table", needs=needs, copies=True)
    carry = carried(states, needs)
    running = is_type("RUNNING")
    waiting = is_type("SCHEDULED", "PENDING")
    # queue wait: from the first SCHEDULED/PENDING state to the next RUNNING state after
    # it, which is the first RUNNING state with a waiting one before it in the run
    waited = in_run(waiting.cast(nw.Int64()).cum_sum(), order=TIME_ORDER)
    queue_end = nw.when(running & (nw.col("_waited") > 0)).then(nw.col("_us")).min()
    extra = {
        "_ran": running.cast(nw.Int64()).max(),
        "_wait_from": nw.when(waiting).then(nw.col("_us")).min(),
        "_run_from": nw.when(running).then(nw.col("_us")).min(),
    }
    queue = None
    if narrow_windows(tl):  # the window on a few columns, its result joined (as run_aggregate)
        queue = (
            tl.select(RUN, "_us", "_key", "_rank")
            .with_columns(_waited=waited)
            .group_by(RUN)
            .agg(_queue_end=queue_end)
        )
    else:
        tl = tl.with_columns(_waited=waited)
        extra["_queue_end"] = queue_end
    if EXPECTED_START in names:
        extra["_expected_run"] = nw.when(running).then(nw.col(EXPECTED_START)).min()
    finals = {"final_name": "name"}
    if "message" in names:
        finals["final_message"] = "message"
    runs = outcomes(tl, carry, extra=extra, finals=finals, spent=running)
    if queue is not None:
        runs = runs.join(queue, on=RUN, how="left")
    if "message" not in names:
        runs = runs.with_columns(final_message=nw.lit(None, dtype=nw.String()))
    if EXPECTED_START not in names:
        runs = runs.with_columns(_expected_run=nw.lit(None, dtype=nw.Int64()))
    core = runs.rename(dict(_STORED)).select(RUN, *carry, *_OWN, *_STORED.values(), *_INTERNAL)
    return finish(
        core,
        states,
        timestamps=carried_timestamps(carry),
        counts=["attempts", "retries"],
        state_types=["final_type"],
    )


def _public(core: Frame) -> Frame:
    """:func:`_core`'s table with the public times and durations, computed from the internal
    microseconds (cheap, on read), and the mark: what :func:`run_table` gives."""
    frame = lazy(core, caller="run_table")
    names = frame.collect_schema().names()
    own = run_id_column(names)
    carry = [c for c in names if c not in (own, *_OWN, *_STORED.values(), *_INTERNAL)]
    ran = nw.col("attempts") > 0
    late = nw.col("_run_from") - nw.col("_expected_run")
    table = frame.with_columns(
        start_time=nw.col("_start_us"),
        end_time=nw.col("_end_us"),
        run_start=nw.col("_run_from"),
        run_end=nw.when(ran).then(once_closed("_end")),
        run_time=nw.when(ran).then(once_closed("_time")),
        lateness=nw.when(late >= 0).then(late),
        queue_start=nw.col("_wait_from"),
        queue_wait=nw.col("_queue_end") - nw.col("_wait_from"),
        **{RUN_TABLE_MARK: nw.lit(value=True)},
    ).select(own, *carry, *RUN_TABLE_COLUMNS, *_STORED.values(), *_INTERNAL, RUN_TABLE_MARK)
    return finish(
        table,
        core,
        timestamps=["start_time", "end_time", "run_start", "run_end", "queue_start"],
        durations=["run_time", "lateness", "queue_wait"],
    )


def kept_run_table(
    states: Any, *, needs: Sequence[str] = (), parts: int | None = None
) -> AbstractContextManager[Any]:
    """:func:`run_table` computed once and kept where reading it again is cheap, for the block.

    What a job that reads the table in several metrics does (the report, the
    check, the metrics exporter): the runs' figures are stored once each (a
    Polars DataFrame or Parquet files built a set of runs at a time, a
    Parquet file on DuckDB, a persisted Spark DataFrame: :func:`~._frames.materialized_by_run`), and
    the public times and durations are computed from them as each metric
    reads them. Yields a frame of the states' engine (a LazyFrame for Polars).

    Examples:
        >>> import trs_analytics as ta
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(300, seed=1)
        >>> with kept_run_table(states) as runs:
        ...     ta.failure_rates(runs).collect().equals(ta.failure_rates(states))
        True
    """
    own = run_id_column(schema_of(states).names())  # a wrong argument is refused at once
    return _kept(states, own, needs, parts)


@contextmanager
def _kept(states: Any, own: str, needs: Sequence[str], parts: int | None) -> Iterator[Any]:
    with materialized_by_run(states, partial(_core, needs=needs), run=own, parts=parts) as core:
        yield _public(core)


def table_runs(states: Any, *, caller: str, needs: Sequence[str] = ()) -> nw.LazyFrame[Any] | None:
    """``states``' rows as a metric's per-run frame when it is a :func:`run_table`, else None.

    The rows come back as :func:`~._common.outcomes` gives them inside a
    metric: the run key ``_run``, the carried columns, the outcome columns
    (``start_time``/``end_time`` and carried timestamps in microseconds,
    ``final_type`` as text), ``final_name``, ``final_message``, the spent
    RUNNING time (``_time``, ``_end``, ``_open``, ``_run_us``) and ``_ran``,
    ``_wait_from``, ``_run_from``, ``_expected_run``.

    Raises:
        SchemaError: a ``needs`` column is missing from the table (it was
            built without it: pass ``run_table(states, needs=[...])``).
    """
    lf = lazy(states, caller=caller)
    names = lf.collect_schema().names()
    marks = [c for c in names if c.startswith("_run_table")]
    if not marks:
        return None
    if RUN_TABLE_MARK not in marks:
        msg = (
            f"{caller}() got a run table of another layout ({marks[0]}, expected "
            f"{RUN_TABLE_MARK}). Hint: build it again with run_table(states)."
        )
        raise SchemaError(msg)
    require_columns(lf, needs, caller=caller)
    own = run_id_column(names)
    public_times = ["start_time", "end_time"]
    stamps = {"_expected_start_us": EXPECTED_START} if EXPECTED_START in names else {}
    lf = with_micros(lf.drop(*public_times), timestamps=stamps)
    if stamps:
        lf = lf.drop(EXPECTED_START).rename({"_expected_start_us": EXPECTED_START})
    return lf.rename({own: RUN, **{v: k for k, v in _STORED.items()}}).with_columns(
        final_type=nw.col("final_type").cast(nw.String()),
        attempts=nw.col("attempts").cast(nw.Int64()),
        retries=nw.col("retries").cast(nw.Int64()),
        _run_us=nw.col("_time").fill_null(0),
    )


def per_run(
    states: Any,
    *,
    caller: str,
    build: Callable[[nw.LazyFrame[Any]], nw.LazyFrame[Any]],
    needs: Sequence[str] = (),
) -> nw.LazyFrame[Any]:
    """A metric's per-run rows: read from a :func:`run_table`, or ``build`` on the states' timeline.

    ``build`` turns the timeline (``copies=True``) into :func:`~._common.outcomes`
    rows; a run table already holds every column such rows can have.
    """
    runs = table_runs(states, caller=caller, needs=needs)
    if runs is not None:
        return runs
    return build(timeline(states, caller=caller, needs=needs, copies=True))

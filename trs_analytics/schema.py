"""The data contract: the columns every layer of trs_analytics agrees on.

One row per task-run state. Fetchers produce frames with exactly
:data:`STATES_SCHEMA`; storage writes and reads it; metrics and charts read it.
A change here is a change to the data contract: document it in the README's
"Data contract" section and bump :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import narwhals as nw
import polars as pl

from trs_analytics.exceptions import SchemaError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "COLUMNS_ADDED",
    "CONCURRENCY_LIMITS_SCHEMA",
    "DETAILS_COLUMNS",
    "FAILURE_TYPES",
    "FLOW_RUN_SCHEMA_VERSION",
    "FLOW_RUN_STATES_SCHEMA",
    "REQUIRED_METRIC_COLUMNS",
    "SCHEMA_VERSION",
    "STATES_SCHEMA",
    "STATE_TYPES",
    "TERMINAL_TYPES",
    "UTC_US",
    "StateType",
    "empty_flow_run_states",
    "empty_states",
    "require_columns",
    "run_id_column",
    "validate_states",
]

#: Bumped on any change to :data:`STATES_SCHEMA`; stored in Parquet metadata.
SCHEMA_VERSION: Final = 2

#: Bumped on any change to :data:`FLOW_RUN_STATES_SCHEMA`; stored in the metadata of
#: a dataset's flow-run table and its files.
FLOW_RUN_SCHEMA_VERSION: Final = 1

#: Columns added by each schema version. Files written before hold none of
#: them; readers fill them with nulls, so old files stay readable and merge
#: with new rows.
COLUMNS_ADDED: Final[dict[int, tuple[str, ...]]] = {
    2: ("data", "details_task_parameters_id", "details_run_input_keyset", "details_traceparent"),
}

#: Every timestamp in the contract: microseconds, UTC.
UTC_US: Final = pl.Datetime("us", "UTC")

#: Prefect's nine state types, in lifecycle order.
STATE_TYPES: Final = (
    "SCHEDULED",
    "PENDING",
    "RUNNING",
    "PAUSED",
    "CANCELLING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "CRASHED",
)

#: A run whose latest state has one of these types is finished.
TERMINAL_TYPES: Final = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")

#: Terminal types that count as a failure in failure rates.
FAILURE_TYPES: Final = ("FAILED", "CRASHED")

#: The dtype of the ``type`` column.
StateType: Final = pl.Enum(list(STATE_TYPES))

#: ``state_details`` fields kept, flattened into ``details_<field>`` columns.
DETAILS_COLUMNS: Final[dict[str, pl.DataType]] = {
    "details_scheduled_time": UTC_US,
    "details_cache_key": pl.String(),
    "details_cache_expiration": UTC_US,
    "details_retriable": pl.Boolean(),
    "details_pause_timeout": UTC_US,
    "details_pause_reschedule": pl.Boolean(),
    "details_pause_key": pl.String(),
    "details_child_flow_run_id": pl.String(),
    "details_refresh_cache": pl.Boolean(),
    "details_untrackable_result": pl.Boolean(),
    "details_deferred": pl.Boolean(),
    "details_transition_id": pl.String(),
    "details_task_parameters_id": pl.String(),
    "details_run_input_keyset": pl.String(),
    "details_traceparent": pl.String(),
}

#: A state's own columns, after its ids, in both contracts (task-run and flow-run states).
_STATE_COLUMNS: Final[dict[str, pl.DataType]] = {
    "type": StateType,
    "name": pl.String(),
    "timestamp": UTC_US,
    "message": pl.String(),
    "data": pl.String(),
    **DETAILS_COLUMNS,
}

#: The states frame: one row per task-run state.
STATES_SCHEMA: Final = pl.Schema(
    {
        # the state itself
        "id": pl.String(),
        "task_run_id": pl.String(),
        "flow_run_id": pl.String(),
        **_STATE_COLUMNS,
        # the task run it belongs to (as read at fetch time)
        "task_run_name": pl.String(),
        "task_key": pl.String(),
        "task_name": pl.String(),
        "dynamic_key": pl.String(),
        "tags": pl.List(pl.String()),
        "run_count": pl.Int64(),
        "expected_start_time": UTC_US,
        # the flow run and flow it belongs to
        "flow_run_name": pl.String(),
        "flow_name": pl.String(),
        "deployment_id": pl.String(),
        "work_pool_name": pl.String(),
    }
)

#: The flow-run states frame: one row per flow-run state. It has no
#: ``task_run_id``: the metrics count flow runs (``flow_run_id``) when a frame
#: lacks that column.
FLOW_RUN_STATES_SCHEMA: Final = pl.Schema(
    {
        # the state itself
        "id": pl.String(),
        "flow_run_id": pl.String(),
        **_STATE_COLUMNS,
        # the flow run it belongs to (as read at fetch time)
        "flow_run_name": pl.String(),
        "flow_id": pl.String(),
        "flow_name": pl.String(),
        "deployment_id": pl.String(),
        "deployment_name": pl.String(),
        "work_pool_name": pl.String(),
        "work_queue_name": pl.String(),
        "tags": pl.List(pl.String()),
        "run_count": pl.Int64(),
        "expected_start_time": UTC_US,
        "parent_task_run_id": pl.String(),
    }
)

#: The concurrency limits frame (:func:`trs_analytics.fetch_concurrency_limits`): one
#: row per limit. ``kind`` is ``"tag"`` (v1 tag limits: ``tag`` is set, ``name`` is
#: ``tag:<tag>``) or ``"global"`` (v2 global limits); ``active_slots`` counts the
#: slots held when read.
CONCURRENCY_LIMITS_SCHEMA: Final = pl.Schema(
    {
        "id": pl.String(),
        "kind": pl.String(),
        "name": pl.String(),
        "tag": pl.String(),
        "limit": pl.Int64(),
        "active_slots": pl.Int64(),
        "active": pl.Boolean(),
    }
)

#: What the metric functions need at the least.
REQUIRED_METRIC_COLUMNS: Final = ("task_run_id", "type", "name", "timestamp")


def empty_states() -> pl.DataFrame:
    """Return an empty states frame with the contract's schema.

    Examples:
        >>> import trs_analytics as ta
        >>> ta.empty_states().schema["timestamp"]
        Datetime(time_unit='us', time_zone='UTC')
    """
    return pl.DataFrame(schema=STATES_SCHEMA)


def run_id_column(columns: Iterable[str]) -> str:
    """Name the column that identifies a run in a frame with these ``columns``.

    A task-run states frame has ``task_run_id``; a flow-run states frame
    (:data:`FLOW_RUN_STATES_SCHEMA`) has no such column, and its runs are
    identified by ``flow_run_id``. This is the one rule by which every metric
    knows which runs it counts.

    Examples:
        >>> import trs_analytics as ta
        >>> run_id_column(ta.STATES_SCHEMA), run_id_column(ta.FLOW_RUN_STATES_SCHEMA)
        ('task_run_id', 'flow_run_id')
    """
    names = set(columns)
    if "task_run_id" not in names and "flow_run_id" in names:
        return "flow_run_id"
    return "task_run_id"


def empty_flow_run_states() -> pl.DataFrame:
    """Return an empty flow-run states frame with the contract's schema.

    Examples:
        >>> import trs_analytics as ta
        >>> "task_run_id" in ta.empty_flow_run_states().columns
        False
    """
    return pl.DataFrame(schema=FLOW_RUN_STATES_SCHEMA)


def _schema_of(frame: pl.DataFrame | pl.LazyFrame) -> pl.Schema:
    if not isinstance(frame, pl.DataFrame | pl.LazyFrame):
        msg = (
            f"expected a Polars DataFrame or LazyFrame of states, got {type(frame).__name__}. "
            "Hint: build it with trs_analytics.fetch_states() or read it with scan_states()."
        )
        raise SchemaError(msg)
    return frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema


def _names_of(frame: Any) -> list[str]:
    if isinstance(frame, pl.DataFrame | pl.LazyFrame):
        return _schema_of(frame).names()
    try:
        wrapped = frame if isinstance(frame, nw.LazyFrame | nw.DataFrame) else nw.from_native(frame)
    except TypeError as err:
        msg = (
            f"expected a frame of states (Polars, DuckDB or Spark), got {type(frame).__name__}. "
            "Hint: read states with trs_analytics.scan_states(path, engine=...)."
        )
        raise SchemaError(msg) from err
    return wrapped.collect_schema().names()


def require_columns(
    frame: object,
    columns: Iterable[str],
    *,
    caller: str,
) -> None:
    """Raise :class:`SchemaError` naming every column of ``columns`` that ``frame`` lacks.

    Args:
        frame: the frame to check: Polars, narwhals, or any engine narwhals reads
            (a DuckDB relation, a PySpark DataFrame).
        columns: the column names that must be present.
        caller: the function name to put in the message.

    Examples:
        >>> import polars as pl
        >>> require_columns(pl.DataFrame({"a": [1]}), ["a", "b"], caller="demo")
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.SchemaError: demo() needs column 'b', which the frame does not have (it has: 'a'). Hint: pass a states frame from trs_analytics.fetch_states() or scan_states().
    """
    present = _names_of(frame)
    missing = [c for c in columns if c not in present]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        noun = "column" if len(missing) == 1 else "columns"
        has = ", ".join(repr(c) for c in present) or "no columns"
        msg = (
            f"{caller}() needs {noun} {names}, which the frame does not have "
            f"(it has: {has}). Hint: pass a states frame from "
            "trs_analytics.fetch_states() or scan_states()."
        )
        raise SchemaError(msg)


def validate_states(frame: pl.DataFrame | pl.LazyFrame) -> None:
    """Check that ``frame`` has every contract column with the contract's dtype.

    Raises:
        SchemaError: naming each missing column or each column whose dtype differs.

    Examples:
        >>> import trs_analytics as ta
        >>> ta.validate_states(ta.empty_states())
        >>> ta.validate_states(ta.empty_states().drop("name"))
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.SchemaError: the states frame lacks column 'name'. Hint: build it with trs_analytics.fetch_states() or read it with scan_states().
    """
    schema = _schema_of(frame)
    missing = [c for c in STATES_SCHEMA if c not in schema]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        noun = "column" if len(missing) == 1 else "columns"
        msg = (
            f"the states frame lacks {noun} {names}. Hint: build it with "
            "trs_analytics.fetch_states() or read it with scan_states()."
        )
        raise SchemaError(msg)
    wrong = [
        f"{c!r} is {schema[c]}, expected {dtype}"
        for c, dtype in STATES_SCHEMA.items()
        if schema[c] != dtype
    ]
    if wrong:
        msg = (
            f"the states frame has columns of the wrong type: {'; '.join(wrong)}. "
            "Hint: cast with frame.cast(trs_analytics.STATES_SCHEMA)."
        )
        raise SchemaError(msg)

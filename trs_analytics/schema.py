"""The data contract: the columns every layer of trs_analytics agrees on.

One row per task-run state. Fetchers produce frames with exactly
:data:`STATES_SCHEMA`; storage writes and reads it; metrics and charts read it.
A change here is a change to the data contract: document it in the README's
"Data contract" section and bump :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import narwhals as nw
import polars as pl

from trs_analytics.exceptions import SchemaError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "COLUMNS_ADDED",
    "CONCURRENCY_LIMITS_SCHEMA",
    "DETAILS_COLUMNS",
    "EXPECTED_START",
    "FAILURE_TYPES",
    "FLOW_RUNS",
    "FLOW_RUN_SCHEMA_VERSION",
    "FLOW_RUN_STATES_SCHEMA",
    "REQUIRED_METRIC_COLUMNS",
    "SCHEMA_VERSION",
    "STATES_SCHEMA",
    "STATE_TYPES",
    "TASK_RUNS",
    "TERMINAL_TYPES",
    "UTC_US",
    "RunKind",
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

#: The column of a run's scheduled start (both contracts): lateness is measured from it.
EXPECTED_START: Final = "expected_start_time"

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

#: The filter arguments (``fetch_states(flow_names=...)``), in the order they are documented.
_FILTERS: Final = ("flow_names", "deployments", "work_pools", "task_names", "tags", "state_types")


@dataclass(frozen=True, eq=False)  # two kinds, each one object: compared by identity
class RunKind:
    """One kind of run whose states trs_analytics reads: task runs or flow runs.

    Every layer takes a kind instead of writing a second path for flow runs:
    the fetchers read its endpoints and events, the records are built into its
    schema, storage keeps it in its own table of a dataset, and the export and
    the synthetic data follow it. There are two, :data:`TASK_RUNS` and
    :data:`FLOW_RUNS`.

    Attributes:
        name: ``"task_runs"`` or ``"flow_runs"``: the key of the run filter in a
            ``/filter`` request body, and what a dataset's marker records.
        noun: ``"task run"`` or ``"flow run"``, for messages.
        api: ``"states"`` or ``"flow_run_states"``: the public functions of this
            kind end in it (``fetch_states``, ``scan_flow_run_states``, ...).
        schema: the states frame of this kind (one row per state).
        schema_version: the version of ``schema``, stored in Parquet metadata.
        columns_added: the columns each version of ``schema`` added (files
            written before read them as nulls).
        id_column: the column that identifies a run.
        event_prefix: the name prefix of its runs' state-change events.
        filter_path: the endpoint that lists runs (``POST``).
        states_path: the endpoint that reads one run's states (``GET``).
        folder: where its table lies inside a dataset folder (``""``: the folder itself).
        filters: the filter arguments that apply to it.
        server_filters: those the ``filter_path`` endpoint applies itself.
        events_hold_states: its state-change events carry the whole state
            (``state_details`` too), so states can be read from events alone.

    Examples:
        >>> TASK_RUNS.id_column, FLOW_RUNS.id_column
        ('task_run_id', 'flow_run_id')
        >>> FLOW_RUNS.states_label, FLOW_RUNS.empty().columns[:3]
        ('flow-run states', ['id', 'flow_run_id', 'type'])
    """

    name: Literal["task_runs", "flow_runs"]
    noun: str
    api: str
    schema: pl.Schema
    schema_version: int
    columns_added: dict[int, tuple[str, ...]]
    id_column: str
    event_prefix: str
    filter_path: str
    states_path: str
    folder: str
    filters: tuple[str, ...]
    server_filters: tuple[str, ...]
    events_hold_states: bool

    @property
    def adjective(self) -> str:
        """``"task-run"`` or ``"flow-run"``, as in "task-run states"."""
        return self.noun.replace(" ", "-")

    @property
    def states_label(self) -> str:
        """``"task-run states"`` or ``"flow-run states"``."""
        return f"{self.adjective} states"

    @property
    def added_columns(self) -> frozenset[str]:
        """Every column a version of the schema added: files written before may lack it."""
        return frozenset(c for columns in self.columns_added.values() for c in columns)

    def empty(self) -> pl.DataFrame:
        """An empty frame of this kind's schema."""
        return pl.DataFrame(schema=self.schema)


#: Task runs: :data:`STATES_SCHEMA`, ``/task_runs/filter``, ``prefect.task-run.*`` events.
TASK_RUNS: Final = RunKind(
    name="task_runs",
    noun="task run",
    api="states",
    schema=STATES_SCHEMA,
    schema_version=SCHEMA_VERSION,
    columns_added=COLUMNS_ADDED,
    id_column="task_run_id",
    event_prefix="prefect.task-run.",
    filter_path="/task_runs/filter",
    states_path="/task_run_states/",
    folder="",
    filters=_FILTERS,
    server_filters=("flow_names", "deployments", "tags", "state_types"),
    events_hold_states=True,
)

#: Flow runs: :data:`FLOW_RUN_STATES_SCHEMA`, in a dataset's ``_flow_run_states/``
#: table. A flow run has no task name; its events carry only a state's type and
#: name (measured on 3.9.1), so its states are always read per run.
FLOW_RUNS: Final = RunKind(
    name="flow_runs",
    noun="flow run",
    api="flow_run_states",
    schema=FLOW_RUN_STATES_SCHEMA,
    schema_version=FLOW_RUN_SCHEMA_VERSION,
    columns_added={},
    id_column="flow_run_id",
    event_prefix="prefect.flow-run.",
    filter_path="/flow_runs/filter",
    states_path="/flow_run_states/",
    folder="_flow_run_states",
    filters=tuple(f for f in _FILTERS if f != "task_names"),
    server_filters=("flow_names", "deployments", "work_pools", "tags", "state_types"),
    events_hold_states=False,
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
    return TASK_RUNS.empty()


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
    return FLOW_RUNS.empty()


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


def validate_states(frame: pl.DataFrame | pl.LazyFrame, kind: RunKind = TASK_RUNS) -> None:
    """Check that ``frame`` has every contract column with the contract's dtype.

    Args:
        frame: the frame to check.
        kind: whose contract: :data:`TASK_RUNS` (:data:`STATES_SCHEMA`) or
            :data:`FLOW_RUNS` (:data:`FLOW_RUN_STATES_SCHEMA`).

    Raises:
        SchemaError: naming each missing column or each column whose dtype differs.

    Examples:
        >>> import trs_analytics as ta
        >>> ta.validate_states(ta.empty_states())
        >>> ta.validate_states(ta.empty_states().drop("name"))
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.SchemaError: the states frame lacks column 'name'. Hint: build it with trs_analytics.fetch_states() or read it with scan_states().
        >>> ta.validate_states(ta.empty_states(), FLOW_RUNS)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.SchemaError: the flow run states frame lacks columns 'flow_id', ... Hint: build it with trs_analytics.fetch_flow_run_states() or read it with scan_flow_run_states().
    """
    schema = _schema_of(frame)
    expected = kind.schema
    missing = [c for c in expected if c not in schema]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        noun = "column" if len(missing) == 1 else "columns"
        msg = (
            f"the {kind.api.replace('_', ' ')} frame lacks {noun} {names}. Hint: build it with "
            f"trs_analytics.fetch_{kind.api}() or read it with scan_{kind.api}()."
        )
        raise SchemaError(msg)
    wrong = [
        f"{c!r} is {schema[c]}, expected {dtype}"
        for c, dtype in expected.items()
        if schema[c] != dtype
    ]
    if wrong:
        msg = (
            f"the {kind.api.replace('_', ' ')} frame has columns of the wrong type: "
            f"{'; '.join(wrong)}. Hint: cast with "
            f"frame.cast(trs_analytics.{kind.api.upper()}_SCHEMA)."
        )
        raise SchemaError(msg)

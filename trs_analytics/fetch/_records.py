"""JSON records from the Prefect API -> typed Polars frames in the contract's schema.

Two kinds of input become the same state rows:

* a state from ``GET /task_run_states/`` (``id``, ``type``, ``name``, ``timestamp``,
  ``message``, ``state_details``), or ``GET /flow_run_states/`` for flow runs
  (:func:`state_row_from_api` takes the :class:`~trs_analytics.schema.RunKind`);
* a ``prefect.task-run.<State>`` event from ``/events/filter`` (``id`` = the state
  id, ``occurred`` = the state timestamp, ``payload.validated_state``).

Events carry ``state_details`` with defaults left out; :func:`state_row_from_event`
fills Prefect's defaults in, so both sources give identical rows.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import polars as pl

from trs_analytics.exceptions import ResponseFormatError
from trs_analytics.schema import DETAILS_COLUMNS, FLOW_RUNS, STATE_TYPES, TASK_RUNS, UTC_US

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from trs_analytics.schema import RunKind

__all__ = [
    "ATTRIBUTES_SCHEMA",
    "FLOW_RUN_ATTRIBUTES_SCHEMA",
    "STATE_COLUMNS",
    "attribute_row",
    "attributes_schema",
    "derive_task_name",
    "flow_run_attribute_row",
    "json_text",
    "parse_timestamps",
    "state_row_from_api",
    "state_row_from_event",
    "states_frame",
]

#: Columns that come from the state record itself.
STATE_COLUMNS = (
    "id",
    "task_run_id",
    "flow_run_id",
    "type",
    "name",
    "timestamp",
    "message",
    "data",
)


def attributes_schema(kind: RunKind) -> pl.Schema:
    """The attributes frame of ``kind``'s runs handed to :func:`states_frame`: the run's id,
    the columns that come from the run (and its flow run, flow, deployment), times still
    strings, and ``_state_type``, the run's current state type (for filtering).

    Examples:
        >>> attributes_schema(FLOW_RUNS).names()[:3]
        ['flow_run_id', 'flow_run_name', 'flow_id']
    """
    attributes = {
        c: pl.String() if t == UTC_US else t
        for c, t in kind.schema.items()
        if c not in STATE_COLUMNS and c not in DETAILS_COLUMNS
    }
    return pl.Schema({kind.id_column: pl.String(), **attributes, "_state_type": pl.String()})


#: The attributes frame of task runs (:func:`attributes_schema`).
ATTRIBUTES_SCHEMA = attributes_schema(TASK_RUNS)
#: The attributes frame of flow runs (:func:`attributes_schema`).
FLOW_RUN_ATTRIBUTES_SCHEMA = attributes_schema(FLOW_RUNS)

# Prefect's StateDetails defaults; events omit fields left at their default.
_DETAIL_DEFAULTS: dict[str, Any] = {
    "pause_reschedule": False,
    "untrackable_result": False,
    "deferred": False,
}
_TASK_KEY_HASH = re.compile(r"-(?:[0-9a-f]{8}|unknown)$")


def _missing(*, field: str, record: Mapping[str, Any], what: str, url: str) -> ResponseFormatError:
    rid = record.get("id", "<no id>")
    msg = (
        f"a {what} from {url} has no {field!r} (record id {rid}). Hint: the server may run "
        "a Prefect version this package does not know; please report it with the version."
    )
    return ResponseFormatError(msg, url=url)


def _require(
    record: Mapping[str, Any],
    fields: Iterable[str],
    *,
    what: str,
    url: str,
    within: Mapping[str, Any] | None = None,
    prefix: str = "",
) -> None:
    """Raise :func:`_missing` for the first of ``fields`` that ``record`` (or the part of
    it ``within``, named by ``prefix``) lacks."""
    held = record if within is None else within
    for field in fields:
        if held.get(field) is None:
            raise _missing(field=prefix + field, record=record, what=what, url=url)


def json_text(value: Any) -> str | None:
    """A JSON value as canonical text (sorted keys, no spaces); None stays None.

    Both sources send the same objects with keys in any order; this text is
    equal whenever the objects are.

    Examples:
        >>> json_text({"storage_key": "k", "expiration": None})
        '{"expiration":null,"storage_key":"k"}'
        >>> json_text(None) is None
        True
    """
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    details = details or {}
    row = {}
    for col in DETAILS_COLUMNS:
        field = col.removeprefix("details_")
        value = details.get(field, _DETAIL_DEFAULTS.get(field))
        row[col] = json_text(value) if isinstance(value, dict | list) else value
    return row


def state_row_from_api(
    record: Mapping[str, Any], *, run_id: str, url: str, kind: RunKind = TASK_RUNS
) -> dict[str, Any]:
    """One state from ``kind.states_path`` (``/task_run_states/``) -> a row of state columns.

    The run's id is ``state_details`` own (else ``run_id``); a state's other ids stay
    only where ``kind.schema`` has them: a subflow run's states name its parent task
    run in ``state_details.task_run_id``, which is no column of flow-run states.

    Examples:
        >>> row = state_row_from_api(
        ...     {"id": "s1", "type": "RUNNING", "name": "Running",
        ...      "timestamp": "2024-01-01T00:00:00Z", "message": "",
        ...      "state_details": {"flow_run_id": "f1", "retriable": True}},
        ...     run_id="t1", url="test")
        >>> row["task_run_id"], row["flow_run_id"], row["details_retriable"], row["details_deferred"]
        ('t1', 'f1', True, False)
        >>> row = state_row_from_api(
        ...     {"id": "s1", "type": "SCHEDULED", "name": "Scheduled",
        ...      "timestamp": "2024-01-01T00:00:00Z",
        ...      "state_details": {"scheduled_time": "2024-01-01T00:00:00Z", "task_run_id": "t"}},
        ...     run_id="f1", url="test", kind=FLOW_RUNS)
        >>> row["flow_run_id"], row["details_scheduled_time"], "task_run_id" in row
        ('f1', '2024-01-01T00:00:00Z', False)
    """
    _require(record, ("id", "type", "name", "timestamp"), what=f"{kind.adjective} state", url=url)
    details = record.get("state_details") or {}
    row = {
        "id": record["id"],
        "task_run_id": details.get("task_run_id"),
        "flow_run_id": details.get("flow_run_id"),
        "type": record["type"],
        "name": record["name"],
        "timestamp": record["timestamp"],
        "message": record.get("message"),
        "data": json_text(record.get("data")),
        **_details(details),
    }
    row[kind.id_column] = row[kind.id_column] or run_id
    return {c: v for c, v in row.items() if c in kind.schema}


def _resource_id(resource: Mapping[str, Any], prefix: str) -> str | None:
    rid = resource.get("prefect.resource.id", "")
    return rid.removeprefix(prefix) if isinstance(rid, str) and rid.startswith(prefix) else None


def state_row_from_event(event: Mapping[str, Any], *, url: str) -> dict[str, Any] | None:
    """One ``prefect.task-run.*`` event -> a row of state columns, or None if not a state change.

    Examples:
        >>> event = {"id": "s1", "occurred": "2024-01-01T00:00:00Z",
        ...          "event": "prefect.task-run.Running",
        ...          "resource": {"prefect.resource.id": "prefect.task-run.t1"},
        ...          "related": [{"prefect.resource.id": "prefect.flow-run.f1",
        ...                       "prefect.resource.role": "flow-run"}],
        ...          "payload": {"validated_state": {"type": "RUNNING", "name": "Running",
        ...                                          "message": "", "state_details": {}}}}
        >>> row = state_row_from_event(event, url="test")
        >>> row["task_run_id"], row["flow_run_id"], row["type"]
        ('t1', 'f1', 'RUNNING')
    """
    state = (event.get("payload") or {}).get("validated_state")
    if state is None:
        return None
    task_run_id = _resource_id(event.get("resource") or {}, TASK_RUNS.event_prefix)
    if task_run_id is None:
        raise _missing(
            field="resource prefect.task-run id", record=event, what="task-run event", url=url
        )
    _require(event, ("id", "occurred"), what="task-run event", url=url)
    _require(
        event,
        ("type", "name"),
        what="task-run event",
        url=url,
        within=state,
        prefix="payload.validated_state.",
    )
    details = state.get("state_details") or {}
    flow_run_id = details.get("flow_run_id")
    for related in event.get("related") or []:
        if flow_run_id is None and related.get("prefect.resource.role") == "flow-run":
            flow_run_id = _resource_id(related, FLOW_RUNS.event_prefix)
    return {
        "id": event["id"],
        "task_run_id": task_run_id,
        "flow_run_id": flow_run_id,
        "type": state["type"],
        "name": state["name"],
        "timestamp": event["occurred"],
        "message": state.get("message"),
        "data": json_text(state.get("data")),
        **_details(details),
    }


def derive_task_name(name: str | None, task_key: str | None, dynamic_key: str | None) -> str | None:
    """The task's own name (``@task(name=...)``) from a task run's fields.

    Prefect names a task run ``f"{task.name}-{dynamic_key[:3]}"`` (older releases
    used the whole dynamic key), so that suffix is removed. A custom
    ``task_run_name`` has no such suffix; then the task key, which is
    ``f"{function qualname}-{8 hex digits}"``, gives the function's name.

    Examples:
        >>> derive_task_name("extract-3d7", "ex-5187e2fe", "3d713350-3b0b")
        'extract'
        >>> derive_task_name("load-7", "load-9a1dacf0", "7")
        'load'
        >>> derive_task_name("nightly run for acme", "report-9a1dacf0", "2")
        'report'
    """
    if name and dynamic_key:
        for suffix in (f"-{dynamic_key[:3]}", f"-{dynamic_key}"):
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
    if task_key:
        return _TASK_KEY_HASH.sub("", task_key)
    return name


def attribute_row(
    task_run: Mapping[str, Any],
    flow_run: Mapping[str, Any] | None,
    flow: Mapping[str, Any] | None,
    *,
    url: str,
) -> dict[str, Any]:
    """A task run (+ its flow run and flow) -> the contract's attribute columns.

    The extra key ``_state_type`` (the task run's current state type) is kept
    for filtering and dropped before a frame leaves the fetch layer.
    """
    _require(task_run, ("id", "name", "task_key"), what="task run", url=url)
    flow_run = flow_run or {}
    flow = flow or {}
    name, key, dyn = task_run["name"], task_run["task_key"], task_run.get("dynamic_key")
    return {
        "task_run_id": task_run["id"],
        "task_run_name": name,
        "task_key": key,
        "task_name": derive_task_name(name, key, dyn),
        "dynamic_key": dyn,
        "tags": list(task_run.get("tags") or []),
        "run_count": task_run.get("run_count"),
        "expected_start_time": task_run.get("expected_start_time"),
        "flow_run_name": flow_run.get("name"),
        "flow_name": flow.get("name"),
        "deployment_id": flow_run.get("deployment_id"),
        "work_pool_name": flow_run.get("work_pool_name"),
        "_state_type": task_run.get("state_type"),
    }


def flow_run_attribute_row(
    flow_run: Mapping[str, Any],
    flow: Mapping[str, Any] | None,
    deployment: Mapping[str, Any] | None,
    *,
    url: str,
) -> dict[str, Any]:
    """A flow run (+ its flow and deployment) -> the flow-run contract's attribute columns.

    The extra key ``_state_type`` (the run's current state type) is kept for
    filtering and dropped before a frame leaves the fetch layer.

    Examples:
        >>> row = flow_run_attribute_row(
        ...     {"id": "f1", "name": "brave-fox", "flow_id": "fl", "deployment_id": "d",
        ...      "work_pool_name": "pool", "work_queue_name": "default", "tags": ["a"],
        ...      "run_count": 1, "expected_start_time": "2024-01-01T00:00:00Z",
        ...      "parent_task_run_id": None, "state_type": "COMPLETED"},
        ...     {"id": "fl", "name": "etl"}, {"id": "d", "name": "nightly"}, url="test")
        >>> row["flow_name"], row["deployment_name"], row["work_queue_name"]
        ('etl', 'nightly', 'default')
    """
    _require(flow_run, ("id", "name"), what="flow run", url=url)
    flow = flow or {}
    deployment = deployment or {}
    return {
        "flow_run_id": flow_run["id"],
        "flow_run_name": flow_run["name"],
        "flow_id": flow_run.get("flow_id"),
        "flow_name": flow.get("name"),
        "deployment_id": flow_run.get("deployment_id"),
        "deployment_name": deployment.get("name"),
        "work_pool_name": flow_run.get("work_pool_name"),
        "work_queue_name": flow_run.get("work_queue_name"),
        "tags": list(flow_run.get("tags") or []),
        "run_count": flow_run.get("run_count"),
        "expected_start_time": flow_run.get("expected_start_time"),
        "parent_task_run_id": flow_run.get("parent_task_run_id"),
        "_state_type": flow_run.get("state_type"),
    }


def parse_timestamps(frame: pl.DataFrame, columns: Iterable[str], *, url: str) -> pl.DataFrame:
    """Parse ISO-8601 string columns into ``Datetime("us", "UTC")``; raise on garbage."""
    columns = [c for c in columns if c in frame.columns and frame.schema[c] == pl.String]
    try:
        return frame.with_columns(
            pl.col(c).str.to_datetime(
                format="%Y-%m-%dT%H:%M:%S%.f%#z", time_unit="us", time_zone="UTC", strict=True
            )
            for c in columns
        )
    except pl.exceptions.InvalidOperationError as err:
        msg = (
            f"a timestamp from {url} is not ISO-8601 ({str(err).splitlines()[0]}). "
            "Hint: the server should send times like 2024-01-01T00:00:00.123456Z."
        )
        raise ResponseFormatError(msg, url=url) from err


def states_frame(
    state_rows: list[dict[str, Any]],
    attributes: pl.DataFrame,
    *,
    url: str,
    kind: RunKind = TASK_RUNS,
) -> pl.DataFrame:
    """Join state rows with their runs' attributes into a frame of exactly ``kind.schema``.

    Raises:
        ResponseFormatError: on an unknown state type or an unparseable timestamp.
    """
    schema = kind.schema
    string_schema = {
        c: pl.String() if schema[c] == UTC_US or c == "type" else schema[c]
        for c in (*STATE_COLUMNS, *DETAILS_COLUMNS)
        if c in schema
    }
    time_columns = [c for c, t in schema.items() if t == UTC_US]
    states = pl.DataFrame(state_rows, schema=string_schema)
    unknown = states.filter(~pl.col("type").is_in(STATE_TYPES))["type"].unique().to_list()
    if unknown:
        msg = (
            f"{url} returned state type(s) {sorted(unknown)} that are not among Prefect's "
            f"{len(STATE_TYPES)} known types {list(STATE_TYPES)}. Hint: this server may be newer "
            "than trs_analytics; upgrade trs_analytics or report the new type."
        )
        raise ResponseFormatError(msg, url=url)
    states = parse_timestamps(states, time_columns, url=url)
    joined = states.join(attributes, on=kind.id_column, how="left", maintain_order="left")
    joined = parse_timestamps(joined, time_columns, url=url)
    return joined.select(pl.col(c).cast(t) for c, t in schema.items())

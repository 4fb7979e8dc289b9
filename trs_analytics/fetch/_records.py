"""JSON records from the Prefect API -> typed Polars frames in the contract's schema.

Two kinds of input become the same state rows:

* a state from ``GET /task_run_states/`` (``id``, ``type``, ``name``, ``timestamp``,
  ``message``, ``state_details``), or ``GET /flow_run_states/`` for flow runs
  (:func:`state_row_from_api` takes the :class:`~trs_analytics.schema.RunKind`);
* a ``prefect.task-run.<State>`` event from ``/events/filter`` (``id`` = the state
  id, ``occurred`` = the state timestamp, ``payload.validated_state``).

Events carry ``state_details`` with defaults left out; :func:`state_row_from_event`
fills Prefect's defaults in, so both sources give identical rows.

Every row is checked against the contract before it becomes data
(:func:`checked_row`): a field of the wrong JSON type (``tags`` as a string,
``retriable: "yes"``, a name that is an object) or a required field that is
null raises :class:`~trs_analytics.exceptions.ResponseFormatError` naming the
field, never a silent conversion.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import polars as pl

from trs_analytics.exceptions import ResponseFormatError
from trs_analytics.schema import (
    DETAILS_COLUMNS,
    FLOW_RUN_STATES_SCHEMA,
    FLOW_RUNS,
    STATE_TYPES,
    STATES_SCHEMA,
    TASK_RUNS,
    UTC_US,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from trs_analytics.schema import RunKind

__all__ = [
    "ATTRIBUTES_SCHEMA",
    "FLOW_RUN_ATTRIBUTES_SCHEMA",
    "STATE_COLUMNS",
    "attribute_row",
    "attributes_schema",
    "checked_row",
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


def _missing(*, field: str, record: Any, what: str, url: str) -> ResponseFormatError:
    rid = record.get("id", "<no id>") if isinstance(record, dict) else "<no id>"
    msg = (
        f"a {what} from {url} has no {field!r} (record id {rid}). Hint: the server may run "
        "a Prefect version this package does not know; please report it with the version."
    )
    return ResponseFormatError(msg, url=url)


def _wrong(
    *, field: str, value: Any, expected: str, record: Any, what: str, url: str
) -> ResponseFormatError:
    rid = record.get("id", "<no id>") if isinstance(record, dict) else "<no id>"
    shown = json.dumps(value, default=str)[:60] if value is not None else "null"
    msg = (
        f"a {what} from {url} has {field!r} = {shown} ({_json_kind(value)}), expected "
        f"{expected} (record id {str(rid)[:60]}). Hint: the server (or a proxy in between) "
        "does not send what the Prefect API documents; please report it with its version."
    )
    return ResponseFormatError(msg, url=url)


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return kinds.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def _object(value: Any, *, field: str, record: Any, what: str, url: str) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, ``{}`` when null; anything else is an error."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _wrong(
            field=field, value=value, expected="an object", record=record, what=what, url=url
        )
    return value


def _accepts(dtype: pl.DataType, value: Any) -> tuple[bool, str]:
    """Whether a JSON value fits a contract column (before timestamps are parsed)."""
    if isinstance(dtype, pl.Boolean):
        return isinstance(value, bool), "true or false"
    if dtype.is_integer():
        ok = isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
        return ok, "a 64-bit integer"
    if isinstance(dtype, pl.List):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return ok, "a list of strings"
    return isinstance(value, str), "a string"


def checked_row(
    row: dict[str, Any],
    schema: Mapping[str, pl.DataType],
    *,
    required: tuple[str, ...] = (),
    fields: Mapping[str, str] | None = None,
    record: Any = None,
    what: str,
    url: str,
) -> dict[str, Any]:
    """``row`` when each value fits its contract column (nulls allowed but in ``required``).

    ``fields`` names the server's field of a column in messages (``details_retriable``
    is ``state_details.retriable``). Columns outside ``schema`` must be strings.

    Examples:
        >>> checked_row({"tags": ["a"]}, {"tags": pl.List(pl.String)}, what="run", url="u")
        {'tags': ['a']}
        >>> checked_row({"tags": "a,b"}, {"tags": pl.List(pl.String)}, what="run", url="u")
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ResponseFormatError: a run from u has 'tags' = "a,b" (a string), expected a list of strings (record id <no id>). Hint: ...
    """
    for column, value in row.items():
        field = (fields or {}).get(column, column)
        if value is None:
            if column in required:
                raise _missing(field=field, record=record or row, what=what, url=url)
            continue
        ok, expected = _accepts(schema.get(column, pl.String()), value)
        if not ok:
            raise _wrong(
                field=field,
                value=value,
                expected=expected,
                record=record or row,
                what=what,
                url=url,
            )
    return row


def _details_fields(prefix: str) -> dict[str, str]:
    return {c: f"{prefix}state_details.{c.removeprefix('details_')}" for c in DETAILS_COLUMNS}


#: The schema rows are checked against: timestamps and the state type still strings.
_ROW_SCHEMA: dict[str, pl.DataType] = {
    **{c: (pl.String() if t == UTC_US or c == "type" else t) for c, t in STATES_SCHEMA.items()},
    **{c: t for c, t in FLOW_RUN_STATES_SCHEMA.items() if c not in STATES_SCHEMA},
}
_STATE_REQUIRED = ("id", "task_run_id", "type", "name", "timestamp")


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

    The run's id is ``state_details``' own (else ``run_id``); a state's other ids stay
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
    what = f"{kind.adjective} state"
    record = _object(record, field="state", record=record, what=what, url=url)
    for field in ("id", "type", "name", "timestamp"):
        if record.get(field) is None:
            raise _missing(field=field, record=record, what=what, url=url)
    details = _object(
        record.get("state_details"), field="state_details", record=record, what=what, url=url
    )
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
    fields = {
        **_details_fields(""),
        "task_run_id": "state_details.task_run_id",
        "flow_run_id": "state_details.flow_run_id",
    }
    required = ("id", kind.id_column, "type", "name", "timestamp")
    return checked_row(
        {c: v for c, v in row.items() if c in kind.schema},
        _ROW_SCHEMA,
        required=required,
        fields=fields,
        record=record,
        what=what,
        url=url,
    )


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
    what = "task-run event"
    event = _object(event, field="event", record=event, what=what, url=url)
    payload = _object(event.get("payload"), field="payload", record=event, what=what, url=url)
    if payload.get("validated_state") is None:
        return None
    state = _object(
        payload["validated_state"],
        field="payload.validated_state",
        record=event,
        what=what,
        url=url,
    )
    resource = _object(event.get("resource"), field="resource", record=event, what=what, url=url)
    task_run_id = _resource_id(resource, TASK_RUNS.event_prefix)
    if task_run_id is None:
        raise _missing(
            field="resource prefect.task-run id", record=event, what="task-run event", url=url
        )
    for field in ("id", "occurred"):
        if event.get(field) is None:
            raise _missing(field=field, record=event, what="task-run event", url=url)
    for field in ("type", "name"):
        if state.get(field) is None:
            raise _missing(
                field=f"payload.validated_state.{field}",
                record=event,
                what="task-run event",
                url=url,
            )
    details = _object(
        state.get("state_details"),
        field="payload.validated_state.state_details",
        record=event,
        what=what,
        url=url,
    )
    flow_run_id = details.get("flow_run_id")
    related_list = event.get("related") or []
    if not isinstance(related_list, list):
        raise _wrong(
            field="related", value=related_list, expected="a list", record=event, what=what, url=url
        )
    for related in related_list:
        related = _object(related, field="related[]", record=event, what=what, url=url)
        if flow_run_id is None and related.get("prefect.resource.role") == "flow-run":
            flow_run_id = _resource_id(related, FLOW_RUNS.event_prefix)
    row = {
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
    state_field = "payload.validated_state."
    fields = {
        **_details_fields(state_field),
        **{c: state_field + c for c in ("type", "name", "message")},
        "timestamp": "occurred",
        "flow_run_id": f"{state_field}state_details.flow_run_id",
    }
    return checked_row(
        row, _ROW_SCHEMA, required=_STATE_REQUIRED, fields=fields, record=event, what=what, url=url
    )


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
    what = "task run"
    task_run = _object(task_run, field="task run", record=task_run, what=what, url=url)
    flow_run = _object(flow_run, field="flow run", record=task_run, what="flow run", url=url)
    flow = _object(flow, field="flow", record=task_run, what="flow", url=url)
    raw: dict[str, Any] = {
        "task_run_id": task_run.get("id"),
        "task_run_name": task_run.get("name"),
        "task_key": task_run.get("task_key"),
        "dynamic_key": task_run.get("dynamic_key"),
        "tags": task_run.get("tags") or [],
        "run_count": task_run.get("run_count"),
        "expected_start_time": task_run.get("expected_start_time"),
        "_state_type": task_run.get("state_type"),
    }
    fields = {"task_run_id": "id", "task_run_name": "name", "_state_type": "state_type"}
    required = ("task_run_id", "task_run_name", "task_key", "expected_start_time")
    checked_row(
        raw, _ROW_SCHEMA, required=required, fields=fields, record=task_run, what=what, url=url
    )
    joined = {
        "flow_run_name": flow_run.get("name"),
        "deployment_id": flow_run.get("deployment_id"),
        "work_pool_name": flow_run.get("work_pool_name"),
    }
    checked_row(
        joined,
        _ROW_SCHEMA,
        fields={"flow_run_name": "name"},
        record=flow_run,
        what="flow run",
        url=url,
    )
    checked_row(
        {"flow_name": flow.get("name")},
        _ROW_SCHEMA,
        fields={"flow_name": "name"},
        record=flow,
        what="flow",
        url=url,
    )
    name, key, dyn = raw["task_run_name"], raw["task_key"], raw["dynamic_key"]
    return {
        "task_run_id": raw["task_run_id"],
        "task_run_name": name,
        "task_key": key,
        "task_name": derive_task_name(name, key, dyn),
        "dynamic_key": dyn,
        "tags": list(raw["tags"]),
        "run_count": raw["run_count"],
        "expected_start_time": raw["expected_start_time"],
        "flow_run_name": joined["flow_run_name"],
        "flow_name": flow.get("name"),
        "deployment_id": joined["deployment_id"],
        "work_pool_name": joined["work_pool_name"],
        "_state_type": raw["_state_type"],
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
    what = "flow run"
    flow_run = _object(flow_run, field="flow run", record=flow_run, what=what, url=url)
    flow = _object(flow, field="flow", record=flow_run, what="flow", url=url)
    deployment = _object(
        deployment, field="deployment", record=flow_run, what="deployment", url=url
    )
    row: dict[str, Any] = {
        "flow_run_id": flow_run.get("id"),
        "flow_run_name": flow_run.get("name"),
        "flow_id": flow_run.get("flow_id"),
        "flow_name": flow.get("name"),
        "deployment_id": flow_run.get("deployment_id"),
        "deployment_name": deployment.get("name"),
        "work_pool_name": flow_run.get("work_pool_name"),
        "work_queue_name": flow_run.get("work_queue_name"),
        "tags": flow_run.get("tags") or [],
        "run_count": flow_run.get("run_count"),
        "expected_start_time": flow_run.get("expected_start_time"),
        "parent_task_run_id": flow_run.get("parent_task_run_id"),
        "_state_type": flow_run.get("state_type"),
    }
    fields = {
        "flow_run_id": "id",
        "flow_run_name": "name",
        "flow_name": "flow.name",
        "deployment_name": "deployment.name",
        "_state_type": "state_type",
    }
    required = ("flow_run_id", "flow_run_name", "expected_start_time")
    checked_row(
        row, _ROW_SCHEMA, required=required, fields=fields, record=flow_run, what=what, url=url
    )
    return {**row, "tags": list(row["tags"])}


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

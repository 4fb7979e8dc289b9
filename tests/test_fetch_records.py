"""Records -> rows: task names, states vs events, and records the contract refuses.

The inputs are the real Prefect 3.9.1 records in ``tests/recordings``.
"""

from __future__ import annotations

import copy
from typing import Any

import polars as pl
import pytest

from tests.recorded import CACHED_HIT, CACHED_MISS, EXTRACT, FLAKY, recorded_body
from trs_analytics.exceptions import ResponseFormatError
from trs_analytics.fetch import derive_task_name
from trs_analytics.fetch._records import (
    ATTRIBUTES_SCHEMA,
    attribute_row,
    state_row_from_api,
    state_row_from_event,
    states_frame,
)
from trs_analytics.schema import STATES_SCHEMA

URL = "http://test/api"
EVENTS = (
    recorded_body("events_filter_page1")["events"] + recorded_body("events_filter_page2")["events"]
)
TASK_RUNS = {run["id"]: run for run in recorded_body("task_runs_filter")}
FLOW_RUN = recorded_body("flow_runs_filter")[0]
FLOW = recorded_body("flows_filter")[0]


def states_of(task_run_id: str) -> list[dict[str, Any]]:
    return recorded_body(f"task_run_states_{task_run_id}")  # type: ignore[no-any-return]


def api_rows(task_run_id: str) -> list[dict[str, Any]]:
    return [state_row_from_api(s, run_id=task_run_id, url=URL) for s in states_of(task_run_id)]


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    row = state_row_from_event(event, url=URL)
    assert row is not None, "a task run's recorded events are all state changes"
    return row


def attributes(*task_run_ids: str) -> pl.DataFrame:
    rows = [attribute_row(TASK_RUNS[i], FLOW_RUN, FLOW, url=URL) for i in task_run_ids]
    return pl.DataFrame(rows, schema=ATTRIBUTES_SCHEMA).drop("_state_type")


# -- task names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "task_key", "dynamic_key", "expected"),
    [
        # recorded: the default name is f"{task.name}-{dynamic_key[:3]}"
        ("flaky-8f4", "flaky-9a1dacf0", "8f499e92-ca04-46b0-89a1-ad4ca2e80e7a", "flaky"),
        # @task(name="extract") on a function called ex: the name wins over the key
        ("extract-3d7", "ex-5187e2fe", "3d713350-3b0b-4eab-93a5-4ec898b033a7", "extract"),
        ("cached-54f", "cached-ac876494", "54fc967f-923e-45b9-bc6a-8456aad9eb9b", "cached"),
        # short dynamic keys (Prefect 2 counters) and whole-key suffixes (older releases)
        ("load-7", "load-9a1dacf0", "7", "load"),
        ("load-12", "load-9a1dacf0", "12", "load"),
        ("my-task-3d713350-3b0b", "t-5187e2fe", "3d713350-3b0b", "my-task"),
        # dashes inside a task name are kept
        ("fetch-data-a1b", "fetch_data-0123abcd", "a1b2c3", "fetch-data"),
        # a custom task_run_name has no suffix: the key gives the function name
        ("nightly run for acme", "report-9a1dacf0", "2", "report"),
        ("nightly run", "Outer.<locals>.report-9a1dacf0", "2", "Outer.<locals>.report"),
        ("custom", "report-unknown", "0", "report"),
        # the suffix alone is not a name
        ("-8f4", "flaky-9a1dacf0", "8f499e92", "flaky"),
        # a key without the hash suffix stays whole
        ("custom", "plain_key", "0", "plain_key"),
        # missing values
        ("flaky-8f4", None, "8f499e92", "flaky"),
        ("custom", None, None, "custom"),
        ("custom", "report-9a1dacf0", None, "report"),
        (None, "report-9a1dacf0", "0", "report"),
        (None, None, None, None),
        ("", None, "0", ""),
    ],
)
def test_derive_task_name(
    name: str | None, task_key: str | None, dynamic_key: str | None, expected: str | None
) -> None:
    assert derive_task_name(name, task_key, dynamic_key) == expected


# -- states and events give the same rows -----------------------------------------


@pytest.mark.parametrize(
    ("task_run_id", "names"),
    [
        (FLAKY, ["Pending", "Running", "Retrying", "Completed"]),
        (EXTRACT, ["Pending", "Running", "Completed"]),
        (CACHED_MISS, ["Pending", "Running", "Completed"]),
    ],
    ids=["flaky", "extract", "cached"],
)
def test_recorded_states_and_events_of_a_task_run_give_identical_rows(
    task_run_id: str, names: list[str]
) -> None:
    events = [e for e in EVENTS if e["resource"]["prefect.resource.id"].endswith(task_run_id)]
    # the point: events leave out state_details fields at their default value
    assert all(
        set(e["payload"]["validated_state"]["state_details"]) <= {"untrackable_result"}
        for e in events
    )
    from_events = [event_row(e) for e in events]
    from_states = api_rows(task_run_id)
    assert [row["name"] for row in from_states] == names
    assert from_events == from_states
    frames = [
        states_frame(rows, attributes(task_run_id), url=URL) for rows in (from_events, from_states)
    ]
    assert frames[0].equals(frames[1])


def test_a_state_row_has_the_recorded_values() -> None:
    completed = api_rows(FLAKY)[-1]
    assert completed == {
        "id": "01a2225e-9376-7700-9ab3-e1c0be80d4e6",
        "task_run_id": FLAKY,
        "flow_run_id": FLOW_RUN["id"],
        "type": "COMPLETED",
        "name": "Completed",
        "timestamp": "2026-11-28T13:35:53.206581Z",
        "message": "",
        "data": None,
        "details_scheduled_time": None,
        "details_cache_key": None,
        "details_cache_expiration": None,
        "details_retriable": None,
        "details_pause_timeout": None,
        "details_pause_reschedule": False,
        "details_pause_key": None,
        "details_child_flow_run_id": None,
        "details_refresh_cache": None,
        "details_untrackable_result": True,
        "details_deferred": False,
        "details_transition_id": None,
        "details_task_parameters_id": None,
        "details_run_input_keyset": None,
        "details_traceparent": None,
    }


def test_the_result_record_in_data_is_kept_as_canonical_json_by_both_sources() -> None:
    # the cached-miss run's Completed state holds a result record (3.9.1 recording)
    completed = api_rows(CACHED_MISS)[-1]
    assert completed["data"] == (
        '{"expiration":null,"prefect_version":"3.9.1","serializer":{"type":"pickle"},'
        '"storage_block_id":null,"storage_key":"/tmp/pf/home/storage/k"}'
    )
    event = next(e for e in EVENTS if e["id"] == completed["id"])
    assert state_row_from_event(event, url=URL)["data"] == completed["data"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        (
            {"task_parameters_id": "0c5b2d6e-1f0f-4a4b-9d53-3f1c2b1e7f10"},
            {"details_task_parameters_id": "0c5b2d6e-1f0f-4a4b-9d53-3f1c2b1e7f10"},
        ),
        (
            {"run_input_keyset": {"schema": "paused-1-schema", "response": "paused-1-response"}},
            {
                "details_run_input_keyset": (
                    '{"response":"paused-1-response","schema":"paused-1-schema"}'
                )
            },
        ),
        (
            {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
            {"details_traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        ),
    ],
)
def test_the_version_2_details_columns(details: dict[str, Any], expected: dict[str, str]) -> None:
    record = {
        "id": "s1",
        "type": "PAUSED",
        "name": "Suspended",
        "timestamp": "2026-01-01T00:00:00Z",
        "state_details": details,
    }
    row = state_row_from_api(record, run_id="t1", url=URL)
    assert {k: row[k] for k in expected} == expected


def test_states_frame_joins_the_task_run_flow_run_and_flow() -> None:
    frame = states_frame(api_rows(CACHED_HIT), attributes(CACHED_HIT), url=URL)
    assert frame.schema == STATES_SCHEMA
    assert frame["name"].to_list() == ["Pending", "Running", "Cached"]
    assert frame["type"].cast(pl.String).to_list() == ["PENDING", "RUNNING", "COMPLETED"]
    first = frame.row(0, named=True)
    assert {k: first[k] for k in ("task_run_name", "task_key", "task_name", "run_count")} == {
        "task_run_name": "cached-54f",
        "task_key": "cached-ac876494",
        "task_name": "cached",
        "run_count": 1,
    }
    assert (first["flow_run_name"], first["flow_name"], first["tags"]) == (
        "papaya-pegasus",
        "demo",
        [],
    )
    assert first["timestamp"].isoformat() == "2026-11-28T13:35:53.218185+00:00"
    assert first["expected_start_time"].isoformat() == "2026-11-28T13:35:53.218185+00:00"


def test_an_event_without_a_validated_state_is_not_a_state_change() -> None:
    event = copy.deepcopy(EVENTS[0])
    del event["payload"]["validated_state"]
    assert state_row_from_event(event, url=URL) is None


def test_an_event_takes_its_flow_run_from_related_resources() -> None:
    event = copy.deepcopy(EVENTS[0])
    assert event["payload"]["validated_state"]["state_details"] == {}
    assert state_row_from_event(event, url=URL)["flow_run_id"] == FLOW_RUN["id"]  # type: ignore[index]
    event["related"] = []
    assert state_row_from_event(event, url=URL)["flow_run_id"] is None  # type: ignore[index]


# -- records missing what the contract needs ----------------------------------------


def _drop(record: dict[str, Any], path: str) -> dict[str, Any]:
    record = copy.deepcopy(record)
    *parents, leaf = path.split(".")
    target = record
    for key in parents:
        target = target[key]
    del target[leaf]
    return record


@pytest.mark.parametrize("field", ["id", "type", "name", "timestamp"])
def test_a_state_missing_a_required_field_raises_naming_it(field: str) -> None:
    state = _drop(states_of(FLAKY)[1], field)
    with pytest.raises(ResponseFormatError, match=f"a task-run state from {URL} has no '{field}'"):
        state_row_from_api(state, run_id=FLAKY, url=URL)


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("id", "'id'"),
        ("occurred", "'occurred'"),
        ("payload.validated_state.type", "'payload.validated_state.type'"),
        ("payload.validated_state.name", "'payload.validated_state.name'"),
        ("resource.prefect.resource.id", "'resource prefect.task-run id'"),
    ],
)
def test_an_event_missing_a_required_field_raises_naming_it(path: str, named: str) -> None:
    if path.startswith("resource."):
        event = copy.deepcopy(EVENTS[1])
        del event["resource"]["prefect.resource.id"]
    else:
        event = _drop(EVENTS[1], path)
    with pytest.raises(ResponseFormatError) as info:
        state_row_from_event(event, url=URL)
    assert f"a task-run event from {URL} has no {named}" in str(info.value)
    assert "Hint:" in str(info.value)


@pytest.mark.parametrize("field", ["id", "name", "task_key"])
def test_a_task_run_missing_a_required_field_raises_naming_it(field: str) -> None:
    run = _drop(TASK_RUNS[EXTRACT], field)
    with pytest.raises(ResponseFormatError, match=f"a task run from {URL} has no '{field}'"):
        attribute_row(run, FLOW_RUN, FLOW, url=URL)


@pytest.mark.parametrize("state_type", ["EXPLODED", "running", ""])
def test_an_unknown_state_type_raises(state_type: str) -> None:
    rows = api_rows(EXTRACT)
    rows[1]["type"] = state_type
    with pytest.raises(ResponseFormatError) as info:
        states_frame(rows, attributes(EXTRACT), url=URL)
    assert f"returned state type(s) [{state_type!r}]" in str(info.value)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("timestamp", "28/11/2026 13:35:53"),
        ("timestamp", "2026-11-28T13:35:53.191266"),  # no zone: refused, not guessed
        ("timestamp", "2026-13-45T00:00:00Z"),
        ("timestamp", "yesterday"),
        ("details_scheduled_time", "not a time"),
    ],
)
def test_a_timestamp_that_is_not_iso_8601_raises(column: str, value: str) -> None:
    rows = api_rows(EXTRACT)
    rows[0][column] = value
    with pytest.raises(ResponseFormatError, match="is not ISO-8601"):
        states_frame(rows, attributes(EXTRACT), url=URL)


def test_an_expected_start_time_that_is_not_iso_8601_raises() -> None:
    run = copy.deepcopy(TASK_RUNS[EXTRACT])
    run["expected_start_time"] = "soon"
    attrs = pl.DataFrame([attribute_row(run, FLOW_RUN, FLOW, url=URL)], schema=ATTRIBUTES_SCHEMA)
    with pytest.raises(ResponseFormatError, match="is not ISO-8601"):
        states_frame(api_rows(EXTRACT), attrs.drop("_state_type"), url=URL)


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-11-28T13:35:53.208883Z",
        "2026-11-28T13:35:53.208883+00:00",  # Prefect 2.20 writes offsets
        "2026-11-28T14:35:53.208883+01:00",
    ],
)
def test_iso_timestamps_with_a_zone_are_read_as_the_same_utc_instant(timestamp: str) -> None:
    rows = api_rows(EXTRACT)
    rows[0]["timestamp"] = timestamp
    frame = states_frame(rows, attributes(EXTRACT), url=URL)
    assert frame["timestamp"][0].isoformat() == "2026-11-28T13:35:53.208883+00:00"


def test_a_timestamp_without_a_fraction_is_read() -> None:
    rows = api_rows(EXTRACT)
    rows[0]["timestamp"] = "2026-11-28T13:35:53Z"
    frame = states_frame(rows, attributes(EXTRACT), url=URL)
    assert frame["timestamp"][0].isoformat() == "2026-11-28T13:35:53+00:00"


# -- a newer server's extra fields are ignored ----------------------------------------


def test_unknown_fields_from_a_newer_server_are_ignored() -> None:
    extra = {"new_field": {"nested": [1, 2]}, "another": "x"}
    states = [
        {**s, **extra, "state_details": {**s["state_details"], **extra}} for s in states_of(FLAKY)
    ]
    events = [e for e in EVENTS if e["resource"]["prefect.resource.id"].endswith(FLAKY)]
    newer_events = copy.deepcopy(events)
    for event in newer_events:
        event.update(extra)
        event["payload"].update(extra)
        event["payload"]["validated_state"].update(extra)
        event["payload"]["validated_state"]["state_details"].update(extra)
    run = {**TASK_RUNS[FLAKY], **extra}

    assert [state_row_from_api(s, run_id=FLAKY, url=URL) for s in states] == api_rows(FLAKY)
    assert [state_row_from_event(e, url=URL) for e in newer_events] == [
        state_row_from_event(e, url=URL) for e in events
    ]
    assert attribute_row(run, {**FLOW_RUN, **extra}, {**FLOW, **extra}, url=URL) == attribute_row(
        TASK_RUNS[FLAKY], FLOW_RUN, FLOW, url=URL
    )

"""Property: whatever JSON a server sends, the record parsers give a typed frame or a
:class:`~trs_analytics.exceptions.PrefectAPIError` (``ResponseFormatError``), never
another exception and never a silently converted value.

Hypothesis starts from the recorded Prefect 3.9.1 records (states, events, task
runs, flow runs) and puts random JSON (nulls, booleans, numbers, strings, lists,
objects, nested) at random places: a field, a nested field, or the whole record.
"""

from __future__ import annotations

import copy
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.recorded import FLAKY, recorded_body
from trs_analytics.exceptions import PrefectAPIError
from trs_analytics.fetch._pages import _check_event_page
from trs_analytics.fetch._records import (
    ATTRIBUTES_SCHEMA,
    FLOW_RUN_ATTRIBUTES_SCHEMA,
    attribute_row,
    flow_run_attribute_row,
    state_row_from_api,
    state_row_from_event,
    states_frame,
)
from trs_analytics.schema import STATES_SCHEMA

URL = "http://test/api"
STATES = recorded_body(f"task_run_states_{FLAKY}")
EVENTS = recorded_body("events_filter_page1")["events"]
TASK_RUNS = recorded_body("task_runs_filter")
FLOW_RUNS = recorded_body("flow_runs_filter")
FLOWS = recorded_body("flows_filter")

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([2**63, -(2**63) - 1, 2**64])
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(["RUNNING", "2026-11-28T13:35:53.191266Z", "", "a,b"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def paths_of(record: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of a JSON object (nested objects included)."""
    if not isinstance(record, dict):
        return []
    found = []
    for key, value in record.items():
        found.append((*prefix, key))
        found.extend(paths_of(value, (*prefix, key)))
    return found


@st.composite
def broken(draw: st.DrawFn, records: list[dict[str, Any]]) -> Any:
    """A recorded record with random JSON at one or two random places, or instead of it."""
    record = copy.deepcopy(draw(st.sampled_from(records)))
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON)
    for _ in range(draw(st.integers(1, 2))):
        paths = paths_of(record)
        if not paths:
            break
        *parents, leaf = draw(st.sampled_from(paths))
        target = record
        for key in parents:
            target = target[key]
        if not isinstance(target, dict):
            break
        if draw(st.booleans()):
            target[leaf] = draw(JSON)
        else:
            target.pop(leaf, None)
    return record


def typed_or_api_error(parse: Any) -> pl.DataFrame | None:
    try:
        return parse()  # type: ignore[no-any-return]
    except PrefectAPIError:
        return None


def _attrs(task_run_id: str) -> pl.DataFrame:
    run = next((r for r in TASK_RUNS if r["id"] == task_run_id), TASK_RUNS[0])
    row = attribute_row({**run, "id": task_run_id}, FLOW_RUNS[0], FLOWS[0], url=URL)
    return pl.DataFrame([row], schema=ATTRIBUTES_SCHEMA).drop("_state_type")


@SETTINGS
@given(record=broken(STATES))
def test_any_state_record_gives_a_typed_frame_or_an_api_error(record: Any) -> None:
    def parse() -> pl.DataFrame:
        row = state_row_from_api(record, run_id=FLAKY, url=URL)
        return states_frame([row], _attrs(row["task_run_id"]), url=URL)

    frame = typed_or_api_error(parse)
    if frame is not None:
        assert frame.schema == STATES_SCHEMA
        assert frame.height == 1
        assert frame["id"][0] == record["id"]


@SETTINGS
@given(event=broken(EVENTS))
def test_any_event_gives_a_typed_frame_or_an_api_error(event: Any) -> None:
    def parse() -> pl.DataFrame | None:
        _check_event_page({"events": [event]}, URL)
        row = state_row_from_event(event, url=URL)
        if row is None:
            return pl.DataFrame(schema=STATES_SCHEMA)
        return states_frame([row], _attrs(row["task_run_id"]), url=URL)

    frame = typed_or_api_error(parse)
    if frame is not None:
        assert frame.schema == STATES_SCHEMA


@SETTINGS
@given(run=broken(TASK_RUNS), flow_run=broken(FLOW_RUNS), flow=broken(FLOWS))
def test_any_task_run_gives_typed_attributes_or_an_api_error(
    run: Any, flow_run: Any, flow: Any
) -> None:
    def parse() -> pl.DataFrame:
        row = attribute_row(run, flow_run, flow, url=URL)
        return pl.DataFrame([row], schema=ATTRIBUTES_SCHEMA, strict=True)

    frame = typed_or_api_error(parse)
    if frame is not None:
        assert frame.schema == ATTRIBUTES_SCHEMA
        assert frame["tags"].to_list() == [run.get("tags") or []]
        assert frame["expected_start_time"][0] == run["expected_start_time"]


@SETTINGS
@given(flow_run=broken(FLOW_RUNS), flow=broken(FLOWS))
def test_any_flow_run_gives_typed_attributes_or_an_api_error(flow_run: Any, flow: Any) -> None:
    def parse() -> pl.DataFrame:
        row = flow_run_attribute_row(flow_run, flow, None, url=URL)
        return pl.DataFrame([row], schema=FLOW_RUN_ATTRIBUTES_SCHEMA, strict=True)

    frame = typed_or_api_error(parse)
    if frame is not None:
        assert frame.schema == FLOW_RUN_ATTRIBUTES_SCHEMA
        assert frame["run_count"][0] == flow_run.get("run_count")


@pytest.mark.parametrize("value", [None, "x", 1, [1], {"a": 1}])
def test_a_whole_record_of_another_kind_is_an_api_error(value: Any) -> None:
    with pytest.raises(PrefectAPIError):
        state_row_from_api(value, run_id=FLAKY, url=URL)
    with pytest.raises(PrefectAPIError):
        _check_event_page({"events": [value]}, URL) if not isinstance(value, dict) else (
            state_row_from_event({"payload": {"validated_state": value}}, url=URL)
        )

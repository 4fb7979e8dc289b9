"""Flow-run states: the two sources of :mod:`~trs_analytics.fetch._sources`, for flow runs.

* per run (``"states"``): the flow runs that can have a state in the window,
  listed through ``/flow_runs/filter`` the way task runs are
  (:func:`~trs_analytics.fetch._candidates.iter_candidates` with
  ``kind="flow_runs"``: keyset on ``expected_start_time``, which every line's
  ``FlowRunFilter`` has, past the 200-row cap), then one
  ``GET /flow_run_states/?flow_run_id=`` per run.
* events (``"events"``): ``prefect.flow-run.<State>`` events (Prefect 3) name
  the flow runs with a state in the window (event id = state id, ``occurred`` =
  state timestamp). Their ``validated_state`` holds only type and name (no
  ``state_details``, no ``data``; measured on 3.9.1), so the states themselves
  are read per run from ``/flow_run_states/``: both sources give the same rows,
  and the events spare the listing queries.

Look-ups: each flow run's flow (name) and deployment (name), 200 ids a call,
cached for the whole fetch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from trs_analytics.fetch._candidates import iter_candidates
from trs_analytics.fetch._lookups import RecordCache, read_states_per_run, resolve_deployments
from trs_analytics.fetch._pages import FLOW_RUN_EVENTS, PAGE_LIMIT, iter_event_pages, read_by_ids
from trs_analytics.fetch._records import (
    FLOW_RUN_ATTRIBUTES_SCHEMA,
    flow_run_attribute_row,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import datetime

    from trs_analytics.client import PrefectClient
    from trs_analytics.fetch._filters import StateFilters

__all__ = ["FlowRunAttributes", "iter_flow_run_events", "iter_flow_runs_per_run"]


class FlowRunAttributes:
    """Looks up flow runs' attribute rows, caching flows and deployments (bounded)."""

    def __init__(self, client: PrefectClient, *, cache_size: int = 100_000) -> None:
        self.url = client.api_url
        self.flows = RecordCache(client, "flows", cache_size=cache_size)
        self.deployments = RecordCache(client, "deployments", cache_size=cache_size)

    def rows(self, flow_runs: Sequence[dict[str, Any]]) -> pl.DataFrame:
        """One attribute row per flow run (``FLOW_RUN_ATTRIBUTES_SCHEMA``)."""
        self.flows.fill({fr.get("flow_id") or "" for fr in flow_runs})
        self.deployments.fill({fr.get("deployment_id") or "" for fr in flow_runs})
        rows = [
            flow_run_attribute_row(
                fr,
                self.flows.get(fr.get("flow_id") or ""),
                self.deployments.get(fr.get("deployment_id") or ""),
                url=self.url,
            )
            for fr in flow_runs
        ]
        return pl.DataFrame(rows, schema=FLOW_RUN_ATTRIBUTES_SCHEMA)


def iter_flow_runs_per_run(
    client: PrefectClient, filters: StateFilters, start: datetime, end: datetime
) -> Iterator[pl.DataFrame]:
    """Frames of the flow-run states in ``[start, end)``, read one flow run at a time."""
    deployment_ids = resolve_deployments(client, filters.deployments)
    body = filters.flow_run_body(deployment_ids)
    attributes = FlowRunAttributes(client)
    info = client.server_info()
    for page in iter_candidates(client, info, body, start, end, kind="flow_runs"):
        attrs = filters.apply(attributes.rows(page), deployment_ids)
        frame = read_states_per_run(client, attrs, start, end, key="flow_run_id")
        if frame.height:
            yield frame


def _event_flow_run_ids(
    client: PrefectClient, start: datetime, end: datetime, first: dict[str, Any] | None
) -> Iterator[list[str]]:
    """Pages of the ids of flow runs with a state-change event in ``[start, end]``, each once."""
    seen: set[str] = set()
    pages = iter_event_pages(client, since=start, until=end, first=first, prefix=FLOW_RUN_EVENTS)
    for page in pages:
        fresh = []
        for event in page:
            if not (event.get("payload") or {}).get("validated_state"):
                continue  # a heartbeat, not a state change
            resource = str((event.get("resource") or {}).get("prefect.resource.id") or "")
            flow_run_id = resource.removeprefix(FLOW_RUN_EVENTS)
            if resource.startswith(FLOW_RUN_EVENTS) and flow_run_id not in seen:
                seen.add(flow_run_id)
                fresh.append(flow_run_id)
        if fresh:
            yield fresh


def iter_flow_run_events(
    client: PrefectClient,
    filters: StateFilters,
    start: datetime,
    end: datetime,
    *,
    first: dict[str, Any] | None = None,
) -> Iterator[pl.DataFrame]:
    """Frames of the flow-run states in ``[start, end)``, the runs found from events.

    ``first`` is the first page of ``prefect.flow-run.*`` events over ``[start, end]``
    when the caller has read it (it proves the server has events); runs are then
    looked up and their states read 200 runs at a time.
    """
    deployment_ids = resolve_deployments(client, filters.deployments)
    filters.flow_run_body(deployment_ids)  # refuses task_names, as the states source does
    attributes = FlowRunAttributes(client)
    pending: list[str] = []

    def flush(ids: list[str]) -> pl.DataFrame:
        runs = list(read_by_ids(client, "flow_runs", ids))
        attrs = filters.apply(attributes.rows(runs), deployment_ids)
        return read_states_per_run(client, attrs, start, end, key="flow_run_id")

    for ids in _event_flow_run_ids(client, start, end, first):
        pending.extend(ids)
        while len(pending) >= PAGE_LIMIT:
            chunk, pending = pending[:PAGE_LIMIT], pending[PAGE_LIMIT:]
            if (frame := flush(chunk)).height:
                yield frame
    if pending and (frame := flush(pending)).height:
        yield frame

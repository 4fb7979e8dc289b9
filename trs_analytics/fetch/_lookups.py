"""Look-ups around the states: runs' attributes, their states per run, deployments by name.

:class:`Attributes` reads the flow runs and flows that task runs name, and
:class:`FlowRunAttributes` the flows and deployments that flow runs name, 200
ids a call, each in a bounded cache (:class:`RecordCache`) so a long fetch asks
for each once. :class:`RunReader` is the per-run half of every source, for
either :class:`~trs_analytics.schema.RunKind`: runs -> their attributes ->
filters -> one ``GET kind.states_path`` a run -> a states frame.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from trs_analytics.exceptions import ConfigurationError
from trs_analytics.fetch._pages import PAGE_LIMIT, read_by_ids
from trs_analytics.fetch._records import (
    ATTRIBUTES_SCHEMA,
    FLOW_RUN_ATTRIBUTES_SCHEMA,
    attribute_row,
    flow_run_attribute_row,
    state_row_from_api,
    states_frame,
)
from trs_analytics.schema import FLOW_RUNS, TASK_RUNS

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from trs_analytics.client import PrefectClient
    from trs_analytics.fetch._filters import StateFilters
    from trs_analytics.schema import RunKind

__all__ = [
    "Attributes",
    "FlowRunAttributes",
    "RecordCache",
    "RunReader",
    "read_states_per_run",
    "resolve_deployments",
    "task_run_from_event",
]


class RecordCache:
    """Records of one ``kind`` read by id (:func:`read_by_ids`), the oldest dropped past ``cache_size``.

    Examples:
        >>> class Client:  # answers ``/flows/filter`` with bare records
        ...     api_url = "http://127.0.0.1:4200/api"
        ...     def map(self, fn, items):
        ...         return [fn(item) for item in items]
        ...     def post(self, path, json_body):
        ...         return [{"id": i} for i in json_body["flows"]["id"]["any_"]]
        >>> cache = RecordCache(Client(), "flows", cache_size=2)
        >>> cache.fill({"f1", "f2", "f3", ""})  # sorted, empty id skipped, f1 dropped
        >>> list(cache.records), cache.get("f3"), cache.get("f1")
        (['f2', 'f3'], {'id': 'f3'}, None)
    """

    def __init__(self, client: PrefectClient, kind: str, *, cache_size: int = 100_000) -> None:
        self.client = client
        self.kind = kind
        self.cache_size = cache_size
        self.records: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def fill(self, ids: set[str]) -> None:
        """Read the ids not yet cached (sorted, empty ids skipped), then drop the oldest."""
        wanted = sorted(i for i in ids if i and i not in self.records)
        for record in read_by_ids(self.client, self.kind, wanted):
            self.records[record["id"]] = record
        while len(self.records) > self.cache_size:
            self.records.popitem(last=False)

    def get(self, record_id: str) -> dict[str, Any] | None:
        """The cached record with this id, or ``None``."""
        return self.records.get(record_id)


class Attributes:
    """Looks up task runs' attribute rows, caching flow runs and flows (bounded)."""

    def __init__(self, client: PrefectClient, *, cache_size: int = 100_000) -> None:
        self.url = client.api_url
        self.flow_runs = RecordCache(client, "flow_runs", cache_size=cache_size)
        self.flows = RecordCache(client, "flows", cache_size=cache_size)

    def rows(self, task_runs: Sequence[dict[str, Any]]) -> pl.DataFrame:
        """One attribute row per task run (``ATTRIBUTES_SCHEMA``)."""
        self.flow_runs.fill({tr.get("flow_run_id") or "" for tr in task_runs})
        flow_ids = {
            (self.flow_runs.get(tr.get("flow_run_id") or "") or {}).get("flow_id") or ""
            for tr in task_runs
        }
        self.flows.fill(flow_ids)
        rows = []
        for tr in task_runs:
            flow_run = self.flow_runs.get(tr.get("flow_run_id") or "")
            flow = self.flows.get((flow_run or {}).get("flow_id") or "")
            rows.append(attribute_row(tr, flow_run, flow, url=self.url))
        return pl.DataFrame(rows, schema=ATTRIBUTES_SCHEMA)


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


class _AttributeRows(Protocol):
    def rows(self, runs: Sequence[dict[str, Any]], /) -> pl.DataFrame: ...


#: Each kind's look-up of its runs' attributes: what a run names differs by kind.
_ATTRIBUTES: dict[str, type[Attributes] | type[FlowRunAttributes]] = {
    TASK_RUNS.name: Attributes,
    FLOW_RUNS.name: FlowRunAttributes,
}


def read_states_per_run(
    client: PrefectClient, kind: RunKind, attrs: pl.DataFrame, start: datetime, end: datetime
) -> pl.DataFrame:
    """The states in ``[start, end)`` of the runs in ``attrs``, one ``GET kind.states_path`` a run.

    Examples:
        >>> from datetime import UTC, datetime
        >>> from trs_analytics.fetch._records import ATTRIBUTES_SCHEMA
        >>> attrs = pl.DataFrame(schema=ATTRIBUTES_SCHEMA)
        >>> when = datetime(2026, 1, 1, tzinfo=UTC)
        >>> read_states_per_run(None, TASK_RUNS, attrs, when, when).height  # doctest: +SKIP
        0
    """
    url = f"{client.api_url}{kind.states_path}"

    def read(run_id: str) -> list[dict[str, Any]]:
        records = client.get(kind.states_path, params={kind.id_column: run_id})
        return [state_row_from_api(r, run_id=run_id, url=url, kind=kind) for r in records]

    ids = attrs[kind.id_column].to_list()
    rows = [r for states in client.map(read, ids) for r in states]
    frame = states_frame(rows, attrs.drop("_state_type"), url=url, kind=kind)
    return frame.filter(pl.col("timestamp").is_between(start, end, closed="left"))


@dataclass(frozen=True)
class RunReader:
    """Reads the states of ``kind``'s runs that pass ``filters``, one run at a time.

    Open it once per fetch (:meth:`open`): deployment names are resolved and the
    attribute caches kept for every batch.
    """

    client: PrefectClient
    kind: RunKind
    filters: StateFilters
    deployment_ids: list[str]
    attributes: _AttributeRows

    @classmethod
    def open(cls, client: PrefectClient, kind: RunKind, filters: StateFilters) -> RunReader:
        """A reader with the deployments resolved (a name that matches none is an error)."""
        filters.check_kind(kind)
        deployment_ids = resolve_deployments(client, filters.deployments)
        return cls(client, kind, filters, deployment_ids, _ATTRIBUTES[kind.name](client))

    def attributes_of(self, runs: Sequence[dict[str, Any]]) -> pl.DataFrame:
        """The attribute rows of the ``runs`` records that pass the filters."""
        return self.filters.apply(self.attributes.rows(runs), self.deployment_ids)

    def states_of(
        self, runs: Sequence[dict[str, Any]], start: datetime, end: datetime
    ) -> pl.DataFrame:
        """The states in ``[start, end)`` of the ``runs`` records that pass the filters."""
        return read_states_per_run(self.client, self.kind, self.attributes_of(runs), start, end)

    def states_of_ids(self, ids: Sequence[str], start: datetime, end: datetime) -> pl.DataFrame:
        """As :meth:`states_of`, for runs given by id (read 200 a call)."""
        return self.states_of(list(read_by_ids(self.client, self.kind.name, ids)), start, end)


def _looks_like_id(value: str) -> bool:
    return len(value) == 36 and value.count("-") == 4


def resolve_deployments(client: PrefectClient, deployments: Sequence[str]) -> list[str]:
    """Deployment names or ids -> ids; a name that matches nothing is an error.

    Examples:
        >>> resolve_deployments(None, [])  # type: ignore[arg-type]
        []
    """
    if not deployments:
        return []
    found = client.post(
        "/deployments/filter",
        json_body={"deployments": {"name": {"any_": list(deployments)}}, "limit": PAGE_LIMIT},
    )
    ids = {d["id"] for d in found} | {d for d in deployments if _looks_like_id(d)}
    if not ids:
        msg = (
            f"no deployment is named {list(deployments)} on {client.api_url}. "
            "Hint: list them with 'prefect deployment ls'; names look like 'flow-name/deployment-name' "
            "there, but the filter takes the deployment name alone, or its id."
        )
        raise ConfigurationError(msg)
    return sorted(ids)


def task_run_from_event(event: dict[str, Any]) -> dict[str, Any]:
    """A task run record rebuilt from an event, for runs the server no longer has."""
    found = (event.get("payload") or {}).get("task_run")
    snapshot = dict(found) if isinstance(found, dict) else {}
    snapshot["id"] = event["resource"]["prefect.resource.id"].removeprefix(TASK_RUNS.event_prefix)
    snapshot.setdefault("name", event["resource"].get("prefect.resource.name"))
    snapshot.setdefault("state_type", None)
    for related in event.get("related") or []:
        if related.get("prefect.resource.role") == "flow-run":
            snapshot["flow_run_id"] = related["prefect.resource.id"].removeprefix(
                FLOW_RUNS.event_prefix
            )
    return snapshot

"""Look-ups around the states: task runs' attributes (flow run, flow), deployments by name.

:class:`Attributes` reads the flow runs and flows that task runs name, 200 ids a
call, and keeps them in a bounded cache (:class:`RecordCache`, also used for flow
runs' look-ups) so a long fetch asks for each once.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from trs_analytics.exceptions import ConfigurationError
from trs_analytics.fetch._pages import PAGE_LIMIT, read_by_ids
from trs_analytics.fetch._records import (
    ATTRIBUTES_SCHEMA,
    attribute_row,
    flow_run_state_row,
    state_row_from_api,
    states_frame,
)
from trs_analytics.schema import FLOW_RUN_STATES_SCHEMA, STATES_SCHEMA

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from trs_analytics.client import PrefectClient

__all__ = [
    "Attributes",
    "RecordCache",
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


def read_states_per_run(
    client: PrefectClient,
    attrs: pl.DataFrame,
    start: datetime,
    end: datetime,
    *,
    key: Literal["task_run_id", "flow_run_id"],
) -> pl.DataFrame:
    """The states in ``[start, end)`` of the runs in ``attrs``, one GET a run.

    ``key="task_run_id"`` reads ``/task_run_states/`` into ``STATES_SCHEMA``;
    ``key="flow_run_id"`` reads ``/flow_run_states/`` into ``FLOW_RUN_STATES_SCHEMA``.

    Examples:
        >>> from datetime import UTC, datetime
        >>> from trs_analytics.fetch._records import ATTRIBUTES_SCHEMA
        >>> attrs = pl.DataFrame(schema={**ATTRIBUTES_SCHEMA, "_state_type": pl.String})
        >>> when = datetime(2026, 1, 1, tzinfo=UTC)
        >>> read_states_per_run(None, attrs, when, when, key="task_run_id").height  # doctest: +SKIP
        0
    """
    path = f"/{key.removesuffix('_id')}_states/"
    url = f"{client.api_url}{path}"
    row: Callable[..., dict[str, Any]]
    row, schema = (
        (state_row_from_api, STATES_SCHEMA)
        if key == "task_run_id"
        else (flow_run_state_row, FLOW_RUN_STATES_SCHEMA)
    )

    def read(run_id: str) -> list[dict[str, Any]]:
        records = client.get(path, params={key: run_id})
        return [row(r, url=url, **{key: run_id}) for r in records]

    ids = attrs[key].to_list()
    rows = [r for states in client.map(read, ids) for r in states]
    frame = states_frame(rows, attrs.drop("_state_type"), url=url, schema=schema, key=key)
    return frame.filter(pl.col("timestamp").is_between(start, end, closed="left"))


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
    snapshot["id"] = event["resource"]["prefect.resource.id"].removeprefix("prefect.task-run.")
    snapshot.setdefault("name", event["resource"].get("prefect.resource.name"))
    snapshot.setdefault("state_type", None)
    for related in event.get("related") or []:
        if related.get("prefect.resource.role") == "flow-run":
            snapshot["flow_run_id"] = related["prefect.resource.id"].removeprefix(
                "prefect.flow-run."
            )
    return snapshot

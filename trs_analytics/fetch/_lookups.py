"""Look-ups around the states: task runs' attributes (flow run, flow), deployments by name.

:class:`Attributes` reads the flow runs and flows that task runs name, 200 ids a
call, and keeps them in a bounded cache so a long fetch asks for each once.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import polars as pl

from trs_analytics.exceptions import ConfigurationError
from trs_analytics.fetch._pages import PAGE_LIMIT, read_by_ids
from trs_analytics.fetch._records import ATTRIBUTES_SCHEMA, attribute_row

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trs_analytics.client import PrefectClient

__all__ = ["Attributes", "resolve_deployments", "task_run_from_event"]


class Attributes:
    """Looks up task runs' attribute rows, caching flow runs and flows (bounded)."""

    def __init__(self, client: PrefectClient, *, cache_size: int = 100_000) -> None:
        self.client = client
        self.url = client.api_url
        self.cache_size = cache_size
        self.flow_runs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.flows: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def _fill(self, kind: str, cache: OrderedDict[str, dict[str, Any]], ids: set[str]) -> None:
        wanted = sorted(i for i in ids if i and i not in cache)
        for record in read_by_ids(self.client, kind, wanted):
            cache[record["id"]] = record
        while len(cache) > self.cache_size:
            cache.popitem(last=False)

    def rows(self, task_runs: Sequence[dict[str, Any]]) -> pl.DataFrame:
        """One attribute row per task run (``ATTRIBUTES_SCHEMA``)."""
        self._fill("flow_runs", self.flow_runs, {tr.get("flow_run_id") or "" for tr in task_runs})
        flow_ids = {
            self.flow_runs.get(tr.get("flow_run_id") or "", {}).get("flow_id") or ""
            for tr in task_runs
        }
        self._fill("flows", self.flows, flow_ids)
        rows = []
        for tr in task_runs:
            flow_run = self.flow_runs.get(tr.get("flow_run_id") or "")
            flow = self.flows.get((flow_run or {}).get("flow_id") or "")
            rows.append(attribute_row(tr, flow_run, flow, url=self.url))
        return pl.DataFrame(rows, schema=ATTRIBUTES_SCHEMA)


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
    snapshot = dict((event.get("payload") or {}).get("task_run") or {})
    snapshot["id"] = event["resource"]["prefect.resource.id"].removeprefix("prefect.task-run.")
    snapshot.setdefault("name", event["resource"].get("prefect.resource.name"))
    snapshot.setdefault("state_type", None)
    for related in event.get("related") or []:
        if related.get("prefect.resource.role") == "flow-run":
            snapshot["flow_run_id"] = related["prefect.resource.id"].removeprefix(
                "prefect.flow-run."
            )
    return snapshot

"""What a Prefect server can do, asked once per client.

* its version, from ``GET /admin/version`` (``"3.9.1"``, ``"2.20.16"``);
* which time fields its ``TaskRunFilter`` accepts, from its OpenAPI schema
  (``GET /openapi.json`` under the API URL): Prefect 2 has ``start_time`` only,
  3.x before 3.6.22 adds ``expected_start_time``, later ones ``end_time`` too.

A server that answers neither (Prefect Cloud hides its schema, a proxy may
block it) is taken to be a current 3.x server; a 422 then still says why.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

from trs_analytics.exceptions import PrefectAPIError

__all__ = ["ServerInfo", "probe_server"]

logger = logging.getLogger("trs_analytics.client")

#: The time fields of a current server's TaskRunFilter.
CURRENT_TIME_FIELDS = frozenset({"start_time", "expected_start_time", "end_time"})
_TIME_FIELDS = ("start_time", "expected_start_time", "end_time")


class _Asks(Protocol):
    """What the probe needs of a client (a :class:`PrefectClient`): no import of it, no cycle."""

    @property
    def api_url(self) -> str: ...

    def get(self, path: str) -> Any: ...


@dataclass(frozen=True)
class ServerInfo:
    """What a server can do, as far as this package cares.

    Attributes:
        version: the server's Prefect version, or None when it does not say.
        task_run_time_fields: the ``TaskRunFilter`` time fields it accepts.
        flow_run_time_fields: the ``FlowRunFilter`` time fields it accepts
            (Prefect 2.20: ``start_time`` and ``expected_start_time``; 3.x adds ``end_time``).

    Examples:
        >>> info = ServerInfo("2.20.16", frozenset({"start_time"}))
        >>> info.major, info.can_filter("start_time"), info.can_filter("expected_start_time")
        (2, True, False)
        >>> ServerInfo(None).can_filter("end_time")  # unknown: taken as a current server
        True
    """

    version: str | None
    task_run_time_fields: frozenset[str] = CURRENT_TIME_FIELDS
    flow_run_time_fields: frozenset[str] = CURRENT_TIME_FIELDS

    @property
    def major(self) -> int | None:
        """The major version, or None when unknown."""
        match = re.match(r"(\d+)\.", self.version or "")
        return int(match[1]) if match else None

    def can_filter(self, field: str, kind: str = "task_runs") -> bool:
        """Whether ``TaskRunFilter`` (``kind="flow_runs"``: ``FlowRunFilter``) accepts this time field.

        Examples:
            >>> ServerInfo("2.20.16", frozenset({"start_time"}),
            ...            frozenset({"start_time", "expected_start_time"})).can_filter(
            ...     "expected_start_time", "flow_runs")
            True
        """
        fields = self.flow_run_time_fields if kind == "flow_runs" else self.task_run_time_fields
        return field in fields


def _version(client: _Asks) -> str | None:
    try:
        answer = client.get("/admin/version")
    except PrefectAPIError as err:
        logger.debug("no server version: %s", err)
        return None
    return answer if isinstance(answer, str) else None


def _time_fields(client: _Asks) -> tuple[frozenset[str], frozenset[str]]:
    """The time fields of ``TaskRunFilter`` and of ``FlowRunFilter`` (a filter the
    schema does not describe is taken as a current server's)."""
    try:
        schema: Any = client.get("/openapi.json")
        schemas = schema["components"]["schemas"]
    except (PrefectAPIError, KeyError, TypeError) as err:
        logger.debug("no OpenAPI schema, assuming a current server: %s", err)
        return CURRENT_TIME_FIELDS, CURRENT_TIME_FIELDS

    def fields(name: str) -> frozenset[str]:
        try:
            properties = schemas[name]["properties"]
        except (KeyError, TypeError):
            return CURRENT_TIME_FIELDS
        return frozenset(f for f in _TIME_FIELDS if f in properties)

    return fields("TaskRunFilter"), fields("FlowRunFilter")


def probe_server(client: _Asks) -> ServerInfo:
    """Ask the server its version and filter fields (two GETs).

    Use :meth:`PrefectClient.server_info`, which asks once per client.
    """
    info = ServerInfo(_version(client), *_time_fields(client))
    logger.info(
        "server %s at %s: task runs filter on %s",
        info.version or "of unknown version",
        client.api_url,
        ", ".join(sorted(info.task_run_time_fields)),
    )
    return info

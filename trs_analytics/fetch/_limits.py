"""Concurrency limits: what the server allows to run at once, beside what ran.

* tag limits (v1): ``POST /concurrency_limits/filter``, on every line; each
  holds the ids of the task runs in its slots (``active_slots``).
* global limits (v2): ``POST /v2/concurrency_limits/filter``, on Prefect 3
  (2.20 answers it too). Since 3.4 a tag limit is stored as a global limit
  named ``tag:<tag>`` with the same id: it is listed once, as a tag limit.

A server without one of the endpoints (404/405) gives no rows for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from trs_analytics.exceptions import NotFoundError, PrefectAPIError, ResponseFormatError
from trs_analytics.fetch._api import open_client
from trs_analytics.fetch._pages import PAGE_LIMIT
from trs_analytics.schema import CONCURRENCY_LIMITS_SCHEMA

if TYPE_CHECKING:
    from trs_analytics.client import PrefectClient

__all__ = ["fetch_concurrency_limits", "limit_rows"]

_PAGES = 50  # 10,000 limits


def _read_all(client: PrefectClient, path: str) -> list[dict[str, Any]]:
    """Every record of one ``/filter`` endpoint (offset pages); [] if the server lacks it."""
    records: list[dict[str, Any]] = []
    for page in range(_PAGES):
        try:
            found = client.post(path, json_body={"limit": PAGE_LIMIT, "offset": page * PAGE_LIMIT})
        except NotFoundError:
            return []
        except PrefectAPIError as err:
            if err.status_code == 405:
                return []
            raise
        if not isinstance(found, list):
            url = f"{client.api_url}{path}"
            msg = f"{url} returned {type(found).__name__}, expected a JSON list of limits."
            raise ResponseFormatError(msg, url=url)
        records.extend(found)
        if len(found) < PAGE_LIMIT:
            break
    return records


def _slots(value: Any) -> int | None:
    if isinstance(value, list):
        return len(value)
    return int(value) if isinstance(value, int) else None


def limit_rows(
    tag_limits: list[dict[str, Any]], global_limits: list[dict[str, Any]]
) -> pl.DataFrame:
    """v1 tag limits and v2 global limits as one frame of ``CONCURRENCY_LIMITS_SCHEMA``.

    Examples:
        >>> frame = limit_rows(
        ...     [{"id": "a", "tag": "db", "concurrency_limit": 1, "active_slots": ["t1"]}],
        ...     [{"id": "a", "name": "tag:db", "limit": 1, "active_slots": 1, "active": True},
        ...      {"id": "b", "name": "gpu", "limit": 4, "active_slots": 0, "active": True}])
        >>> frame.select("kind", "name", "tag", "limit", "active_slots").rows()
        [('tag', 'tag:db', 'db', 1, 1), ('global', 'gpu', None, 4, 0)]
    """
    rows = [
        {
            "id": r.get("id"),
            "kind": "tag",
            "name": f"tag:{r.get('tag')}",
            "tag": r.get("tag"),
            "limit": r.get("concurrency_limit"),
            "active_slots": _slots(r.get("active_slots")),
            "active": True,
        }
        for r in tag_limits
    ]
    seen = {r["id"] for r in rows}
    rows += [
        {
            "id": r.get("id"),
            "kind": "global",
            "name": r.get("name"),
            "tag": None,
            "limit": r.get("limit"),
            "active_slots": _slots(r.get("active_slots")),
            "active": r.get("active"),
        }
        for r in global_limits
        if r.get("id") not in seen
    ]
    return pl.DataFrame(rows, schema=CONCURRENCY_LIMITS_SCHEMA)


def fetch_concurrency_limits(
    api_url: str | None = None, *, client: PrefectClient | None = None
) -> pl.DataFrame:
    """Read the server's tag (v1) and global (v2) concurrency limits into one frame.

    One row per limit in :data:`~trs_analytics.schema.CONCURRENCY_LIMITS_SCHEMA`:
    ``kind`` (``"tag"`` or ``"global"``), ``name``, ``tag``, ``limit``,
    ``active_slots`` (slots held when read), ``active``. The limits are read
    as they are now: the server keeps no history of them. A server without
    one of the two endpoints gives no rows for it, not an error.

    Args:
        api_url: the API URL; else ``PREFECT_API_URL`` or the active Prefect profile.
        client: a :class:`~trs_analytics.client.PrefectClient` to use instead.

    Raises:
        PrefectAPIError: the server refused or failed otherwise.
        TransportError: the server could not be reached.

    Examples:
        >>> import httpx, trs_analytics as ta
        >>> def server(request):
        ...     if request.url.path.endswith("/v2/concurrency_limits/filter"):
        ...         return httpx.Response(404, json={"detail": "Not Found"})
        ...     return httpx.Response(200, json=[{"id": "a", "tag": "db",
        ...                                       "concurrency_limit": 2, "active_slots": []}])
        >>> with ta.PrefectClient("http://127.0.0.1:4200/api",
        ...                       transport=httpx.MockTransport(server)) as client:
        ...     ta.fetch_concurrency_limits(client=client).select("kind", "tag", "limit").rows()
        [('tag', 'db', 2)]
    """
    with open_client(api_url, client) as opened:
        tag_limits = _read_all(opened, "/concurrency_limits/filter")
        global_limits = _read_all(opened, "/v2/concurrency_limits/filter")
    return limit_rows(tag_limits, global_limits)

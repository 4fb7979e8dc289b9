"""The Prefect REST calls the runner and the child process make: retried, authenticated."""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import httpx

__all__ = ["RETRY_STATUSES", "auth_headers", "call_api"]

#: Statuses a busy Prefect server answers while SQLite is locked; Prefect's client retries them.
RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


def call_api(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One REST call, retried like Prefect's own client on a busy server; raises on an error."""
    for attempt in range(6):
        response = client.request(method, path, **kwargs)
        if response.status_code not in RETRY_STATUSES or attempt == 5:
            break
        time.sleep(0.25 * 2**attempt)
    if response.status_code != 409 or method != "POST" or not path.startswith("/work_pools"):
        response.raise_for_status()
    return response


def auth_headers(auth_string: str | None) -> dict[str, str]:
    """The Authorization header of a server that demands basic auth (``user:password``)."""
    if auth_string is None:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(auth_string.encode()).decode("ascii")}

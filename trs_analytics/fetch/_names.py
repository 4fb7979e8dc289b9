"""Look-ups that check names given as filters against the server, before any fetch.

A filter whose name matches nothing on the server is almost always a typo; left
alone it fetches zero task runs, exits 0 and, in a dataset, is remembered. So
:func:`check_flow_names` turns it into an error that names the closest matches.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from trs_analytics.exceptions import ConfigurationError
from trs_analytics.fetch._pages import PAGE_LIMIT

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from trs_analytics.client import PrefectClient

__all__ = ["check_flow_names", "closest_names"]

_MAX_PAGES = 50  # 10,000 flows: enough to suggest a spelling


def closest_names(wanted: str, known: Iterable[str], *, n: int = 3) -> list[str]:
    """The names in ``known`` closest to ``wanted`` (difflib ratio >= 0.6), best first.

    Examples:
        >>> closest_names("truth-et1", ["truth-etl", "truth-report", "probe"])
        ['truth-etl', 'truth-report']
        >>> closest_names("zzz", ["truth-etl"])
        []
    """
    return difflib.get_close_matches(wanted, list(known), n=n, cutoff=0.6)


def _flow_names(client: PrefectClient) -> list[str]:
    names: list[str] = []
    for page in range(_MAX_PAGES):
        body: dict[str, Any] = {
            "sort": "NAME_ASC",
            "limit": PAGE_LIMIT,
            "offset": page * PAGE_LIMIT,
        }
        flows = client.post("/flows/filter", json_body=body)
        names.extend(str(f["name"]) for f in flows)
        if len(flows) < PAGE_LIMIT:
            break
    return names


def check_flow_names(client: PrefectClient, flow_names: Sequence[str]) -> None:
    """Raise when a flow name matches no flow on the server, naming the closest ones.

    One request when every name exists; when one does not, the server's flow
    names are read (200 a request) to suggest the closest.

    Raises:
        ConfigurationError: a name matches no flow.

    Examples:
        >>> import httpx
        >>> from trs_analytics.client import PrefectClient
        >>> server = httpx.MockTransport(lambda _: httpx.Response(200, json=[{"name": "etl"}]))
        >>> with PrefectClient("http://127.0.0.1:4200/api", transport=server) as client:
        ...     check_flow_names(client, ["et1"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: no flow is named 'et1' on http://127.0.0.1:4200/api; the closest: 'etl'. Hint: ...
    """
    if not flow_names:
        return
    body = {"flows": {"name": {"any_": list(flow_names)}}, "limit": PAGE_LIMIT}
    found = {str(f["name"]) for f in client.post("/flows/filter", json_body=body)}
    missing = [name for name in flow_names if name not in found]
    if not missing:
        return
    known = _flow_names(client)
    name = missing[0]
    close = closest_names(name, known)
    if close:
        nearby = "the closest: " + ", ".join(repr(c) for c in close)
    elif known:
        nearby = f"it has {len(known)} flows, such as " + ", ".join(repr(k) for k in known[:5])
    else:
        nearby = "it has no flows at all"
    msg = (
        f"no flow is named {name!r} on {client.api_url}; {nearby}. Hint: flow names are "
        "case-sensitive; list them with 'prefect flow ls', and fix --flow (flow_names=)."
    )
    raise ConfigurationError(msg)

"""Look-ups that check names given as filters against the server, before any fetch.

A filter whose name matches nothing on the server is almost always a typo; left
alone it fetches zero task runs, exits 0 and, in a dataset, is remembered. So
:func:`check_names` turns it into an error that names the closest matches.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from trs_analytics.exceptions import ConfigurationError
from trs_analytics.fetch._pages import PAGE_LIMIT

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from trs_analytics.client import PrefectClient

__all__ = ["check_names", "closest_names"]

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


#: What can be looked up: filter argument -> (option, kind, endpoint, body key, how to list).
_KINDS: dict[str, tuple[str, str, str, str, str]] = {
    "flow_names": ("--flow", "flow", "/flows/filter", "flows", "prefect flow ls"),
    "work_pools": (
        "--work-pool",
        "work pool",
        "/work_pools/filter",
        "work_pools",
        "prefect work-pool ls",
    ),
}


def _all_names(client: PrefectClient, path: str) -> list[str]:
    names: list[str] = []
    for page in range(_MAX_PAGES):
        body: dict[str, Any] = {"limit": PAGE_LIMIT, "offset": page * PAGE_LIMIT}
        found = client.post(path, json_body=body)
        names.extend(str(item["name"]) for item in found)
        if len(found) < PAGE_LIMIT:
            break
    return sorted(names)


def _check(client: PrefectClient, argument: str, wanted: Sequence[str]) -> None:
    if not wanted:
        return
    option, kind, path, key, listing = _KINDS[argument]
    body = {key: {"name": {"any_": list(wanted)}}, "limit": PAGE_LIMIT}
    found = {str(item["name"]) for item in client.post(path, json_body=body)}
    missing = [name for name in wanted if name not in found]
    if not missing:
        return
    known = _all_names(client, path)
    name = missing[0]
    close = closest_names(name, known)
    if close:
        nearby = "the closest: " + ", ".join(repr(c) for c in close)
    elif known:
        nearby = f"it has {len(known)}, such as " + ", ".join(repr(k) for k in known[:5])
    else:
        nearby = f"it has no {kind} at all"
    msg = (
        f"no {kind} is named {name!r} on {client.api_url}; {nearby}. Hint: names are "
        f"case-sensitive; list them with '{listing}', and fix {option} ({argument}=)."
    )
    raise ConfigurationError(msg)


def check_names(
    client: PrefectClient, *, flow_names: Sequence[str] = (), work_pools: Sequence[str] = ()
) -> None:
    """Raise when a flow or work pool name matches nothing on the server, naming the closest.

    One request per kind when every name exists; when one does not, that
    kind's names are read (200 a request) to suggest the closest. Deployment
    names are checked where they are resolved to ids; task names and tags have
    no server-side list to check against.

    Raises:
        ConfigurationError: a name matches no flow or work pool.

    Examples:
        >>> import httpx
        >>> from trs_analytics.client import PrefectClient
        >>> server = httpx.MockTransport(lambda _: httpx.Response(200, json=[{"name": "etl"}]))
        >>> with PrefectClient("http://127.0.0.1:4200/api", transport=server) as client:
        ...     check_names(client, flow_names=["et1"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: no flow is named 'et1' on http://127.0.0.1:4200/api; the closest: 'etl'. Hint: ...
    """
    _check(client, "flow_names", flow_names)
    _check(client, "work_pools", work_pools)

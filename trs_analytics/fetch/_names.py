"""Look-ups that check names given as filters against the server, before any fetch.

A filter whose name matches nothing on the server is almost always a typo; left
alone it fetches zero task runs, exits 0 and, in a dataset, is remembered. So
:func:`check_names` turns it into an error that names the closest matches.
Every fetch and export calls it (``fetch_states``, ``iter_states``, their
flow-run twins, ``export_states``), so the library and the CLI refuse alike.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, NoReturn

from trs_analytics.exceptions import ConfigurationError
from trs_analytics.fetch._pages import PAGE_LIMIT
from trs_analytics.fetch._records import derive_task_name
from trs_analytics.schema import TASK_RUNS

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from trs_analytics.client import PrefectClient
    from trs_analytics.fetch._filters import StateFilters

__all__ = ["check_filter_names", "check_names", "closest_names"]

_MAX_PAGES = 50  # 10,000 flows: enough to suggest a spelling
_TASK_PAGES = 5  # the task names of the latest 1,000 task runs: enough to suggest one


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
    "task_names": ("--task", "task", "/task_runs/filter", "task_runs", "prefect task-run ls"),
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
    _, _, path, key, _ = _KINDS[argument]
    body = {key: {"name": {"any_": list(wanted)}}, "limit": PAGE_LIMIT}
    found = {str(item["name"]) for item in client.post(path, json_body=body)}
    if missing := [name for name in wanted if name not in found]:
        _refuse(client, argument, missing[0], _all_names(client, path))


def _recent_task_names(client: PrefectClient) -> list[str]:
    """The task names (``task_name`` column) of the latest task runs, sorted."""
    names: set[str | None] = set()
    for page in range(_TASK_PAGES):
        body = {
            "sort": "EXPECTED_START_TIME_DESC",
            "limit": PAGE_LIMIT,
            "offset": page * PAGE_LIMIT,
        }
        found = client.post(TASK_RUNS.filter_path, json_body=body)
        names.update(
            derive_task_name(r.get("name"), r.get("task_key"), r.get("dynamic_key")) for r in found
        )
        if len(found) < PAGE_LIMIT:
            break
    return sorted(n for n in names if n)


def _check_tasks(client: PrefectClient, wanted: Sequence[str]) -> None:
    """A task has no list of its own on the server: a task name is known when a task
    run's name holds it (one request a name), or when a recent task run has it."""
    missing = []
    for name in wanted:
        body = {TASK_RUNS.name: {"name": {"like_": name}}, "limit": 1}
        if not client.post(TASK_RUNS.filter_path, json_body=body):
            missing.append(name)
    if not missing:
        return
    known = _recent_task_names(client)
    if unknown := [name for name in missing if name not in known]:
        _refuse(client, "task_names", unknown[0], known)


def _refuse(client: PrefectClient, argument: str, name: str, known: list[str]) -> NoReturn:
    option, kind, _, _, listing = _KINDS[argument]
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
    client: PrefectClient,
    *,
    flow_names: Sequence[str] = (),
    work_pools: Sequence[str] = (),
    task_names: Sequence[str] = (),
) -> None:
    """Raise when a flow, work pool or task name matches nothing on the server, naming the
    closest.

    One request per kind when every flow and work pool name exists; when one
    does not, that kind's names are read (200 a request) to suggest the closest.
    The server keeps no list of tasks: a task name is known when some task
    run's name holds it (one request a name; Prefect names a run
    ``<task>-<3 characters>``), else when one of the latest 1,000 task runs has it
    as its ``task_name`` (a run with a custom name), and the closest are
    suggested from those. Deployment names are checked where they are resolved
    to ids; tags have no server-side list to check against.

    Raises:
        ConfigurationError: a name matches no flow, work pool or task.

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
    if task_names:
        _check_tasks(client, task_names)


def check_filter_names(client: PrefectClient, filters: StateFilters) -> None:
    """:func:`check_names` for the flow, work pool and task names of ``filters``."""
    check_names(
        client,
        flow_names=filters.flow_names,
        work_pools=filters.work_pools,
        task_names=filters.task_names,
    )

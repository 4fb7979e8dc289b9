"""Paging generators over the Prefect API. Each yields pages (lists of JSON records).

Each run-paging function takes a :class:`~trs_analytics.schema.RunKind`: it pages
``kind.filter_path`` (``/task_runs/filter`` or ``/flow_runs/filter``).

* :func:`iter_run_pages` pages ``/task_runs/filter`` by keyset on
  ``expected_start_time`` (always set, even for runs that never started), not by
  offset: each page asks for runs at or after the last timestamp seen and drops
  the ids already yielded at that timestamp. Runs written meanwhile land on a
  later page instead of shifting rows between pages, so none is lost or
  repeated. A page whose runs all share one timestamp is drained by sorting that
  single timestamp by id with offsets.
* :func:`iter_offset_pages` pages ``/task_runs/filter`` by offset, for servers
  that cannot filter on ``expected_start_time`` (Prefect 2) and for the
  ``END_TIME_DESC`` walk; callers de-duplicate by id and stop when told.
* :func:`iter_event_pages` follows ``next_page`` through ``/events/filter``.
* :func:`read_by_ids` reads task runs / flow runs / flows 200 ids a call.

Every loop here is bounded by what the server said, never by trust alone: a
keyset page with a run before its cursor, or a full page that brings no run
not seen before (a server that ignores the cursor or the offset), raises; a
``next_page`` link seen before raises; and event pages stop with an error once
they hold more events than the server's ``total`` allows (:func:`event_bound`).
"""

from __future__ import annotations

import copy
import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from trs_analytics._time import api_iso, parse_iso
from trs_analytics.exceptions import ResponseFormatError
from trs_analytics.schema import TASK_RUNS

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from trs_analytics.client import PrefectClient
    from trs_analytics.schema import RunKind

__all__ = [
    "PAGE_LIMIT",
    "event_bound",
    "event_histogram",
    "event_page",
    "iter_event_pages",
    "iter_offset_pages",
    "iter_run_pages",
    "read_by_ids",
]

#: The server's cap on ``limit`` (``PREFECT_SERVER_API_DEFAULT_LIMIT``).
PAGE_LIMIT = 200
#: Events per page on a self-hosted server.
EVENT_PAGE_LIMIT = 50
_ONE_US = timedelta(microseconds=1)


def _runaway(url: str, what: str) -> ResponseFormatError:
    msg = (
        f"{url} {what}, so paging would never end; stopped. Hint: is a proxy or an "
        "incompatible server in between? Please report it with the server's version."
    )
    return ResponseFormatError(msg, url=url)


def _with_window(
    body: dict[str, Any], after: datetime | None, before: datetime | None, kind: RunKind
) -> dict[str, Any]:
    body = copy.deepcopy(body)
    window: dict[str, str] = {}
    if after is not None:
        window["after_"] = api_iso(after)
    if before is not None:
        window["before_"] = api_iso(before)
    body.setdefault(kind.name, {})["expected_start_time"] = window
    return body


def _check_page(page: Any, url: str) -> list[dict[str, Any]]:
    """A list of task (or flow) runs, each with an id and an expected start (else an error)."""
    if not isinstance(page, list):
        msg = f"{url} returned {type(page).__name__}, expected a JSON list of runs."
        raise ResponseFormatError(msg, url=url)
    for record in page:
        if (
            not isinstance(record, dict)
            or not record.get("id")
            or not record.get("expected_start_time")
        ):
            msg = (
                f"{url} returned a run without 'id' or 'expected_start_time' "
                f"({str(record)[:120]}). Hint: the server may be older than Prefect 2.10."
            )
            raise ResponseFormatError(msg, url=url)
        for field in ("id", "expected_start_time"):
            if not isinstance(record[field], str):
                msg = (
                    f"{url} returned a run whose {field!r} is a {type(record[field]).__name__}, "
                    "expected a string."
                )
                raise ResponseFormatError(msg, url=url)
        try:
            parse_iso(record["expected_start_time"])
        except ValueError as err:
            msg = f"{url} returned a run whose 'expected_start_time' is not ISO-8601 ({err})."
            raise ResponseFormatError(msg, url=url) from err
    return page


def iter_run_pages(
    client: PrefectClient,
    body: dict[str, Any],
    *,
    after: datetime | None = None,
    before: datetime | None = None,
    page_size: int = PAGE_LIMIT,
    kind: RunKind = TASK_RUNS,
) -> Iterator[list[dict[str, Any]]]:
    """Yield pages of ``kind``'s runs with ``after <= expected_start_time <= before``.

    Args:
        client: the API client.
        body: the filter body (``task_runs``, ``flows``, ``deployments``...);
            its ``<kind.name>.expected_start_time`` is set by this function.
        after: inclusive lower bound, or None.
        before: inclusive upper bound, or None.
        page_size: records per call, at most 200.
        kind: which runs: the endpoint, and the body key the window goes to.
    """
    url = f"{client.api_url}{kind.filter_path}"
    cursor, seen = after, set[str]()
    while True:
        request = _with_window(body, cursor, before, kind)
        page = _check_page(
            client.post(
                kind.filter_path,
                json_body={**request, "sort": "EXPECTED_START_TIME_ASC", "limit": page_size},
            ),
            url,
        )
        if cursor is not None and any(parse_iso(r["expected_start_time"]) < cursor for r in page):
            raise _runaway(url, f"answered runs expected before the cursor {api_iso(cursor)}")
        fresh = [r for r in page if r["id"] not in seen]
        if len(page) < page_size:
            if fresh:
                yield fresh
            return
        last = parse_iso(page[-1]["expected_start_time"])
        if cursor is not None and last == cursor:
            # A whole page at one timestamp: drain it by id, then step past it.
            yield from _drain_timestamp(client, body, last, seen, page_size, kind)
            seen = set()
            cursor = last + _ONE_US
            continue
        if fresh:
            yield fresh
        cursor = last
        seen = {r["id"] for r in page if parse_iso(r["expected_start_time"]) == last}


def _drain_timestamp(
    client: PrefectClient,
    body: dict[str, Any],
    at: datetime,
    seen: set[str],
    page_size: int,
    kind: RunKind,
) -> Iterator[list[dict[str, Any]]]:
    url = f"{client.api_url}{kind.filter_path}"
    request = _with_window(body, at, at, kind)
    offset = 0
    while True:
        page = _check_page(
            client.post(
                kind.filter_path,
                json_body={**request, "sort": "ID_DESC", "limit": page_size, "offset": offset},
            ),
            url,
        )
        fresh = [r for r in page if r["id"] not in seen]
        seen.update(r["id"] for r in page)
        if fresh:
            yield fresh
        if len(page) < page_size:
            return
        if not fresh:
            raise _runaway(url, f"answered offset {offset} with runs read before")
        offset += page_size


def iter_offset_pages(
    client: PrefectClient,
    body: dict[str, Any],
    *,
    sort: str,
    page_size: int = PAGE_LIMIT,
    kind: RunKind = TASK_RUNS,
) -> Iterator[list[dict[str, Any]]]:
    """Yield pages of ``kind.filter_path`` for ``body`` sorted by ``sort``, by offset.

    Offsets shift when runs are written meanwhile: a run may come twice (the
    caller drops repeats by id); with ``EXPECTED_START_TIME_ASC`` new runs land
    at the end, and with ``END_TIME_DESC`` runs that end meanwhile land at the
    front, so neither order skips a run that existed when paging began.
    """
    url = f"{client.api_url}{kind.filter_path}"
    offset, seen = 0, set[str]()
    while True:
        request = {**body, "sort": sort, "limit": page_size, "offset": offset}
        page = _check_page(client.post(kind.filter_path, json_body=request), url)
        if page:
            yield page
        if len(page) < page_size:
            return
        if seen.issuperset(r["id"] for r in page):
            raise _runaway(url, f"answered offset {offset} with runs read before")
        seen.update(r["id"] for r in page)
        offset += page_size


def event_page(
    client: PrefectClient,
    *,
    since: datetime,
    until: datetime,
    page_size: int = EVENT_PAGE_LIMIT,
    kind: RunKind = TASK_RUNS,
) -> dict[str, Any]:
    """The first page of ``kind``'s state events (``prefect.task-run.*``) with
    ``since <= occurred <= until``.

    The page holds ``events``, ``total`` (how many match) and ``next_page``.
    """
    body = {
        "filter": {
            "event": {"prefix": [kind.event_prefix]},
            "occurred": {"since": api_iso(since), "until": api_iso(until)},
            "order": "ASC",
        },
        "limit": page_size,
    }
    return _check_event_page(client.post("/events/filter", json_body=body), client.api_url)


def event_histogram(
    client: PrefectClient,
    *,
    since: datetime,
    until: datetime,
    buckets: int = 900,
    kind: RunKind = TASK_RUNS,
) -> list[tuple[datetime, int]]:
    """``(bucket start, kind's events in it)`` over ``[since, until]``, oldest first.

    One ``POST /events/count-by/time`` (Prefect 3; at most 1,000 buckets, aligned
    by the server to whole multiples of its interval).
    """
    seconds = max(1, math.ceil((until - since).total_seconds() / buckets))
    body = {
        "filter": {
            "event": {"prefix": [kind.event_prefix]},
            "occurred": {"since": api_iso(since), "until": api_iso(until)},
        },
        "time_unit": "second",
        "time_interval": seconds,
    }
    answer = client.post("/events/count-by/time", json_body=body)
    url = f"{client.api_url}/events/count-by/time"
    try:
        return [(parse_iso(b["start_time"]), int(b["count"])) for b in answer]
    except (TypeError, KeyError, ValueError) as err:
        msg = f"{url} returned {str(answer)[:120]!r}, expected a list of time buckets."
        raise ResponseFormatError(msg, url=url) from err


def _check_event_page(page: Any, api_url: str) -> dict[str, Any]:
    """A page of events: an object whose ``events`` is a list of objects (else an error)."""
    url = f"{api_url}/events/filter"
    if not isinstance(page, dict) or not isinstance(page.get("events"), list):
        msg = f"{url} returned {str(page)[:120]!r}, expected an object with 'events'."
        raise ResponseFormatError(msg, url=url)
    for event in page["events"]:
        if not isinstance(event, dict):
            msg = f"{url} returned an event that is {str(event)[:80]!r}, expected an object."
            raise ResponseFormatError(msg, url=url)
        for field, kind in (("payload", dict), ("resource", dict), ("related", list)):
            value = event.get(field)
            if value is not None and not isinstance(value, kind):
                msg = (
                    f"{url} returned an event whose {field!r} is {str(value)[:60]!r}, "
                    f"expected {'an object' if kind is dict else 'a list of objects'}."
                )
                raise ResponseFormatError(msg, url=url)
        if not all(isinstance(r, dict) for r in event.get("related") or []):
            msg = f"{url} returned an event whose 'related' holds something other than objects."
            raise ResponseFormatError(msg, url=url)
    return page


def iter_event_pages(
    client: PrefectClient,
    *,
    since: datetime,
    until: datetime,
    page_size: int = EVENT_PAGE_LIMIT,
    first: dict[str, Any] | None = None,
    kind: RunKind = TASK_RUNS,
) -> Iterator[list[dict[str, Any]]]:
    """Yield pages of ``kind``'s state events with ``since <= occurred <= until``, oldest first.

    ``first`` is the first page when the caller has read it already
    (:func:`event_page`). ``next_page`` is a full URL built by the server; only
    its path and query are used, re-based onto this client's API URL, so
    credentials never go to another host and a proxy in between keeps working.
    """
    page = first or event_page(client, since=since, until=until, page_size=page_size, kind=kind)
    url = f"{client.api_url}/events/filter"
    total = page.get("total")
    bound = event_bound(total, page_size)
    tokens: set[str] = set()
    events = pages = 0
    while True:
        events, pages = events + len(page["events"]), pages + 1
        if bound is not None and (events > bound or pages > bound + 2):
            raise _runaway(
                url,
                f"sent {events} events in {pages} pages although its first page "
                f"counted {total} (total)",
            )
        yield page["events"]
        next_page = page.get("next_page")
        if not next_page:
            return
        if not isinstance(next_page, str):
            msg = f"{url} returned a next_page that is a {type(next_page).__name__}, not a URL."
            raise ResponseFormatError(msg, url=url)
        if next_page in tokens:
            raise _runaway(url, "sent a next_page link it had sent before")
        tokens.add(next_page)
        page = _check_event_page(client.get(_rebase(client, next_page)), client.api_url)


def event_bound(total: Any, page_size: int = EVENT_PAGE_LIMIT) -> int | None:
    """The most events a ``next_page`` chain may bring when its first page said ``total``.

    Events that happen while the chain is read may join it, so the bound is
    twice the total plus ten pages; ``None`` when the server sent no total.

    Examples:
        >>> event_bound(860), event_bound(None), event_bound("860")
        (2220, None, None)
    """
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        return None
    return 2 * total + 10 * page_size


def _rebase(client: PrefectClient, next_page: str) -> str:
    parts = urlsplit(next_page)
    path = parts.path
    marker = path.find("/events/filter")
    if marker < 0:
        msg = f"the server's next_page link {next_page!r} does not point at /events/filter."
        raise ResponseFormatError(msg, url=client.api_url)
    query = f"?{parts.query}" if parts.query else ""
    return f"{client.settings.api_url}{path[marker:]}{query}"


def read_by_ids(
    client: PrefectClient,
    records: str,
    ids: Sequence[str],
    *,
    page_size: int = PAGE_LIMIT,
) -> Iterator[dict[str, Any]]:
    """Read ``records`` ("task_runs", "flow_runs", "flows", "deployments") by id, 200 a call."""
    chunks = [list(ids[i : i + page_size]) for i in range(0, len(ids), page_size)]
    url = f"{client.api_url}/{records}/filter"

    def read(chunk: list[str]) -> list[dict[str, Any]]:
        body = {records: {"id": {"any_": chunk}}, "limit": page_size}
        page = client.post(f"/{records}/filter", json_body=body)
        if not isinstance(page, list):
            msg = f"{url} returned {type(page).__name__}, expected a list."
            raise ResponseFormatError(msg, url=url)
        for record in page:
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                msg = f"{url} returned {str(record)[:80]!r}, expected an object with a string 'id'."
                raise ResponseFormatError(msg, url=url)
        return page

    for page in client.map(read, chunks):
        yield from page

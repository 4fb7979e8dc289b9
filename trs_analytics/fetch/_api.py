"""The public fetch API: ``fetch_states`` and its streaming form ``iter_states``.

The window applies to the **state timestamp**: a row is returned when
``since <= timestamp < until``. Both sources give the same rows for a window:

* ``"states"``: task runs that can have a state in the window are listed with
  ``/task_runs/filter`` (expected start in the window; or earlier and either
  ended after ``since`` or not finished yet), then each run's states are read
  with one ``GET /task_run_states/`` per run, ``concurrency`` at a time.
* ``"events"``: ``prefect.task-run.*`` events in the window, 50 a page, then the
  task runs, flow runs and flows they name, 200 ids a call. About 14x fewer
  requests, but only as far back as the server keeps events (7 days by default).
* ``"auto"``: events when they reach back to ``since``, states otherwise.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar, Unpack

import polars as pl

from trs_analytics._progress import Progress, Tally, progress_bar
from trs_analytics.client import PrefectClient
from trs_analytics.exceptions import ConfigurationError, RequestRejectedError
from trs_analytics.fetch._pages import (
    PAGE_LIMIT,
    iso,
    iter_event_pages,
    iter_task_run_pages,
    read_by_ids,
)
from trs_analytics.fetch._records import (
    ATTRIBUTES_SCHEMA,
    attribute_row,
    state_row_from_api,
    state_row_from_event,
    states_frame,
)
from trs_analytics.fetch._window import parse_when
from trs_analytics.schema import STATE_TYPES, TERMINAL_TYPES, empty_states

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from datetime import date

__all__ = [
    "FilterKwargs",
    "Source",
    "StateFilters",
    "fetch_states",
    "iter_states",
    "resolve_source",
]

logger = logging.getLogger("trs_analytics.fetch")

Source = Literal["auto", "states", "events"]
_SOURCES = ("auto", "states", "events")
T = TypeVar("T")
#: How far back a self-hosted server keeps events by default.
DEFAULT_EVENT_RETENTION = timedelta(days=7)
_RETENTION_MARGIN = timedelta(hours=1)
_NON_TERMINAL = [t for t in STATE_TYPES if t not in TERMINAL_TYPES]


def _tuple(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


class FilterKwargs(TypedDict, total=False):
    """The filter keywords of :func:`fetch_states`, :func:`iter_states` and exports.

    Each takes one value or several; see :class:`StateFilters` for their meaning.
    """

    flow_names: str | Iterable[str] | None
    deployments: str | Iterable[str] | None
    work_pools: str | Iterable[str] | None
    task_names: str | Iterable[str] | None
    tags: str | Iterable[str] | None
    state_types: str | Iterable[str] | None


@dataclass(frozen=True)
class StateFilters:
    """Which task runs to keep. Empty means no filter; several values mean any of them.

    ``tags`` is the exception: a run must carry every tag given.
    ``state_types`` filters on the task run's *current* state type.
    ``deployments`` takes deployment names or ids.

    Examples:
        >>> StateFilters.from_kwargs(flow_names="etl", tags=["prod", "nightly"])
        StateFilters(flow_names=('etl',), deployments=(), work_pools=(), task_names=(), tags=('prod', 'nightly'), state_types=())
    """

    flow_names: tuple[str, ...] = ()
    deployments: tuple[str, ...] = ()
    work_pools: tuple[str, ...] = ()
    task_names: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    state_types: tuple[str, ...] = ()

    @classmethod
    def from_kwargs(
        cls,
        *,
        flow_names: str | Iterable[str] | None = None,
        deployments: str | Iterable[str] | None = None,
        work_pools: str | Iterable[str] | None = None,
        task_names: str | Iterable[str] | None = None,
        tags: str | Iterable[str] | None = None,
        state_types: str | Iterable[str] | None = None,
    ) -> StateFilters:
        """Build filters from keyword arguments that take one value or many."""
        types = tuple(t.upper() for t in _tuple(state_types))
        unknown = [t for t in types if t not in STATE_TYPES]
        if unknown:
            msg = (
                f"state_types {unknown} are not Prefect state types. "
                f"Hint: use some of {list(STATE_TYPES)}."
            )
            raise ConfigurationError(msg)
        return cls(
            flow_names=_tuple(flow_names),
            deployments=_tuple(deployments),
            work_pools=_tuple(work_pools),
            task_names=_tuple(task_names),
            tags=_tuple(tags),
            state_types=types,
        )

    def as_kwargs(self) -> FilterKwargs:
        """These filters as keywords for :func:`fetch_states` or :func:`iter_states`.

        Examples:
            >>> StateFilters(tags=("prod",)).as_kwargs()["tags"]
            ('prod',)
        """
        return FilterKwargs(
            flow_names=self.flow_names,
            deployments=self.deployments,
            work_pools=self.work_pools,
            task_names=self.task_names,
            tags=self.tags,
            state_types=self.state_types,
        )

    def server_body(self, deployment_ids: Sequence[str]) -> dict[str, Any]:
        """The parts of a ``/task_runs/filter`` body the server can apply itself."""
        body: dict[str, Any] = {}
        task_runs: dict[str, Any] = {}
        if self.flow_names:
            body["flows"] = {"name": {"any_": list(self.flow_names)}}
        if self.deployments:
            body["deployments"] = {"id": {"any_": list(deployment_ids)}}
        if self.tags:
            task_runs["tags"] = {"all_": list(self.tags)}
        if self.state_types:
            task_runs["state"] = {"type": {"any_": list(self.state_types)}}
        if task_runs:
            body["task_runs"] = task_runs
        return body

    def apply(self, attributes: pl.DataFrame, deployment_ids: Sequence[str]) -> pl.DataFrame:
        """Keep the attribute rows (one per task run) that pass every filter."""
        predicates = []
        if self.flow_names:
            predicates.append(pl.col("flow_name").is_in(self.flow_names))
        if self.deployments:
            predicates.append(pl.col("deployment_id").is_in(list(deployment_ids)))
        if self.work_pools:
            predicates.append(pl.col("work_pool_name").is_in(self.work_pools))
        if self.task_names:
            predicates.append(pl.col("task_name").is_in(self.task_names))
        if self.state_types:
            predicates.append(pl.col("_state_type").is_in(self.state_types))
        predicates.extend(pl.col("tags").list.contains(tag) for tag in self.tags)
        return attributes.filter(*predicates) if predicates else attributes


class _Attributes:
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


def _resolve_deployments(client: PrefectClient, deployments: Sequence[str]) -> list[str]:
    if not deployments:
        return []
    found = client.post(
        "/deployments/filter",
        json_body={"deployments": {"name": {"any_": list(deployments)}}, "limit": PAGE_LIMIT},
    )
    ids = {d["id"] for d in found} | {d for d in deployments if len(d) == 36 and d.count("-") == 4}
    if not ids:
        msg = (
            f"no deployment is named {list(deployments)} on {client.api_url}. "
            "Hint: list them with 'prefect deployment ls'; names look like 'flow-name/deployment-name' "
            "there, but the filter takes the deployment name alone, or its id."
        )
        raise ConfigurationError(msg)
    return sorted(ids)


def resolve_source(
    client: PrefectClient,
    since: datetime,
    *,
    event_retention: timedelta = DEFAULT_EVENT_RETENTION,
    now: datetime | None = None,
) -> Literal["states", "events"]:
    """Choose the source for ``source="auto"``.

    Events are used when the window starts inside the server's event retention:
    either an event older than ``since`` still exists (so trimming has not
    reached ``since``), or ``since`` is younger than ``event_retention`` (default
    7 days, the self-hosted default ``PREFECT_EVENTS_RETENTION_PERIOD``).
    Otherwise per-task-run states are read.
    """
    now = now or datetime.now(UTC)
    if since >= now - event_retention + _RETENTION_MARGIN:
        return "events"
    try:
        older = client.post(
            "/events/filter",
            json_body={
                "filter": {
                    "event": {"prefix": ["prefect.task-run."]},
                    "occurred": {
                        "since": iso(since - timedelta(days=3650)),
                        "until": iso(since - _RETENTION_MARGIN),
                    },
                    "order": "ASC",
                },
                "limit": 1,
            },
        )
    except RequestRejectedError:  # Prefect Cloud limits how far back events can be asked
        return "states"
    return "events" if older.get("events") else "states"


def _window(
    since: datetime | date | str, until: datetime | date | str | None
) -> tuple[datetime, datetime]:
    start = parse_when(since)
    end = parse_when(until) if until is not None else datetime.now(UTC)
    if end <= start:
        msg = (
            f"the window is empty: since={iso(start)} is not before until={iso(end)}. "
            "Hint: since is the older bound."
        )
        raise ConfigurationError(msg)
    return start, end


def _in_window(frame: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    return frame.filter(pl.col("timestamp").is_between(start, end, closed="left"))


def _per_run_candidates(
    client: PrefectClient, body: dict[str, Any], start: datetime, end: datetime
) -> Iterator[list[dict[str, Any]]]:
    seen: set[str] = set()

    def fresh(pages: Iterator[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
        for page in pages:
            new = [r for r in page if r["id"] not in seen]
            seen.update(r["id"] for r in new)
            if new:
                yield new

    # expected to start inside the window (this includes runs that never started)
    yield from fresh(iter_task_run_pages(client, body, after=start, before=end))
    before = start - timedelta(microseconds=1)
    # expected earlier, still not finished
    unfinished = {
        **body,
        "task_runs": {**body.get("task_runs", {}), "state": {"type": {"any_": _NON_TERMINAL}}},
    }
    yield from fresh(iter_task_run_pages(client, unfinished, before=before))
    # expected earlier, finished inside or after the window
    ended = {**body, "task_runs": {**body.get("task_runs", {}), "end_time": {"after_": iso(start)}}}
    try:
        yield from fresh(iter_task_run_pages(client, ended, before=before))
    except RequestRejectedError:  # servers < 3.6.22 have no end_time filter
        logger.warning(
            "this server cannot filter task runs by end_time; runs expected before %s "
            "that finished inside the window are read from start_time instead",
            iso(start),
        )
        started = {
            **body,
            "task_runs": {
                **body.get("task_runs", {}),
                "start_time": {"after_": iso(start - timedelta(days=1))},
            },
        }
        yield from fresh(iter_task_run_pages(client, started, before=before))


def _iter_per_run(
    client: PrefectClient, filters: StateFilters, start: datetime, end: datetime
) -> Iterator[pl.DataFrame]:
    deployment_ids = _resolve_deployments(client, filters.deployments)
    body = filters.server_body(deployment_ids)
    attributes = _Attributes(client)
    url = f"{client.api_url}/task_run_states/"

    def read_states(task_run_id: str) -> list[dict[str, Any]]:
        records = client.get("/task_run_states/", params={"task_run_id": task_run_id})
        return [state_row_from_api(r, task_run_id=task_run_id, url=url) for r in records]

    for page in _per_run_candidates(client, body, start, end):
        attrs = filters.apply(attributes.rows(page), deployment_ids)
        ids = attrs["task_run_id"].to_list()
        rows = [row for states in client.map(read_states, ids) for row in states]
        frame = _in_window(states_frame(rows, attrs.drop("_state_type"), url=url), start, end)
        if frame.height:
            yield frame


def _event_fallback(event: dict[str, Any]) -> dict[str, Any]:
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


_DONE = object()


def _prefetch(items: Iterator[T], *, depth: int) -> Iterator[T]:
    """Iterate ``items`` on a background thread, at most ``depth`` items ahead.

    Errors are re-raised in the consumer; closing the generator stops the thread.
    """
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(_DONE)
        except BaseException as err:  # handed to the consumer, raised there
            buffer.put(err)

    thread = threading.Thread(target=produce, name="trs-prefetch", daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _iter_events(
    client: PrefectClient,
    filters: StateFilters,
    start: datetime,
    end: datetime,
    batch_size: int,
) -> Iterator[pl.DataFrame]:
    """Page events on one thread while the previous batch's lookups run on another."""
    deployment_ids = _resolve_deployments(client, filters.deployments)
    attributes = _Attributes(client)
    url = f"{client.api_url}/events/filter"

    def finish(rows: list[dict[str, Any]], latest: dict[str, dict[str, Any]]) -> pl.DataFrame:
        found = {tr["id"]: tr for tr in read_by_ids(client, "task_runs", sorted(latest))}
        runs = [found.get(i) or _event_fallback(latest[i]) for i in sorted(latest)]
        attrs = filters.apply(attributes.rows(runs), deployment_ids)
        frame = states_frame(rows, attrs.drop("_state_type"), url=url)
        keep = frame.filter(pl.col("task_run_id").is_in(attrs["task_run_id"].implode()))
        return _in_window(keep, start, end)

    def batches() -> Iterator[tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]]:
        rows: list[dict[str, Any]] = []
        latest: dict[str, dict[str, Any]] = {}
        for page in _prefetch(iter_event_pages(client, since=start, until=end), depth=8):
            for event in page:
                row = state_row_from_event(event, url=url)
                if row is not None:
                    rows.append(row)
                    latest[row["task_run_id"]] = event
            if len(rows) >= batch_size:
                yield rows, latest
                rows, latest = [], {}
        if rows:
            yield rows, latest

    # One lookup in flight while paging goes on; batches stay in order.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="trs-lookup") as pool:
        pending: Future[pl.DataFrame] | None = None
        try:
            for rows, latest in batches():
                submitted = pool.submit(finish, rows, latest)
                if pending is not None and (frame := pending.result()).height:
                    yield frame
                pending = submitted
            if pending is not None and (frame := pending.result()).height:
                yield frame
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def iter_states(
    api_url: str | None = None,
    *,
    since: datetime | date | str,
    until: datetime | date | str | None = None,
    source: Source = "auto",
    client: PrefectClient | None = None,
    batch_size: int = 5_000,
    on_batch: Callable[[pl.DataFrame], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    **filters: Unpack[FilterKwargs],
) -> Iterator[pl.DataFrame]:
    """Stream task-run states as frames of the contract's schema, batch by batch.

    The streaming form of :func:`fetch_states`: JSON is turned into a typed
    frame every page of task runs (``"states"``) or every ``batch_size`` events
    (``"events"``), so a million task runs never sit in memory as JSON. A
    state may appear in two batches only if the server rewrote it mid-fetch;
    de-duplicate by ``id`` when you collect batches yourself.

    Args: as :func:`fetch_states`, plus
        batch_size: events per batch for the events source.
        on_batch: called with each batch before it is yielded.
        on_progress: called with a :class:`~trs_analytics._progress.Progress` (task
            runs, states, requests so far) after each batch: progress bars.

    Examples:
        >>> frames = iter_states("http://127.0.0.1:4200/api", since="1h")  # doctest: +SKIP
        >>> sum(f.height for f in frames)  # doctest: +SKIP
        1234

        Arguments are checked when the first batch is asked for:

        >>> next(iter_states("http://127.0.0.1:4200/api", since="1h", source="cache"))
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: source must be one of ['auto', 'states', 'events'], got 'cache'.
    """
    if source not in _SOURCES:
        msg = f"source must be one of {list(_SOURCES)}, got {source!r}."
        raise ConfigurationError(msg)
    if client is not None and api_url is not None:
        msg = "pass api_url or client, not both. Hint: the client already knows its URL."
        raise ConfigurationError(msg)
    chosen_filters = StateFilters.from_kwargs(**filters)
    start, end = _window(since, until)
    with ExitStack() as stack:
        if client is None:
            client = stack.enter_context(PrefectClient(api_url))
        chosen = resolve_source(client, start) if source == "auto" else source
        logger.info(
            "reading states %s .. %s from %s via %s", iso(start), iso(end), client.api_url, chosen
        )
        batches = (
            _iter_events(client, chosen_filters, start, end, batch_size)
            if chosen == "events"
            else _iter_per_run(client, chosen_filters, start, end)
        )
        tally = Tally(since=start, until=end, source=chosen, requests=lambda: client.stats.requests)
        for batch in batches:
            if on_batch is not None:
                on_batch(batch)
            if on_progress is not None:
                on_progress(tally.add(batch))
            yield batch


def fetch_states(
    api_url: str | None = None,
    *,
    since: datetime | date | str,
    until: datetime | date | str | None = None,
    source: Source = "auto",
    client: PrefectClient | None = None,
    progress: bool = True,
    **filters: Unpack[FilterKwargs],
) -> pl.DataFrame:
    """Fetch every task-run state with ``since <= timestamp < until`` into one frame.

    One row per state, in the schema :data:`trs_analytics.STATES_SCHEMA`,
    sorted by ``timestamp`` then ``id``, each state id once. The window applies
    to the state's own timestamp (when the transition happened), in UTC.

    Args:
        api_url: the API URL; else ``PREFECT_API_URL`` or the active Prefect profile.
        since: start of the window (inclusive): an aware datetime, an ISO-8601
            string with a zone (``2026-01-01T00:00:00Z``), a date, or an age (``7d``).
        until: end of the window (exclusive); default now.
        source: ``"events"`` (fewest requests, within event retention),
            ``"states"`` (one request per task run, any age) or ``"auto"``.
        client: a :class:`~trs_analytics.client.PrefectClient` to use instead of
            making one from ``api_url`` (its retries, budget and concurrency apply).
        progress: draw a progress bar in a notebook or a terminal (never in a
            non-interactive run); ``False`` turns it off.
        **filters: any of (see :class:`FilterKwargs`), each one value or several:
        flow_names: keep runs of these flows.
        deployments: keep runs of these deployments (names or ids).
        work_pools: keep runs whose flow run used these work pools.
        task_names: keep these tasks (the ``task_name`` column).
        tags: keep runs that carry all of these tags.
        state_types: keep runs whose current state has one of these types.

    Raises:
        ConfigurationError: no URL, a naive or unreadable time, an empty window.
        PrefectAPIError: the server refused or failed (see its subclasses).
        TransportError: the server could not be reached.

    Examples:
        >>> import trs_analytics as ta
        >>> states = ta.fetch_states("http://127.0.0.1:4200/api", since="1d")  # doctest: +SKIP
        >>> states.select("task_name", "type", "timestamp").head(2)  # doctest: +SKIP

        Times without a zone are refused rather than guessed:

        >>> ta.fetch_states("http://127.0.0.1:4200/api", since="2026-01-01T00:00:00")
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: time '2026-01-01T00:00:00' has no time zone. Hint: write it in UTC with a Z, such as 2026-01-01T00:00:00Z, or give an offset such as +02:00.
    """
    with progress_bar(progress) as on_progress:
        frames = list(
            iter_states(
                api_url,
                since=since,
                until=until,
                source=source,
                client=client,
                on_progress=on_progress,
                **filters,
            )
        )
    if not frames:
        return empty_states()
    return (
        pl.concat(frames, how="vertical")
        .unique(subset="id", keep="last", maintain_order=True)
        .sort("timestamp", "id")
    )

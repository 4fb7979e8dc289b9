"""The two sources of state rows, and which of them ``source="auto"`` reads a window from.

Every function here takes a :class:`~trs_analytics.schema.RunKind`: task runs
or flow runs are read by the same path.

* per run (``"states"``): list the runs that can have a state in the
  window (:mod:`~trs_analytics.fetch._candidates`), then one
  ``GET kind.states_path`` (``/task_run_states/``) per run, ``concurrency`` at a
  time. Any age.
* events (``"events"``): ``prefect.task-run.*`` events, 50 a page, then the
  task runs, flow runs and flows they name, 200 ids a call. About 14x fewer
  requests, but only within event retention, and only on Prefect 3. A long
  window is cut into time slices paged concurrently, each with its own
  ``next_page`` chain. A kind whose events carry no whole state (flow runs:
  ``prefect.flow-run.*`` events hold only the state's type and name, measured
  on 3.9.1) finds its runs from events and reads their states per run, so
  both sources give the same rows and the events spare the listing queries.
* :func:`plan_sources` splits a window for ``"auto"``: events for the part
  that events still cover, per-run states for the older part, joined at one
  instant, so no state is read twice and none is missed.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from trs_analytics._time import api_iso, parse_iso
from trs_analytics.client import ordered_map, prefetch
from trs_analytics.exceptions import (
    AuthenticationError,
    NotFoundError,
    PrefectAPIError,
    RequestRejectedError,
)
from trs_analytics.fetch._candidates import iter_candidates
from trs_analytics.fetch._lookups import RunReader, task_run_from_event
from trs_analytics.fetch._pages import (
    PAGE_LIMIT,
    event_histogram,
    event_page,
    iter_event_pages,
    read_by_ids,
)
from trs_analytics.fetch._records import state_row_from_event, states_frame
from trs_analytics.schema import FLOW_RUNS, TASK_RUNS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trs_analytics.client import PrefectClient
    from trs_analytics.fetch._filters import StateFilters
    from trs_analytics.schema import RunKind

__all__ = [
    "DEFAULT_EVENT_RETENTION",
    "SLICE_EVENTS",
    "Segment",
    "SourcePlan",
    "iter_events",
    "iter_per_run",
    "plan_sources",
]

logger = logging.getLogger("trs_analytics.fetch")

#: How far back a self-hosted server keeps events by default.
DEFAULT_EVENT_RETENTION = timedelta(days=7)
#: A window with more events than twice this is paged in slices of about this many.
SLICE_EVENTS = 2_500
#: Pages each slice reads ahead of its consumer.
SLICE_DEPTH = 16
_MAX_SLICES = 256
_RETENTION_MARGIN = timedelta(hours=1)
#: The most recent part of a window, read from the per-run states even where events serve
#: the rest: the event store lags the per-run states by seconds (Prefect 3.9.1, measured
#: right after a workload: 739 of its 744 states had their events).
FRESH_SPAN = timedelta(minutes=2)
#: How far around a window subflow runs' events are read to find their parent task runs.
_PARENT_MARGIN = timedelta(minutes=1)
_ONE_US = timedelta(microseconds=1)
_FOREVER = timedelta(days=3650)
#: Answers that mean "this server will not give you events" (not: "you are not allowed").
_REFUSALS = (NotFoundError, RequestRejectedError)


def _in_window(frame: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    return frame.filter(pl.col("timestamp").is_between(start, end, closed="left"))


def _refused(err: PrefectAPIError) -> bool:
    return isinstance(err, _REFUSALS) or (
        isinstance(err, AuthenticationError) and err.status_code == 403
    )


# -- per run -----------------------------------------------------------------------------


def iter_per_run(
    client: PrefectClient, kind: RunKind, filters: StateFilters, start: datetime, end: datetime
) -> Iterator[pl.DataFrame]:
    """Frames of ``kind``'s states in ``[start, end)``, read one run at a time."""
    reader = RunReader.open(client, kind, filters)
    body = filters.server_body(kind, reader.deployment_ids)
    for page in iter_candidates(client, client.server_info(), body, start, end, kind):
        frame = reader.states_of(page, start, end)
        if frame.height:
            yield frame


def _event_run_ids(
    client: PrefectClient,
    kind: RunKind,
    start: datetime,
    end: datetime,
    first: dict[str, Any] | None,
) -> Iterator[tuple[list[str], int]]:
    """Per event page: the ids of ``kind``'s runs with a first state change there, and how
    many state changes the page held."""
    seen: set[str] = set()
    for page in iter_event_pages(client, since=start, until=end, first=first, kind=kind):
        fresh, changes = [], 0
        for event in page:
            if not (event.get("payload") or {}).get("validated_state"):
                continue  # a heartbeat, not a state change
            changes += 1
            resource = str((event.get("resource") or {}).get("prefect.resource.id") or "")
            run_id = resource.removeprefix(kind.event_prefix)
            if resource.startswith(kind.event_prefix) and run_id not in seen:
                seen.add(run_id)
                fresh.append(run_id)
        yield fresh, changes


def _runs_in_events(
    reader: RunReader, start: datetime, end: datetime, batch_size: int, first: dict[str, Any]
) -> Iterator[pl.DataFrame]:
    """The events name the runs, whose states are read per run: a batch is cut every 200
    runs (a look-up call) or ``batch_size`` state changes."""
    pending: list[str] = []
    changes = 0
    for ids, count in _event_run_ids(reader.client, reader.kind, start, end, first):
        pending.extend(ids)
        changes += count
        while len(pending) >= PAGE_LIMIT or (pending and changes >= batch_size):
            chunk, pending = pending[:PAGE_LIMIT], pending[PAGE_LIMIT:]
            changes = 0
            if (frame := reader.states_of_ids(chunk, start, end)).height:
                yield frame
    if pending and (frame := reader.states_of_ids(pending, start, end)).height:
        yield frame


# -- events ------------------------------------------------------------------------------


def _slices(start: datetime, end: datetime, count: int) -> list[tuple[datetime, datetime]]:
    """``count`` inclusive bounds that cover ``[start, end]`` without overlapping.

    Examples:
        >>> t = datetime(2026, 1, 1, tzinfo=UTC)
        >>> [(a.minute, b.isoformat()[11:]) for a, b in _slices(t, t + timedelta(minutes=2), 2)]
        [(0, '00:00:59.999999+00:00'), (1, '00:02:00+00:00')]
    """
    step = (end - start) / count
    cuts = [start + step * i for i in range(count)] + [end]
    return [
        (cuts[i], cuts[i + 1] - _ONE_US if i < count - 1 else end)
        for i in range(count)
        if cuts[i] < cuts[i + 1] or i == count - 1
    ]


def _event_pages(
    client: PrefectClient, start: datetime, end: datetime, first: dict[str, Any]
) -> Iterator[list[dict[str, Any]]]:
    """Every event page of ``[start, end]`` in time order, sliced when the window is large."""
    total = first.get("total")
    if not isinstance(total, int) or total <= 2 * SLICE_EVENTS or client.concurrency == 1:
        yield from prefetch(iter_event_pages(client, since=start, until=end, first=first), depth=8)
        return
    count = min(_MAX_SLICES, math.ceil(total / SLICE_EVENTS))
    events = first.get("events") or [{}]
    oldest = events[0].get("occurred")
    lo = max(start, parse_iso(oldest)) if oldest else start
    slices = _slices_by_count(client, start, lo, end, count)
    logger.info(
        "paging %d events in %d time slices, %d at a time", total, len(slices), client.concurrency
    )
    yield from _sliced_pages(client, slices, client.concurrency)


def _slices_by_count(
    client: PrefectClient, start: datetime, oldest: datetime, end: datetime, count: int
) -> list[tuple[datetime, datetime]]:
    """About ``count`` slices of ``[start, end]`` with about as many events each, cut at
    the server's histogram buckets over ``[oldest event, end]``; equal times when the
    server has no histogram."""
    try:
        histogram = event_histogram(client, since=oldest, until=end)
    except PrefectAPIError as err:
        logger.info("no event histogram (%s): slicing the window into equal times", err)
        return _slices(start, end, count)
    total = sum(n for _, n in histogram)
    cuts, running = [start], 0
    for bucket_start, n in histogram:
        if running >= total * len(cuts) / count and start < bucket_start < end:
            cuts.append(bucket_start)
        running += n
    cuts.append(end)
    return [
        (cuts[i], cuts[i + 1] - _ONE_US if i < len(cuts) - 2 else end)
        for i in range(len(cuts) - 1)
        if cuts[i] < cuts[i + 1]
    ]


def _sliced_pages(
    client: PrefectClient, slices: list[tuple[datetime, datetime]], ahead: int
) -> Iterator[list[dict[str, Any]]]:
    """The pages of each slice in turn, while the next ``ahead - 1`` slices are read ahead.

    Each slice reads its ``next_page`` chain on its own thread into a queue of
    :data:`SLICE_DEPTH` pages, so memory stays bounded however unevenly the
    events fall into the slices.
    """
    pending = iter(slices)
    active: deque[Iterator[list[dict[str, Any]]]] = deque()

    def begin() -> None:
        if (bounds := next(pending, None)) is not None:
            pages = iter_event_pages(client, since=bounds[0], until=bounds[1])
            active.append(prefetch(pages, depth=SLICE_DEPTH, start=True))

    try:
        for _ in range(ahead):
            begin()
        while active:
            yield from active[0]
            active.popleft()
            begin()
    finally:
        for pages in active:
            pages.close()  # type: ignore[attr-defined]


def iter_events(
    client: PrefectClient,
    kind: RunKind,
    filters: StateFilters,
    start: datetime,
    end: datetime,
    batch_size: int,
    *,
    first: dict[str, Any] | None = None,
) -> Iterator[pl.DataFrame]:
    """Frames of ``kind``'s states in ``[start, end)``, read through its events.

    Task-run events carry whole states: the rows are read from the events
    themselves. Flow-run events carry only a state's type and name
    (``kind.events_hold_states`` is false): they name the runs, whose states are
    then read per run. ``first`` is the first event page when the caller has read
    it (it proves the server has events).
    """
    reader = RunReader.open(client, kind, filters)
    first = first or event_page(client, since=start, until=end, kind=kind)
    read = _states_in_events if kind.events_hold_states else _runs_in_events
    yield from read(reader, start, end, batch_size, first)


def _states_in_events(
    reader: RunReader, start: datetime, end: datetime, batch_size: int, first: dict[str, Any]
) -> Iterator[pl.DataFrame]:
    """Task-run states read from their events; pages are read ahead while the previous
    batch's look-ups run, and batches stay in order. Subflows' parent task runs, which
    send no events, are read per run at the end."""
    client = reader.client
    url = f"{client.api_url}/events/filter"

    def finish(batch: tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]) -> pl.DataFrame:
        rows, latest = batch
        found = {tr["id"]: tr for tr in read_by_ids(client, TASK_RUNS.name, sorted(latest))}
        runs = [found.get(i) or task_run_from_event(latest[i]) for i in sorted(latest)]
        attrs = reader.attributes_of(runs)
        frame = states_frame(rows, attrs.drop("_state_type"), url=url)
        keep = frame.filter(pl.col("task_run_id").is_in(attrs["task_run_id"].implode()))
        return _in_window(keep, start, end)

    seen: set[str] = set()

    def batches() -> Iterator[tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]]:
        rows: list[dict[str, Any]] = []
        latest: dict[str, dict[str, Any]] = {}
        for page in _event_pages(client, start, end, first):
            for event in page:
                row = state_row_from_event(event, url=url)
                if row is not None:
                    rows.append(row)
                    latest[row["task_run_id"]] = event
            if len(rows) >= batch_size:
                seen.update(latest)
                yield rows, latest
                rows, latest = [], {}
        if rows:
            seen.update(latest)
            yield rows, latest

    for frame in ordered_map(finish, batches(), workers=1, window=2):
        if frame.height:
            yield frame
    parents = sorted(_subflow_parent_ids(client, start, end) - seen)
    if parents and (frame := reader.states_of_ids(parents, start, end)).height:
        yield frame


def _subflow_parent_ids(client: PrefectClient, start: datetime, end: datetime) -> set[str]:
    """The task runs that stand for subflow runs with a state change around ``[start, end]``.

    The server orchestrates these task runs itself and sends no
    ``prefect.task-run.*`` event for them (measured on 3.9.1), but each state
    event of the subflow run names it (related resource, role ``task-run``). A
    parent task run's states lie within a moment of its subflow's, so the
    events are read over the window widened by :data:`_PARENT_MARGIN`.
    """
    found: set[str] = set()
    pages = iter_event_pages(
        client, since=start - _PARENT_MARGIN, until=end + _PARENT_MARGIN, kind=FLOW_RUNS
    )
    for page in pages:
        for event in page:
            if not (event.get("payload") or {}).get("validated_state"):
                continue  # heartbeats name the task run running at the time
            for related in event.get("related") or []:
                rid = str(related.get("prefect.resource.id") or "")
                if related.get("prefect.resource.role") == "task-run":
                    found.add(rid.removeprefix(TASK_RUNS.event_prefix))
    return found


# -- choosing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A part ``[start, end)`` of a window and the source it is read from."""

    source: Literal["states", "events"]
    start: datetime
    end: datetime


@dataclass(frozen=True)
class SourcePlan:
    """The parts of a window, oldest first, and why they were chosen.

    Examples:
        >>> t = datetime(2026, 1, 1, tzinfo=UTC)
        >>> SourcePlan((Segment("states", t, t + timedelta(hours=1)),
        ...             Segment("events", t + timedelta(hours=1), t + timedelta(days=7)))).label
        'states+events'
    """

    segments: tuple[Segment, ...]
    reason: str = ""
    #: events were chosen by "auto": a refusal of the events endpoint falls back to states.
    fallback: bool = False

    @property
    def label(self) -> str:
        """``"events"``, ``"states"``, or ``"states+events"`` for a split window."""
        return "+".join(dict.fromkeys(s.source for s in self.segments))


def _split(start: datetime, cut: datetime, end: datetime, reason: str) -> SourcePlan:
    if cut <= start:
        return SourcePlan((Segment("events", start, end),), reason, fallback=True)
    if cut >= end:
        return SourcePlan((Segment("states", start, end),), reason)
    parts = (Segment("states", start, cut), Segment("events", cut, end))
    return SourcePlan(parts, reason, fallback=True)


def _oldest_event(
    client: PrefectClient, kind: RunKind, start: datetime, end: datetime
) -> datetime | None:
    """When the oldest of ``kind``'s events at or before ``end`` occurred (None: there is none)."""
    page = event_page(client, since=start - _FOREVER, until=end, page_size=1, kind=kind)
    events = page["events"]
    if not events:
        return None
    return parse_iso(str(events[0]["occurred"]))


def plan_sources(
    client: PrefectClient,
    start: datetime,
    end: datetime,
    *,
    source: Literal["auto", "states", "events"] = "auto",
    event_retention: timedelta = DEFAULT_EVENT_RETENTION,
    now: datetime | None = None,
    kind: RunKind = TASK_RUNS,
) -> SourcePlan:
    """Which source reads which part of ``[start, end)`` for ``kind``'s states.

    ``"states"`` and ``"events"`` are taken as asked. ``"auto"`` reads events
    for a window that starts well inside ``event_retention`` (no request here;
    should the events endpoint refuse, :func:`iter_plan` falls back to states),
    and otherwise asks the server for its oldest task-run event (one request):
    the window is read from events from that instant on and from states before
    it. A server that refuses the question because it is too far back (Prefect
    Cloud limits event queries to 14 days: 422) is split at ``now -
    event_retention`` instead; one without events (Prefect 2 answers 404) or
    without a task-run event up to ``end`` is read from states. The last
    :data:`FRESH_SPAN` before ``now`` is read from states in any case: the event
    store lags the per-run states by seconds. Each decision past the first is
    logged at INFO.
    """
    if source != "auto":
        return SourcePlan((Segment(source, start, end),), f"source={source!r} was asked for")
    now = now or datetime.now(UTC)
    return _fresh(_plan_auto(client, start, end, event_retention, now, kind), now)


def _fresh(plan: SourcePlan, now: datetime) -> SourcePlan:
    """``plan`` with the part of its last events segment within :data:`FRESH_SPAN` of
    ``now`` read from states instead: events of the last seconds may not be stored yet."""
    last = plan.segments[-1]
    cut = max(last.start, now - FRESH_SPAN)
    if last.source != "events" or last.end <= cut:
        return plan
    recent = Segment("states", cut, last.end)
    kept = (replace(last, end=cut),) if cut > last.start else ()
    reason = f"{plan.reason}; the last {FRESH_SPAN} before now from states (events lag)"
    return _logged(replace(plan, segments=(*plan.segments[:-1], *kept, recent), reason=reason))


def _plan_auto(
    client: PrefectClient,
    start: datetime,
    end: datetime,
    event_retention: timedelta,
    now: datetime,
    kind: RunKind,
) -> SourcePlan:
    """The plan of ``"auto"`` before :func:`_fresh` (see :func:`plan_sources`)."""
    if start >= now - event_retention + _RETENTION_MARGIN:
        reason = f"the window starts within the {event_retention} event retention"
        return SourcePlan((Segment("events", start, end),), reason, fallback=True)
    try:
        oldest = _oldest_event(client, kind, start, end)
    except RequestRejectedError:
        cut = now - event_retention + _RETENTION_MARGIN
        return _logged(_split(start, cut, end, f"events can only be asked back to {api_iso(cut)}"))
    except PrefectAPIError as err:
        if not _refused(err):
            raise
        reason = f"the events endpoint refused ({err.status_code}; Prefect 2 has no events)"
        return _logged(SourcePlan((Segment("states", start, end),), reason))
    if oldest is None:
        reason = f"the server holds no {kind.adjective} events up to the window's end"
        return _logged(SourcePlan((Segment("states", start, end),), reason))
    return _logged(
        _split(start, oldest, end, f"the oldest {kind.adjective} event is from {api_iso(oldest)}")
    )


def _logged(plan: SourcePlan) -> SourcePlan:
    logger.info(
        "source auto: %s, so %s",
        plan.reason,
        "; ".join(f"{s.source} for {api_iso(s.start)} .. {api_iso(s.end)}" for s in plan.segments),
    )
    return plan


def iter_plan(
    client: PrefectClient,
    kind: RunKind,
    filters: StateFilters,
    plan: SourcePlan,
    batch_size: int,
    *,
    read: list[Segment] | None = None,
) -> Iterator[pl.DataFrame]:
    """Frames of ``kind``'s states in every segment of ``plan``, oldest segment first.

    ``read``: gets each segment as it was actually read (``"states"`` where the
    events endpoint refused), so a summary says what was read, not what was planned.
    """
    read = [] if read is None else read
    for segment in plan.segments:
        if segment.source == "states":
            read.append(segment)
            yield from iter_per_run(client, kind, filters, segment.start, segment.end)
            continue
        try:
            first = event_page(client, since=segment.start, until=segment.end, kind=kind)
        except PrefectAPIError as err:
            if not (plan.fallback and _refused(err)):
                raise
            logger.info(
                "source auto: the events endpoint refused (%s), so states for %s .. %s",
                err.status_code,
                api_iso(segment.start),
                api_iso(segment.end),
            )
            read.append(replace(segment, source="states"))
            yield from iter_per_run(client, kind, filters, segment.start, segment.end)
            continue
        read.append(segment)
        yield from iter_events(
            client, kind, filters, segment.start, segment.end, batch_size, first=first
        )

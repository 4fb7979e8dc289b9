"""The public fetch API: ``fetch_states`` and its streaming form ``iter_states``, and
their flow-run twins ``fetch_flow_run_states`` and ``iter_flow_run_states``.

Each twin is a two-line wrapper: the one path below takes a
:class:`~trs_analytics.schema.RunKind` (:data:`~trs_analytics.schema.TASK_RUNS`
or :data:`~trs_analytics.schema.FLOW_RUNS`), so both offer the same arguments.

The window applies to the **state timestamp**: a row is returned when
``since <= timestamp < until``. Every source gives the same rows for a window
(see :mod:`~trs_analytics.fetch._sources`):

* ``"states"``: the task runs that can have a state in the window, then one
  ``GET /task_run_states/`` per run. Any age, any Prefect 2.19+ / 3.x server.
* ``"events"``: ``prefect.task-run.*`` events, about 14x fewer requests, within
  event retention, on Prefect 3.
* ``"auto"``: events for what events still cover, states for the rest.

``**filters`` stops here: it becomes one :class:`StateFilters`, which is what
the layers below (and :func:`stream_states`, for use cases such as exports) take.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Unpack

import polars as pl

from trs_analytics._progress import Progress, Tally, progress_bar
from trs_analytics._time import api_iso, parse_when
from trs_analytics.client import PrefectClient
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.fetch._filters import FilterKwargs, StateFilters
from trs_analytics.fetch._names import check_filter_names
from trs_analytics.fetch._sources import (
    Segment,
    SourcePlan,
    iter_plan,
    plan_sources,
)
from trs_analytics.schema import FLOW_RUNS, TASK_RUNS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import date

    from trs_analytics.schema import RunKind

__all__ = [
    "Source",
    "check_client_args",
    "check_source",
    "fetch_flow_run_states",
    "fetch_states",
    "iter_flow_run_states",
    "iter_states",
    "open_client",
    "run_tally",
    "stream_states",
    "window",
]

logger = logging.getLogger("trs_analytics.fetch")

Source = Literal["auto", "states", "events"]
_SOURCES = ("auto", "states", "events")


def check_source(source: str) -> Source:
    """``source`` if it is one of ``"auto"``, ``"states"``, ``"events"``; else an error.

    Examples:
        >>> check_source("events")
        'events'
        >>> check_source("cache")
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: source must be one of ['auto', 'states', 'events'], got 'cache'.
    """
    if source not in _SOURCES:
        msg = f"source must be one of {list(_SOURCES)}, got {source!r}."
        raise ConfigurationError(msg)
    return source  # type: ignore[return-value]


def check_client_args(api_url: str | None, client: PrefectClient | None) -> None:
    """Refuse both an ``api_url`` and a ``client``: one says where, not two.

    Examples:
        >>> check_client_args("http://127.0.0.1:4200/api", PrefectClient("http://x/api"))
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: pass api_url or client, not both. Hint: the client already knows its URL.
    """
    if client is not None and api_url is not None:
        msg = "pass api_url or client, not both. Hint: the client already knows its URL."
        raise ConfigurationError(msg)


@contextmanager
def open_client(api_url: str | None, client: PrefectClient | None) -> Iterator[PrefectClient]:
    """The caller's ``client``, or a new one for ``api_url`` closed on exit.

    Examples:
        >>> with open_client("http://127.0.0.1:4200/api", None) as client:
        ...     client.api_url
        'http://127.0.0.1:4200/api'
    """
    check_client_args(api_url, client)
    if client is not None:
        yield client
        return
    with PrefectClient(api_url) as made:
        yield made


def window(
    since: datetime | date | str, until: datetime | date | str | None
) -> tuple[datetime, datetime]:
    """``[since, until)`` as aware UTC datetimes; ``until`` defaults to now.

    Examples:
        >>> window("2026-01-01", "2026-01-02")[1]
        datetime.datetime(2026, 1, 2, 0, 0, tzinfo=datetime.timezone.utc)
    """
    start = parse_when(since)
    end = parse_when(until) if until is not None else datetime.now(UTC)
    if end <= start:
        msg = (
            f"the window is empty: since={api_iso(start)} is not before until={api_iso(end)}. "
            "Hint: since is the older bound."
        )
        raise ConfigurationError(msg)
    return start, end


def stream_states(
    client: PrefectClient,
    filters: StateFilters,
    start: datetime,
    end: datetime,
    *,
    source: Source | SourcePlan = "auto",
    batch_size: int = 5_000,
    kind: RunKind = TASK_RUNS,
    read: list[Segment] | None = None,
) -> Iterator[pl.DataFrame]:
    """The frames of :func:`iter_states` (``kind=FLOW_RUNS``: of
    :func:`iter_flow_run_states`), for use cases that hold checked arguments.

    ``source`` may be a :class:`~trs_analytics.fetch._sources.SourcePlan` made
    beforehand with :func:`~trs_analytics.fetch._sources.plan_sources`.
    ``read`` gets the segments as they were read (an export reports them as the
    source it used: states where the planned events endpoint refused).
    """
    plan = (
        source
        if isinstance(source, SourcePlan)
        else plan_sources(client, start, end, source=check_source(source), kind=kind)
    )
    logger.info(
        "reading %s %s .. %s from %s via %s",
        kind.states_label,
        api_iso(start),
        api_iso(end),
        client.api_url,
        plan.label,
    )
    return iter_plan(client, kind, filters, plan, batch_size, read=read)


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
    de-duplicate by ``id`` when you collect batches yourself. Closing the
    iterator early stops every background thread it started.

    Args: as :func:`fetch_states`, plus
        batch_size: events per batch for the events source.
        on_batch: called with each batch before it is yielded.
        on_progress: called with a :class:`~trs_analytics._progress.Progress` (task
            runs, states, requests so far) after each batch: progress bars.

    Examples:
        >>> frames = iter_states("http://127.0.0.1:4200/api", since="1h")  # doctest: +SKIP
        >>> sum(f.height for f in frames)  # doctest: +SKIP
        1234

        Arguments are checked at the call, before any request:

        >>> iter_states("http://127.0.0.1:4200/api", since="1h", source="cache")
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: source must be one of ['auto', 'states', 'events'], got 'cache'.
    """
    call = _Call(api_url, since, until, source, client, filters)
    return _iter(TASK_RUNS, call, batch_size, (on_batch, on_progress))


def iter_flow_run_states(
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
    """Stream flow-run states as frames of :data:`~trs_analytics.FLOW_RUN_STATES_SCHEMA`.

    The streaming form of :func:`fetch_flow_run_states`, with the arguments of
    :func:`iter_states`: one frame per page of up to 200 flow runs (the events
    source also cuts a batch every ``batch_size`` state-change events).
    Closing the iterator early stops every background thread it started.

    Examples:
        >>> frames = iter_flow_run_states("http://127.0.0.1:4200/api", since="1h")  # doctest: +SKIP

        A flow run has no task name:

        >>> iter_flow_run_states("http://127.0.0.1:4200/api", since="1h", task_names="load")
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: task_names does not apply to flow runs. Hint: filter flow runs by flow_names, deployments, work_pools, tags or state_types.
    """
    call = _Call(api_url, since, until, source, client, filters)
    return _iter(FLOW_RUNS, call, batch_size, (on_batch, on_progress))


_Steps = tuple["Callable[[pl.DataFrame], None] | None", "Callable[[Progress], None] | None"]


@dataclass(frozen=True)
class _Call:
    """What a public fetch function was called with, whichever kind of run it reads."""

    api_url: str | None
    since: datetime | date | str
    until: datetime | date | str | None
    source: Source
    client: PrefectClient | None
    filters: FilterKwargs


def _iter(kind: RunKind, call: _Call, batch_size: int, steps: _Steps) -> Iterator[pl.DataFrame]:
    """Check the arguments of :func:`iter_states` or its twin now, then stream ``kind``'s states.

    ``steps`` are the ``on_batch`` and ``on_progress`` callbacks.
    """
    check_source(call.source)
    check_client_args(call.api_url, call.client)
    if batch_size < 1:
        msg = f"batch_size must be at least 1, got {batch_size}."
        raise ConfigurationError(msg)
    chosen = StateFilters.from_kwargs(**call.filters)
    chosen.check_kind(kind)
    bounds = window(call.since, call.until)
    return _batches(kind, call, chosen, bounds, batch_size, steps)


def run_tally(
    client: PrefectClient, kind: RunKind, plan: SourcePlan, bounds: tuple[datetime, datetime]
) -> Tally:
    """A :class:`~trs_analytics._progress.Tally` of ``kind``'s runs read by ``plan`` over
    ``bounds``, counting ``client``'s requests: every fetch and export reports through one."""
    return Tally(
        since=bounds[0],
        until=bounds[1],
        source=plan.label,
        requests=lambda: client.stats.requests,
        run_id=kind.id_column,
        runs_label=f"{kind.noun}s",
    )


def _batches(
    kind: RunKind,
    call: _Call,
    filters: StateFilters,
    bounds: tuple[datetime, datetime],
    batch_size: int,
    steps: _Steps,
) -> Iterator[pl.DataFrame]:
    on_batch, on_progress = steps
    start, end = bounds
    with open_client(call.api_url, call.client) as client:
        check_filter_names(client, filters)
        plan = plan_sources(client, start, end, source=call.source, kind=kind)
        batches = stream_states(
            client, filters, start, end, source=plan, batch_size=batch_size, kind=kind
        )
        tally = run_tally(client, kind, plan, bounds)
        try:
            for batch in batches:
                if on_batch is not None:
                    on_batch(batch)
                if on_progress is not None:
                    on_progress(tally.add(batch))
                yield batch
        finally:
            batches.close()  # type: ignore[attr-defined]


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
        **filters: any of the keyword arguments below (:class:`FilterKwargs`),
            each one value or several.

    Keyword Args:
        flow_names: keep runs of these flows.
        deployments: keep runs of these deployments (names or ids).
        work_pools: keep runs whose flow run used these work pools.
        task_names: keep these tasks (the ``task_name`` column).
        tags: keep runs that carry all of these tags.
        state_types: keep runs whose current state has one of these types.

    Raises:
        ConfigurationError: no URL, a naive or unreadable time, an empty window, a
            flow, work pool or task name that matches nothing on the server (the
            error names the closest ones).
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
    return _fetch(TASK_RUNS, _Call(api_url, since, until, source, client, filters), progress)


def fetch_flow_run_states(
    api_url: str | None = None,
    *,
    since: datetime | date | str,
    until: datetime | date | str | None = None,
    source: Source = "auto",
    client: PrefectClient | None = None,
    progress: bool = True,
    **filters: Unpack[FilterKwargs],
) -> pl.DataFrame:
    """Fetch every flow-run state with ``since <= timestamp < until`` into one frame.

    One row per state, in the schema :data:`trs_analytics.FLOW_RUN_STATES_SCHEMA`
    (no ``task_run_id``: that is how the metrics know they count flow runs),
    sorted by ``timestamp`` then ``id``, each state id once, with the flow run's
    name, flow, deployment (id and name), work pool and queue, tags,
    ``run_count``, ``expected_start_time`` and, for a subflow, the
    ``parent_task_run_id`` that stands for it in its parent flow run.

    Sources, as for :func:`fetch_states`: ``"states"`` lists the flow runs that
    can have a state in the window (``/flow_runs/filter``, past the 200 cap) and
    reads ``GET /flow_run_states/`` per run; ``"events"`` finds the flow runs
    from ``prefect.flow-run.*`` events (Prefect 3, within event retention) and
    reads their states the same way, since those events carry no state details;
    ``"auto"`` uses events where they reach and states before. Every source
    gives the same rows.

    Its arguments are those of :func:`fetch_states`; ``tags`` and
    ``state_types`` are the flow run's own, and ``task_names`` is refused.

    Raises:
        ConfigurationError: no URL, a naive or unreadable time, an empty window,
            a task-name filter.
        PrefectAPIError: the server refused or failed (see its subclasses).
        TransportError: the server could not be reached.

    Examples:
        >>> import trs_analytics as ta
        >>> runs = ta.fetch_flow_run_states("http://127.0.0.1:4200/api", since="1d")  # doctest: +SKIP
        >>> runs.select("flow_name", "deployment_name", "name", "timestamp")  # doctest: +SKIP

        Arguments are checked before any request:

        >>> ta.fetch_flow_run_states("http://127.0.0.1:4200/api", since="1d", source="cache")
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: source must be one of ['auto', 'states', 'events'], got 'cache'.
    """
    return _fetch(FLOW_RUNS, _Call(api_url, since, until, source, client, filters), progress)


def _fetch(kind: RunKind, call: _Call, progress: bool) -> pl.DataFrame:
    """All of ``kind``'s states (under a progress bar) in one frame, each id once.

    Sorted by ``timestamp`` then ``id``; the last copy of an id wins; an empty frame
    of ``kind.schema`` when no batch came. :func:`fetch_states` and
    :func:`fetch_flow_run_states` call this.
    """
    with progress_bar(progress, title=f"fetching {kind.states_label}") as on_progress:
        frames = list(_iter(kind, call, 5_000, (None, on_progress)))
    if not frames:
        return kind.empty()
    return (
        pl.concat(frames, how="vertical")
        .unique(subset="id", keep="last", maintain_order=True)
        .sort("timestamp", "id")
    )

"""The export use case: fetch task-run states into a :class:`~trs_analytics.storage.Dataset`.

Fetching (:mod:`trs_analytics.fetch`) and storing (:mod:`trs_analytics.storage`)
know nothing of each other; this module combines them. One export:

1. opens and locks the dataset (a foreign folder, a damaged file or other
   filters are refused before anything is written);
2. resolves the window: ``since``, else the dataset's cursor minus the overlap,
   else :data:`~trs_analytics.storage.DEFAULT_SINCE` ago;
3. checks the flow and work pool names with the server and picks the source;
4. streams batches into the dataset, then commits: files first, cursor last;
5. with ``flow_runs=True`` (the default), does the same for flow-run states in
   the dataset's flow-run table (``_flow_run_states/``, its own cursor), so a
   dataset written before that table existed gains it on its next export.

Both tables are exported by one path, :func:`_fill`, that takes the table's
:class:`~trs_analytics.schema.RunKind` from its :class:`~trs_analytics.storage.Dataset`.

A failure at any step before the first rows are written leaves no trace in a
new dataset (see :mod:`trs_analytics.storage._dataset` for the crash-safety rules).
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Unpack

from trs_analytics._format import count_text
from trs_analytics._progress import progress_bar
from trs_analytics._time import iso, parse_when
from trs_analytics.client import PrefectClient
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.fetch import (
    FilterKwargs,
    Segment,
    SourcePlan,
    StateFilters,
    check_client_args,
    check_filter_names,
    check_source,
    plan_sources,
    run_tally,
    stream_states,
)
from trs_analytics.schema import FLOW_RUNS, TASK_RUNS
from trs_analytics.storage import (
    DEFAULT_OVERLAP,
    DEFAULT_SINCE,
    Dataset,
    DatasetInfo,
    DatasetProgress,
)

if TYPE_CHECKING:
    import os
    from collections.abc import Callable
    from datetime import date
    from pathlib import Path

    from trs_analytics.fetch import Source
    from trs_analytics.schema import RunKind

__all__ = ["ExportResult", "export_states"]

logger = logging.getLogger("trs_analytics.export")


@dataclass(frozen=True)
class ExportResult:
    """What one export did.

    Attributes:
        out: the dataset folder.
        source: the source used: ``"events"``, ``"states"``, or ``"states+events"``
            (older part per run, recent part from events).
        since: start of the window read (inclusive).
        until: end of the window read (exclusive); the new cursor.
        states: states read from the server (rows of the overlap included).
        task_runs: distinct task runs among them.
        added: states that were new and were written.
        rows: states in the dataset afterwards.
        files: Parquet files in the dataset afterwards.
        days: day partitions that were written, ``YYYY-MM-DD``.
        requests: HTTP requests sent.
        retries: requests that were retried.
        seconds: wall-clock time of the export.
        flow_run_states: flow-run states read (None: the flow-run table was not exported).
        flow_runs: distinct flow runs among them.
        flow_run_added: flow-run states that were new and were written.
        flow_run_rows: flow-run states in the dataset's flow-run table afterwards.
    """

    out: Path
    source: str
    since: datetime
    until: datetime
    states: int
    task_runs: int
    added: int
    rows: int
    files: int
    days: tuple[str, ...] = field(default=())
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    flow_run_states: int | None = None
    flow_runs: int = 0
    flow_run_added: int = 0
    flow_run_rows: int = 0

    def summary(self) -> str:
        """One line for logs and the CLI, saying what happened.

        Examples:
            >>> from pathlib import Path
            >>> r = ExportResult(Path("out"), "events", datetime(2026, 1, 1, tzinfo=UTC),
            ...                  datetime(2026, 1, 2, tzinfo=UTC), states=120, task_runs=40,
            ...                  added=100, rows=1000, files=2, requests=5, seconds=1.25)
            >>> r.summary()
            'exported 40 task runs, 120 states (100 new) via events in 5 requests, 1.2 s; out has 1000 states in 2 files'
            >>> replace(r, added=0).summary()
            'nothing new: the 40 task runs (120 states) read via events in 5 requests, 1.2 s were already in out; it has 1000 states in 2 files'
            >>> replace(r, added=0, states=0, task_runs=0).summary()
            'nothing new: the server has no task-run states from 2026-01-01T00:00:00Z to 2026-01-02T00:00:00Z (events, 5 requests, 1.2 s); out has 1000 states in 2 files'
            >>> replace(r, states=1, task_runs=1, added=1, rows=1, files=1, requests=1).summary()
            'exported 1 task run, 1 state (1 new) via events in 1 request, 1.2 s; out has 1 state in 1 file'
            >>> replace(r, flow_run_states=9, flow_runs=3, flow_run_added=9, flow_run_rows=30).summary()
            'exported 40 task runs, 120 states (100 new) via events in 5 requests, 1.2 s; out has 1000 states in 2 files; and 3 flow runs, 9 flow-run states (9 new); 30 in its flow-run table'
        """
        return self._task_summary() + self._flow_summary()

    def _flow_summary(self) -> str:
        if self.flow_run_states is None:
            return ""
        return (
            f"; and {_count(self.flow_runs, 'flow run')}, "
            f"{_count(self.flow_run_states, 'flow-run state')} "
            f"({self.flow_run_added} new); {self.flow_run_rows} in its flow-run table"
        )

    def _task_summary(self) -> str:
        requests = _count(self.requests, "request")
        how = f"via {self.source} in {requests}, {self.seconds:.1f} s"
        holds = f"{_count(self.rows, 'state')} in {_count(self.files, 'file')}"
        runs, states = _count(self.task_runs, "task run"), _count(self.states, "state")
        if self.states == 0:
            return (
                f"nothing new: the server has no task-run states from {iso(self.since)} to "
                f"{iso(self.until)} ({self.source}, {requests}, "
                f"{self.seconds:.1f} s); {self.out} has {holds}"
            )
        if self.added == 0:
            return (
                f"nothing new: the {runs} ({states}) read {how} were already in {self.out}; "
                f"it has {holds}"
            )
        return f"exported {runs}, {states} ({self.added} new) {how}; {self.out} has {holds}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (times as ISO-8601 strings)."""
        data = asdict(self)
        data.update(
            out=str(self.out),
            since=iso(self.since),
            until=iso(self.until),
            days=list(self.days),
        )
        return data


def _window(
    info: DatasetInfo,
    since: datetime | date | str | None,
    until: datetime | date | str | None,
    overlap: timedelta,
    *,
    now: datetime | None = None,
) -> tuple[datetime, datetime]:
    """The window ``[start, end)`` to read; ``end`` never lies after ``now``, so the
    cursor (which moves to ``end``) never passes what the server could answer."""
    now = now or datetime.now(UTC)
    end = parse_when(until) if until is not None else now
    if end > now:
        logger.info(
            "until=%s is in the future: reading up to now (%s), so the cursor stays true",
            iso(end),
            iso(now),
        )
        end = now
    if since is not None:
        start = parse_when(since)
    elif info.cursor is not None:
        start = info.cursor - overlap
    else:
        start = parse_when(DEFAULT_SINCE, now=now)
    if end <= start:
        why = (
            f" The dataset's cursor {iso(info.cursor)} lies in the future (an export with a "
            "future --until, before trs_analytics clamped it); pass --since to read a window."
            if since is None and info.cursor is not None and info.cursor > now
            else ""
        )
        msg = (
            f"the window is empty: since={iso(start)} is not before until={iso(end)}.{why} "
            "Hint: since is the older bound; without --since an export starts at the "
            "dataset's cursor minus the overlap."
        )
        raise ConfigurationError(msg)
    return start, end


def export_states(
    out: str | os.PathLike[str],
    *,
    api_url: str | None = None,
    client: PrefectClient | None = None,
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
    source: Source = "auto",
    overlap: timedelta = DEFAULT_OVERLAP,
    wait: float = 0.0,
    flush_rows: int = 100_000,
    target_file_rows: int = 1_000_000,
    on_progress: Callable[[DatasetProgress], None] | None = None,
    progress: bool = True,
    flow_runs: bool = True,
    **filter_kwargs: Unpack[FilterKwargs],
) -> ExportResult:
    """Fetch task-run (and flow-run) states into a day-partitioned Parquet dataset, incrementally.

    The window is ``[since, until)`` on the state timestamp. Without ``since``,
    it starts at the dataset's cursor (the ``until`` of the last complete
    export) minus ``overlap``, so states the server recorded late are caught;
    a new dataset starts :data:`~trs_analytics.storage.DEFAULT_SINCE` (7 days)
    ago. States already in the dataset are recognised by ``id`` and skipped, so
    exporting twice in a row adds nothing. The source is chosen by
    :func:`~trs_analytics.fetch.plan_sources` for ``"auto"``: events for what
    the server's events still cover, per-task-run states for the older part
    (``result.source`` is then ``"states+events"``). A first
    export that fails before writing any rows leaves nothing behind.

    Args:
        out: the dataset folder: missing, empty, or an existing dataset.
        api_url: the API URL; else ``PREFECT_API_URL`` or the active Prefect profile.
        client: a :class:`~trs_analytics.client.PrefectClient` to use instead of ``api_url``.
        since: start of the window: an aware datetime, ISO-8601 string, date or age (``7d``).
        until: end of the window (exclusive); default now.
        source: ``"auto"``, ``"events"`` or ``"states"``.
        overlap: how much before the cursor an incremental export reads again.
        wait: seconds to wait for another export's lock before giving up.
        flush_rows: states held in memory before they are written (events are
            also read in batches of at most this many).
        target_file_rows: a day's part file grows up to about this many states.
        on_progress: called with a :class:`~trs_analytics.storage.DatasetProgress`
            after each batch.
        progress: without ``on_progress``, draw a progress bar in a notebook or a
            terminal (never in a non-interactive run); ``False`` turns it off.
        flow_runs: also export flow-run states into the dataset's flow-run table
            (``_flow_run_states/``, read with :func:`~trs_analytics.scan_flow_run_states`),
            with its own cursor; the same filters apply but ``task_names``. A table
            that is new starts where the dataset's first export started.
        **filter_kwargs: the filters of :func:`~trs_analytics.fetch_states`, below.

    Keyword Args:
        flow_names: keep runs of these flows (checked against the server).
        deployments: keep runs of these deployments (names or ids).
        work_pools: keep runs whose flow run used these work pools (checked too).
        task_names: keep these tasks.
        tags: keep runs that carry all of these tags.
        state_types: keep runs whose current state has one of these types.

    Returns:
        an :class:`ExportResult`; ``result.summary()`` is a
        one-line report.

    Raises:
        StorageError: ``out`` holds something other than a dataset, a file in it
            is damaged (nothing is written then), or it cannot be written (full
            disk, read-only: what was stored before is kept).
        DatasetLockedError: another export is writing to ``out``.
        ConfigurationError: a bad argument, a flow or work pool name the server
            does not know, or filters that differ from the dataset's.
        PrefectAPIError: the server refused or failed (see its subclasses).
        TransportError: the server could not be reached.

    Examples:
        >>> result = export_states("states/", api_url="http://127.0.0.1:4200/api")  # doctest: +SKIP
        >>> print(result.summary())  # doctest: +SKIP
        exported 812 task runs, 2841 states (2841 new) via events in 61 requests, 2.3 s; ...
        >>> import trs_analytics as ta
        >>> ta.scan_states("states/").collect().height  # doctest: +SKIP
        2841
    """
    check_client_args(api_url, client)
    check_source(source)
    filters = StateFilters.from_kwargs(**filter_kwargs)
    options = _Options(source, overlap, wait, flush_rows, target_file_rows)
    with ExitStack() as stack:
        dataset = stack.enter_context(_open(out, TASK_RUNS, filters, options))
        if on_progress is None:
            on_progress = stack.enter_context(progress_bar(progress, title="export_states"))
        start, end = _window(dataset.info, since, until, overlap)
        if client is None:
            client = stack.enter_context(PrefectClient(api_url))
        check_filter_names(client, filters)
        result = _fill(dataset, client, filters, (start, end), options, on_progress)
        if flow_runs:
            first = dataset.info.history[0].get("since") if dataset.info.history else None
            flow_filters = replace(filters, task_names=())
            with _open(out, FLOW_RUNS, flow_filters, options) as table:
                if since is None and table.info.cursor is None:
                    since = first or result.since  # a new table starts with the dataset
                bounds = _window(table.info, since, result.until, overlap)
                flow_result = _fill(table, client, flow_filters, bounds, options, on_progress)
            result = _with_flow_runs(result, flow_result)
    logger.debug("%s", result.summary())
    return result


@dataclass(frozen=True)
class _Options:
    """The export's arguments that both tables' exports share."""

    source: Source
    overlap: timedelta
    wait: float
    flush_rows: int
    target_file_rows: int


def _open(
    out: str | os.PathLike[str], kind: RunKind, filters: StateFilters, options: _Options
) -> Dataset:
    return Dataset.open(
        out,
        filters=asdict(filters),
        wait=options.wait,
        flush_rows=options.flush_rows,
        target_file_rows=options.target_file_rows,
        kind=kind,
    )


def _fill(
    dataset: Dataset,
    client: PrefectClient,
    filters: StateFilters,
    bounds: tuple[datetime, datetime],
    options: _Options,
    on_progress: Callable[[DatasetProgress], None] | None,
) -> ExportResult:
    """Export ``dataset.kind``'s states of ``[start, end)`` into ``dataset``, then commit."""
    kind, (start, end) = dataset.kind, bounds
    started, clock = datetime.now(UTC), time.monotonic()
    requests0, retries0 = client.stats.requests, client.stats.retries
    plan = plan_sources(client, start, end, source=options.source, kind=kind)
    logger.info(
        "exporting %s %s .. %s via %s into %s",
        kind.states_label,
        iso(start),
        iso(end),
        plan.label,
        dataset.path,
    )
    tally = run_tally(client, kind, plan, bounds)
    batch_size = min(options.flush_rows, 5_000)
    read: list[Segment] = []  # what was read: states where the events endpoint refused
    for batch in stream_states(
        client, filters, start, end, source=plan, batch_size=batch_size, kind=kind, read=read
    ):
        dataset.add(batch)
        reached = tally.add(batch)
        if on_progress is not None:
            on_progress(reached)
    dataset.flush()
    rows, files = dataset.size()
    result = ExportResult(
        out=dataset.path,
        source=SourcePlan(tuple(read)).label if read else plan.label,
        since=start,
        until=end,
        states=tally.states,
        task_runs=len(tally.runs),
        added=dataset.added,
        rows=rows,
        files=files,
        days=dataset.days,
        requests=client.stats.requests - requests0,
        retries=client.stats.retries - retries0,
        seconds=time.monotonic() - clock,
    )
    dataset.commit(result, started=started)
    return result


def _with_flow_runs(result: ExportResult, flow_result: ExportResult) -> ExportResult:
    """The task-run table's ``result`` with the flow-run table's counts added."""
    return replace(
        result,
        flow_run_states=flow_result.states,
        flow_runs=flow_result.task_runs,
        flow_run_added=flow_result.added,
        flow_run_rows=flow_result.rows,
        requests=result.requests + flow_result.requests,
        retries=result.retries + flow_result.retries,
        seconds=result.seconds + flow_result.seconds,
    )


def _count(count: int, noun: str) -> str:
    """``count`` and its noun, plural or not, in plain digits (scripts read summary lines)."""
    return count_text(count, noun, grouped=False)

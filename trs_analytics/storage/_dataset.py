"""Incremental, crash-safe Parquet datasets of task-run states.

A dataset is a folder that :func:`scan_states` (and any Parquet reader that
globs ``**/*.parquet``) reads as one table::

    DIR/
      _trs_dataset.json            marker, cursor, filters, export history
      .lock                        held (flock) by the export writing right now
      day=2026-01-01/              UTC day of the state timestamp
        part-00000.parquet         sorted by timestamp, id; about <= 1M rows
        part-00001.parquet         only when the day outgrew its first part
      day=2026-01-02/
        part-00000.parquet

Three rules make every write safe against a crash or a ``SIGKILL`` at any moment:

1. **One rename per change.** A file is written to a hidden temporary name in
   its own folder, flushed to disk, then renamed to its final name
   (``os.replace``, atomic on POSIX). New rows for a day are merged into the
   day's newest part under the *same* name, or go to a new part; an existing
   row is never written twice. So a reader sees each file before or after a
   change, never half of one, and never one state in two files: readers do
   not depend on a manifest or a clean-up having run. Hidden names (``.``/``_``)
   are skipped by readers, so a crash leaves at worst a hidden temporary file,
   which the next export removes.
2. **The cursor moves last.** ``_trs_dataset.json`` (itself replaced
   atomically) records the end of the last complete window only after every
   file of that window is durable. A killed export leaves the old cursor, so
   the next run reads the window again; rows already stored are recognised by
   state ``id`` and skipped.
3. **One writer.** An export holds an exclusive ``flock`` on ``DIR/.lock``; a
   second export fails at once with :class:`DatasetLockedError` (or waits
   ``wait`` seconds). The lock dies with its process, so a killed export never
   leaves a stale lock.

Small files do not pile up: an export every five minutes keeps merging its
new rows into the day's last part, so a day is one file until it outgrows
``target_file_rows``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Unpack

import polars as pl

from trs_analytics.client import PrefectClient
from trs_analytics.exceptions import ConfigurationError, StorageError
from trs_analytics.fetch import (
    FilterKwargs,
    StateFilters,
    check_client_args,
    check_source,
    parse_when,
    plan_sources,
    stream_states,
)
from trs_analytics.schema import SCHEMA_VERSION, STATES_SCHEMA
from trs_analytics.storage._parquet import (
    _check_file,
    _fsync_dir,
    atomic_write_parquet,
    list_parquet_files,
    read_states_files,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import date

    from trs_analytics.fetch import Source

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_SINCE",
    "MARKER_NAME",
    "DatasetLockedError",
    "DatasetProgress",
    "ExportResult",
    "export_states",
    "read_dataset_info",
]

logger = logging.getLogger("trs_analytics.storage")

#: The file that marks a folder as a trs_analytics dataset and holds its cursor.
MARKER_NAME: Final = "_trs_dataset.json"
_LOCK_NAME: Final = ".lock"
_FORMAT: Final = "trs_analytics.dataset"
_FORMAT_VERSION: Final = 1
#: How far back the first export of a dataset reads when no ``since`` is given.
DEFAULT_SINCE: Final = "7d"
#: How much of the previous window every incremental export reads again.
DEFAULT_OVERLAP: Final = timedelta(minutes=10)
_HISTORY_KEPT: Final = 100


class DatasetLockedError(StorageError):
    """Another export holds the dataset's lock."""


@dataclass(frozen=True)
class DatasetProgress:
    """How far an export has got; passed to ``on_progress`` after every batch.

    Attributes:
        since: start of the window being read.
        until: end of the window being read.
        source: ``"events"``, ``"states"``, or ``"states+events"`` for a window split at
            the oldest event.
        states: states read so far (overlap re-reads included).
        task_runs: distinct task runs among them.
        requests: HTTP requests sent so far.
        latest: the newest state timestamp read so far, or ``None``.
    """

    since: datetime
    until: datetime
    source: str
    states: int
    task_runs: int
    requests: int
    latest: datetime | None

    @property
    def fraction(self) -> float:
        """A rough 0..1 share of the window covered (states come in time order for events)."""
        if self.latest is None:
            return 0.0
        span = (self.until - self.since).total_seconds()
        done = (self.latest - self.since).total_seconds()
        return min(1.0, max(0.0, done / span)) if span > 0 else 1.0


@dataclass(frozen=True)
class ExportResult:
    """What one :func:`export_states` call did.

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

    def summary(self) -> str:
        """One line for logs and the CLI.

        Examples:
            >>> r = ExportResult(Path("out"), "events", datetime(2026, 1, 1, tzinfo=UTC),
            ...                  datetime(2026, 1, 2, tzinfo=UTC), states=120, task_runs=40,
            ...                  added=100, rows=1000, files=2, requests=5, seconds=1.25)
            >>> r.summary()
            'exported 40 task runs, 120 states (100 new) via events in 5 requests, 1.2 s; out has 1000 states in 2 files'
        """
        return (
            f"exported {self.task_runs} task runs, {self.states} states ({self.added} new) "
            f"via {self.source} in {self.requests} requests, {self.seconds:.1f} s; "
            f"{self.out} has {self.rows} states in {self.files} files"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (times as ISO-8601 strings)."""
        data = asdict(self)
        data.update(
            out=str(self.out),
            since=_iso(self.since),
            until=_iso(self.until),
            days=list(self.days),
        )
        return data


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- the marker ------------------------------------------------------------


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def read_dataset_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a dataset's marker: cursor, filters, history of exports.

    Raises:
        StorageError: when ``path`` is not a dataset, or its marker is damaged.

    Examples:
        >>> import tempfile
        >>> read_dataset_info(tempfile.mkdtemp())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.StorageError: ... is not a trs_analytics dataset: it has no _trs_dataset.json. Hint: ...
    """
    marker = Path(path) / MARKER_NAME
    if not marker.is_file():
        msg = (
            f"{Path(path)} is not a trs_analytics dataset: it has no {MARKER_NAME}. "
            "Hint: create one with 'trs-analytics export --out DIR'."
        )
        raise StorageError(msg)
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        msg = (
            f"{marker} cannot be read as JSON ({err}). Hint: the dataset's marker is damaged; "
            "restore it from a backup, or export into a new folder."
        )
        raise StorageError(msg) from err
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        msg = (
            f"{marker} is not a trs_analytics dataset marker (expected format {_FORMAT!r}). "
            "Hint: export into a new folder."
        )
        raise StorageError(msg)
    if data.get("format_version", 0) > _FORMAT_VERSION:
        msg = (
            f"{marker} has format version {data.get('format_version')}, newer than this "
            f"trs_analytics understands ({_FORMAT_VERSION}). Hint: upgrade trs_analytics."
        )
        raise StorageError(msg)
    return data


def _open_dataset(out: Path, filters: StateFilters) -> dict[str, Any]:
    """Return the marker of ``out``, creating a new dataset in an empty or missing folder."""
    if out.exists() and not out.is_dir():
        msg = f"{out} is a file, expected a dataset folder. Hint: pass a folder to --out."
        raise StorageError(msg)
    if (out / MARKER_NAME).exists():
        info = read_dataset_info(out)
        stored = info.get("filters") or {}
        wanted = _filters_json(filters)
        if stored != wanted:
            msg = (
                f"{out} was exported with filters {stored}, this export asks for {wanted}. "
                "Hint: pass the same filters, or export into a new folder; one dataset "
                "holds one selection of task runs so its cursor stays meaningful."
            )
            raise ConfigurationError(msg)
        return info
    out.mkdir(parents=True, exist_ok=True)
    foreign = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        msg = (
            f"{out} holds other files ({shown}) and no {MARKER_NAME}, so it is not a "
            "trs_analytics dataset; nothing was written. Hint: export into an empty or new folder."
        )
        raise StorageError(msg)
    info = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "schema_version": SCHEMA_VERSION,
        "partitioning": "day=YYYY-MM-DD/part-NNNNN.parquet, UTC day of the state timestamp",
        "created": _iso(datetime.now(UTC)),
        "filters": _filters_json(filters),
        "cursor": None,
        "history": [],
    }
    _write_json_atomic(out / MARKER_NAME, info)
    return info


def _filters_json(filters: StateFilters) -> dict[str, list[str]]:
    return {k: sorted(v) for k, v in asdict(filters).items() if v}


# -- the lock --------------------------------------------------------------


@contextlib.contextmanager
def _locked(out: Path, *, wait: float) -> Iterator[None]:
    path = out / _LOCK_NAME
    handle: IO[str] = path.open("a+", encoding="utf-8")
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown process"
                    msg = (
                        f"{out} is being written by another export ({holder}). Hint: wait for "
                        "it to finish, or pass wait=/--wait SECONDS to queue behind it."
                    )
                    raise DatasetLockedError(msg) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {_iso(datetime.now(UTC))}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def _remove_leftovers(out: Path) -> None:
    """Delete hidden temporary files a killed export may have left (we hold the lock)."""
    for folder in [out, *(p for p in out.iterdir() if p.is_dir() and p.name.startswith("day="))]:
        for tmp in folder.glob(".*.tmp"):
            logger.info("removing %s, left by an interrupted export", tmp)
            tmp.unlink(missing_ok=True)


# -- writing day partitions ------------------------------------------------


def _day_files(day_dir: Path) -> list[Path]:
    if not day_dir.is_dir():
        return []
    return sorted(p for p in day_dir.glob("part-*.parquet") if not p.name.startswith("."))


def _rows_in(file: Path) -> int:
    return int(pl.scan_parquet(file).select(pl.len()).collect().item())


def _read(files: list[Path], columns: list[str] | None = None) -> pl.DataFrame:
    try:
        return read_states_files(files, columns)
    except Exception as err:  # polars raises several kinds for a damaged file
        names = ", ".join(str(f) for f in files)
        msg = (
            f"cannot read {names} ({type(err).__name__}: {str(err)[:160]}). Hint: a file of "
            "the dataset is damaged; move it out of the folder and export its days again "
            "with --since."
        )
        raise StorageError(msg) from err


def _merge_day(day_dir: Path, new: pl.DataFrame, *, target_file_rows: int) -> int:
    """Add the rows of ``new`` whose ids the day does not have yet; return how many."""
    parts = _day_files(day_dir)
    if parts:
        known = _read(parts, ["id"])["id"]
        new = new.filter(~pl.col("id").is_in(known.implode()))
    if new.height == 0:
        return 0
    last = parts[-1] if parts else None
    if last is not None and _rows_in(last) + new.height <= target_file_rows:
        merged = pl.concat([_read([last]), new], how="vertical")
        atomic_write_parquet(merged.sort("timestamp", "id"), last)
    else:
        number = int(last.stem.removeprefix("part-")) + 1 if last is not None else 0
        atomic_write_parquet(new.sort("timestamp", "id"), day_dir / f"part-{number:05d}.parquet")
    return new.height


class _Writer:
    """Buffers fetched rows by day and merges them into the dataset."""

    def __init__(self, out: Path, *, flush_rows: int, target_file_rows: int) -> None:
        self.out = out
        self.flush_rows = flush_rows
        self.target_file_rows = target_file_rows
        self.buffer: list[pl.DataFrame] = []
        self.buffered = 0
        self.added = 0
        self.days: set[str] = set()

    def add(self, batch: pl.DataFrame) -> None:
        self.buffer.append(batch)
        self.buffered += batch.height
        if self.buffered >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        frame = pl.concat(self.buffer, how="vertical").unique("id", keep="first")
        self.buffer, self.buffered = [], 0
        day = pl.col("timestamp").dt.date().dt.to_string("%Y-%m-%d").alias("_day")
        for (name,), rows in sorted(
            frame.with_columns(day).partition_by("_day", as_dict=True).items()
        ):
            added = _merge_day(
                self.out / f"day={name}",
                rows.drop("_day").select(STATES_SCHEMA.names()),
                target_file_rows=self.target_file_rows,
            )
            if added:
                self.added += added
                self.days.add(str(name))


# -- the export ------------------------------------------------------------


def _window(
    info: dict[str, Any],
    since: datetime | date | str | None,
    until: datetime | date | str | None,
    overlap: timedelta,
) -> tuple[datetime, datetime]:
    end = parse_when(until) if until is not None else datetime.now(UTC)
    if since is not None:
        start = parse_when(since)
    elif info.get("cursor"):
        start = parse_when(str(info["cursor"])) - overlap
    else:
        start = parse_when(DEFAULT_SINCE)
    if end <= start:
        msg = (
            f"the window is empty: since={_iso(start)} is not before until={_iso(end)}. "
            "Hint: since is the older bound; without --since an export starts at the "
            "dataset's cursor minus the overlap."
        )
        raise ConfigurationError(msg)
    return start, end


def _record(
    out: Path, info: dict[str, Any], result: ExportResult, started: datetime
) -> dict[str, Any]:
    cursor = info.get("cursor")
    new_cursor = result.until if cursor is None else max(result.until, parse_when(str(cursor)))
    entry = {
        "started": _iso(started),
        "since": _iso(result.since),
        "until": _iso(result.until),
        "source": result.source,
        "states": result.states,
        "added": result.added,
        "requests": result.requests,
        "retries": result.retries,
        "seconds": round(result.seconds, 3),
    }
    updated = {
        **info,
        "cursor": _iso(new_cursor),
        "history": [*info.get("history", []), entry][-_HISTORY_KEPT:],
    }
    _write_json_atomic(out / MARKER_NAME, updated)
    return updated


def _check_files(out: Path) -> list[Path]:
    files = list_parquet_files(out)
    for file in files:
        _check_file(file)
    return files


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
    **filter_kwargs: Unpack[FilterKwargs],
) -> ExportResult:
    """Fetch task-run states into a day-partitioned Parquet dataset, incrementally.

    The window is ``[since, until)`` on the state timestamp. Without ``since``,
    it starts at the dataset's cursor (the ``until`` of the last complete
    export) minus ``overlap``, so states the server recorded late are caught;
    a new dataset starts :data:`DEFAULT_SINCE` (7 days) ago. States already in
    the dataset are recognised by ``id`` and skipped, so exporting twice in a
    row adds nothing. The source is chosen by :func:`~trs_analytics.fetch.plan_sources`
    for ``"auto"``: events for what the server's events still cover, per-task-run
    states for the older part (``result.source`` is then ``"states+events"``). See the module docstring for the layout and why a crash
    at any moment leaves a readable dataset without duplicates.

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
        on_progress: called with a :class:`DatasetProgress` after each batch.
        **filter_kwargs: the filters of :func:`~trs_analytics.fetch_states`:
        flow_names: keep runs of these flows.
        deployments: keep runs of these deployments (names or ids).
        work_pools: keep runs whose flow run used these work pools.
        task_names: keep these tasks.
        tags: keep runs that carry all of these tags.
        state_types: keep runs whose current state has one of these types.

    Returns:
        an :class:`ExportResult`; ``result.summary()`` is a one-line report.

    Raises:
        StorageError: ``out`` holds something other than a dataset, or a file in it
            is damaged (nothing is written then).
        DatasetLockedError: another export is writing to ``out``.
        ConfigurationError: a bad argument, or filters that differ from the dataset's.
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
    if flush_rows < 1 or target_file_rows < 1:
        msg = "flush_rows and target_file_rows must be at least 1."
        raise ConfigurationError(msg)
    filters = StateFilters.from_kwargs(**filter_kwargs)
    folder = Path(out)
    started, clock = datetime.now(UTC), time.monotonic()
    _open_dataset(folder, filters)  # refuses a foreign folder before the lock file is made
    with _locked(folder, wait=wait), contextlib.ExitStack() as stack:
        info = _open_dataset(folder, filters)  # again, under the lock: another export may have run
        _remove_leftovers(folder)
        _check_files(folder)
        start, end = _window(info, since, until, overlap)
        if client is None:
            client = stack.enter_context(PrefectClient(api_url))
        requests0, retries0 = client.stats.requests, client.stats.retries
        plan = plan_sources(client, start, end, source=source)
        chosen = plan.label
        logger.info("exporting %s .. %s via %s into %s", _iso(start), _iso(end), chosen, folder)
        writer = _Writer(folder, flush_rows=flush_rows, target_file_rows=target_file_rows)
        states, latest = 0, None
        task_runs: set[str] = set()
        for batch in stream_states(
            client, filters, start, end, source=plan, batch_size=min(flush_rows, 5_000)
        ):
            writer.add(batch)
            states += batch.height
            task_runs.update(batch["task_run_id"].to_list())
            newest = batch["timestamp"].max()
            if isinstance(newest, datetime):
                latest = newest if latest is None else max(latest, newest)
            if on_progress is not None:
                on_progress(
                    DatasetProgress(
                        start,
                        end,
                        chosen,
                        states,
                        len(task_runs),
                        client.stats.requests - requests0,
                        latest,
                    )
                )
        writer.flush()
        files = list_parquet_files(folder)
        rows = int(pl.scan_parquet(files).select(pl.len()).collect().item()) if files else 0
        result = ExportResult(
            out=folder,
            source=chosen,
            since=start,
            until=end,
            states=states,
            task_runs=len(task_runs),
            added=writer.added,
            rows=rows,
            files=len(files),
            days=tuple(sorted(writer.days)),
            requests=client.stats.requests - requests0,
            retries=client.stats.retries - retries0,
            seconds=time.monotonic() - clock,
        )
        _record(folder, info, result, started)
    logger.info("%s", result.summary())
    return result

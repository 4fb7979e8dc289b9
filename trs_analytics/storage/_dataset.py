"""Incremental, crash-safe Parquet datasets of task-run states (no network here).

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

:class:`Dataset` is its one writer: it opens and locks the folder, keeps the
cursor, merges new rows into day partitions and commits. Fetching is not its
business: :func:`trs_analytics.export.export_states` combines a fetch and a
``Dataset``. Four rules make every write safe against a crash or a ``SIGKILL``
at any moment:

1. **One rename per change.** A file is written to a hidden temporary name in
   its own folder, flushed to disk, then renamed to its final name
   (:mod:`trs_analytics._atomic`). New rows for a day are merged into the
   day's newest part under the *same* name, or go to a new part; an existing
   row is never written twice. So a reader sees each file before or after a
   change, never half of one, and never one state in two files: readers do
   not depend on a manifest or a clean-up having run. Hidden names (``.``/``_``)
   are skipped by readers, so a crash leaves at worst a hidden temporary file,
   which the next export removes. A full disk or a read-only folder fails the
   rename's write, not the file already there: nothing stored is lost.
2. **The cursor moves last.** ``_trs_dataset.json`` (itself replaced
   atomically) records the end of the last complete window only after every
   file of that window is durable. A killed export leaves the old cursor, so
   the next run reads the window again; rows already stored are recognised by
   state ``id`` and skipped.
3. **One writer.** An export holds an exclusive ``flock`` on ``DIR/.lock``; a
   second export fails at once with :class:`DatasetLockedError` (or waits
   ``wait`` seconds). The lock dies with its process, so a killed export never
   leaves a stale lock.
4. **Nothing is recorded before data.** A new dataset's marker (and so its
   filters) is written just before its first Parquet file, or at its first
   commit. A first export that fails before that removes its lock file (and
   the folder, when it made it and it is empty), so the corrected command
   starts afresh instead of being refused. The lock file may be removed only
   while it is held; a waiting export that then wins the lock on the removed
   file sees that the path no longer names it, and locks the new file instead.

5. **Nothing is followed out of the folder.** The lock file is opened with
   ``O_NOFOLLOW`` and must be a regular file with one link, the marker is
   never read through a link (:func:`~trs_analytics.storage._parquet.read_marker`),
   and a day partition that is a link is refused before anything is written
   into it, so no write lands outside the dataset. A folder inside another
   dataset (its flow-run table, a day partition) is refused as ``--out``.

Small files do not pile up: an export every five minutes keeps merging its
new rows into the day's last part, so a day is one file until it outgrows
``target_file_rows``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Protocol, Self

import polars as pl

from trs_analytics._atomic import storage_error, write_json_atomic
from trs_analytics._progress import Progress
from trs_analytics._time import iso, parse_when
from trs_analytics.exceptions import ConfigurationError, DatasetLockedError, StorageError
from trs_analytics.schema import FLOW_RUNS, TASK_RUNS, RunKind
from trs_analytics.storage._parquet import (
    FLOW_RUN_TABLE,
    MARKER_FORMAT,
    MARKER_NAME,
    MARKER_VERSION,
    _check_file,
    atomic_write_parquet,
    check_path,
    list_parquet_files,
    read_marker,
    read_states_files,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import TracebackType

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_SINCE",
    "MARKER_NAME",
    "Dataset",
    "DatasetInfo",
    "DatasetLockedError",
    "DatasetProgress",
    "ExportRecord",
    "read_dataset_info",
]

logger = logging.getLogger("trs_analytics.storage")

_LOCK_NAME: Final = ".lock"
_FORMAT: Final = MARKER_FORMAT
_FORMAT_VERSION: Final = MARKER_VERSION
_PARTITIONING: Final = "day=YYYY-MM-DD/part-NNNNN.parquet, UTC day of the state timestamp"
#: How far back the first export of a dataset reads when no ``since`` is given.
DEFAULT_SINCE: Final = "7d"
#: How much of the previous window every incremental export reads again.
DEFAULT_OVERLAP: Final = timedelta(minutes=10)
_HISTORY_KEPT: Final = 100


#: How far an export has got; passed to ``on_progress`` after every batch
#: (the record every fetcher reports, see :class:`trs_analytics._progress.Progress`).
DatasetProgress = Progress


class ExportRecord(Protocol):
    """What :meth:`Dataset.commit` records of an export (the export's result, such as
    :class:`trs_analytics.export.ExportResult`): storage knows no export type."""

    @property
    def source(self) -> str: ...
    @property
    def since(self) -> datetime: ...
    @property
    def until(self) -> datetime: ...
    @property
    def states(self) -> int: ...
    @property
    def added(self) -> int: ...
    @property
    def requests(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def seconds(self) -> float: ...


# -- the marker ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    """What a dataset's marker (``_trs_dataset.json``) records.

    Attributes:
        path: the dataset folder.
        filters: the filters every export of this dataset uses, JSON-ready
            (``{"flow_names": ["etl"]}``); empty for every task run.
        cursor: the end of the last complete export window, or ``None``
            before the first one completed.
        history: one JSON record per export, the newest last (at most 100).
        created: when the dataset was created.
        format_version: the marker's format version.
        schema_version: the states schema version of the dataset's files.
        kind: the kind of run whose states the folder holds: ``"task_runs"``
            (the dataset's own folder) or ``"flow_runs"`` (its ``_flow_run_states/``
            table). A marker written before this was recorded is read by the
            folder's name.

    Examples:
        >>> info = DatasetInfo(path=Path("states"), filters={"flow_names": ["etl"]})
        >>> info.exports, info.cursor is None
        (0, True)
        >>> DatasetInfo.from_json(Path("states"), info.to_json()) == info
        True
    """

    path: Path
    filters: dict[str, list[str]] = field(default_factory=dict)
    cursor: datetime | None = None
    history: tuple[dict[str, Any], ...] = ()
    created: datetime | None = None
    format_version: int = _FORMAT_VERSION
    schema_version: int = TASK_RUNS.schema_version
    kind: str = TASK_RUNS.name

    @property
    def exports(self) -> int:
        """How many exports completed (as far as the kept history goes)."""
        return len(self.history)

    def to_json(self) -> dict[str, Any]:
        """The marker's JSON object."""
        return {
            "format": _FORMAT,
            "format_version": self.format_version,
            "kind": self.kind,
            "schema_version": self.schema_version,
            "partitioning": _PARTITIONING,
            "created": iso(self.created) if self.created else None,
            "filters": self.filters,
            "cursor": iso(self.cursor) if self.cursor else None,
            "history": list(self.history),
        }

    @classmethod
    def from_json(cls, path: Path, data: Mapping[str, Any]) -> Self:
        """Read a marker's JSON object (already checked for its format).

        A marker without ``kind`` (written before it was recorded) is of the kind
        whose table lies where it does: ``_flow_run_states/`` holds flow runs.
        """
        cursor, created = data.get("cursor"), data.get("created")
        kind = _kind_named(data.get("kind") or _kind_at(path).name, path)
        return cls(
            path=path,
            filters={k: list(v) for k, v in (data.get("filters") or {}).items()},
            cursor=parse_when(str(cursor)) if cursor else None,
            history=tuple(data.get("history") or ()),
            created=parse_when(str(created)) if created else None,
            format_version=int(data.get("format_version", _FORMAT_VERSION)),
            schema_version=int(data.get("schema_version", kind.schema_version)),
            kind=kind.name,
        )


def _kind_at(path: Path) -> RunKind:
    """The kind of run whose table a folder is, by its name (for markers without a kind)."""
    return FLOW_RUNS if path.name == FLOW_RUNS.folder else TASK_RUNS


def _kind_named(name: object, path: Path) -> RunKind:
    for kind in (TASK_RUNS, FLOW_RUNS):
        if name == kind.name:
            return kind
    msg = f"the marker of {path} names an unknown kind of run {name!r}"
    raise ValueError(msg)


def read_dataset_info(path: str | os.PathLike[str]) -> DatasetInfo:
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
    data = read_marker(Path(path))
    if data is None:
        msg = (
            f"{Path(path)} is not a trs_analytics dataset: it has no {MARKER_NAME}. "
            "Hint: create one with 'trs-analytics export --out DIR'."
        )
        raise StorageError(msg)
    try:
        return DatasetInfo.from_json(Path(path), data)
    except (TypeError, ValueError, ConfigurationError) as err:
        msg = f"{marker} has a field that cannot be read ({err}). Hint: export into a new folder."
        raise StorageError(msg) from err


def _filters_json(filters: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    return {k: sorted(v) for k, v in filters.items() if v}


def _check_kind(out: Path, kind: RunKind, found: str) -> None:
    """Refuse to write ``kind``'s states into the table of another kind (named ``found``)."""
    if found == kind.name:
        return
    msg = (
        f"{out} is the table of {_kind_named(found, out).states_label}, not of "
        f"{kind.states_label}; nothing was written. Hint: pass the dataset folder itself to "
        f"--out: its flow-run table, {FLOW_RUNS.folder}/, is exported with it."
    )
    raise ConfigurationError(msg)


def _inside_dataset(out: Path) -> Path | None:
    """The dataset that holds ``out`` (one of its parents has a marker), or ``None``."""
    for parent in out.absolute().parents:
        if (parent / MARKER_NAME).is_file() or (parent / MARKER_NAME).is_symlink():
            return parent
    return None


def _existing_info(
    out: Path, filters: dict[str, list[str]], kind: RunKind = TASK_RUNS
) -> DatasetInfo | None:
    """The marker of ``out`` if it is a dataset of ``kind`` (with these filters); ``None`` if
    it can be one."""
    if out.exists() and not out.is_dir():
        msg = f"{out} is a file, expected a dataset folder. Hint: pass a folder to --out."
        raise StorageError(msg)
    _check_kind(out, kind, _kind_at(out).name)
    if (out / MARKER_NAME).exists() or (out / MARKER_NAME).is_symlink():
        info = read_dataset_info(out)
        _check_kind(out, kind, info.kind)
        if info.filters != filters:
            msg = (
                f"{out} was exported with filters {info.filters}, this export asks for "
                f"{filters}. Hint: pass the same filters, or export into a new folder; one "
                "dataset holds one selection of task runs so its cursor stays meaningful."
            )
            raise ConfigurationError(msg)
        return info
    foreign = (
        sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) if out.is_dir() else []
    )
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        msg = (
            f"{out} holds other files ({shown}) and no {MARKER_NAME}, so it is not a "
            "trs_analytics dataset; nothing was written. Hint: export into an empty or new folder."
        )
        raise StorageError(msg)
    return None


def _check_not_nested(out: Path, folder: Path) -> None:
    """``out`` is no part of another dataset, and the table ``folder`` no link out of it."""
    if (holder := _inside_dataset(out)) is not None:
        part = out.absolute().relative_to(holder.absolute())
        what = "its flow-run table" if part.parts[:1] == (FLOW_RUN_TABLE,) else f"its {part}"
        msg = (
            f"{out} is {what} of the dataset {holder}; an export writes a whole dataset, and "
            f"writing task runs there would break that dataset. Hint: pass --out {holder}."
        )
        raise ConfigurationError(msg)
    if folder != out and folder.is_symlink():
        msg = (
            f"{folder} is a symbolic link; the dataset's flow-run table is never written "
            "through a link (it could point outside the dataset). Hint: replace it by a folder."
        )
        raise StorageError(msg)


# -- the lock --------------------------------------------------------------


def _same_file(handle: IO[str], path: Path) -> bool:
    try:
        return os.fstat(handle.fileno()).st_ino == path.lstat().st_ino
    except FileNotFoundError:
        return False


def _open_lock_file(path: Path) -> IO[str]:
    """Open (or create) the lock file, never through a link, and only a plain file of its own."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            msg = (
                f"{path} is a symbolic link; the lock file is never followed (writing it "
                "would change the file it points to). Hint: remove the link."
            )
            raise StorageError(msg) from err
        raise storage_error(err, f"cannot create the lock file {path}") from err
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        what = "not a plain file" if not stat.S_ISREG(info.st_mode) else "a hard link"
        msg = (
            f"{path} is {what}; the lock file must be the dataset's own plain file "
            "(writing it would change another). Hint: remove it."
        )
        raise StorageError(msg)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "a+", encoding="utf-8")


def _flock() -> Any:
    """The ``fcntl`` module, whose ``flock`` is the lock: imported when a dataset is written.

    Writing a dataset needs POSIX advisory locks (Linux, macOS, WSL), which die
    with their process. Windows has none: there ``import trs_analytics`` and
    every reader work, and :meth:`Dataset.open` refuses to write a dataset
    before it makes anything.
    """
    try:
        import fcntl
    except ImportError as err:
        msg = (
            "writing a dataset needs POSIX file locks (fcntl.flock), which this platform "
            "does not have. Hint: export from Linux, macOS or WSL; reading a dataset "
            "(scan_states, report, check) works on every platform."
        )
        raise StorageError(msg) from err
    return fcntl


def _acquire(out: Path, *, wait: float) -> IO[str]:
    """Open and ``flock`` ``out/.lock``; the returned handle holds the lock until closed."""
    fcntl = _flock()
    path = out / _LOCK_NAME
    deadline = time.monotonic() + wait
    while True:
        handle = _open_lock_file(path)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() < deadline:
                handle.close()
                time.sleep(0.2)
                continue
            handle.seek(0)
            holder = handle.read(200).strip() or "unknown process"
            handle.close()
            msg = (
                f"{out} is being written by another export ({holder}). Hint: wait for "
                "it to finish, or pass wait=/--wait SECONDS to queue behind it."
            )
            raise DatasetLockedError(msg) from None
        if _same_file(handle, path):  # else a failed first export removed it meanwhile
            return handle
        handle.close()


def _lock(out: Path, *, wait: float) -> IO[str]:
    """Take the lock and write who holds it (for the message a second export prints)."""
    handle = _acquire(out, wait=wait)
    with contextlib.suppress(OSError):  # the note is for people; the flock is the lock
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {iso(datetime.now(UTC))}\n")
        handle.flush()
    return handle


def _release(out: Path, handle: IO[str], *, forget: bool, made_folder: bool) -> None:
    """Release the lock; ``forget``: also remove the lock file (and the folder if we made it)."""
    try:
        if forget and _same_file(handle, out / _LOCK_NAME):
            with contextlib.suppress(OSError):
                (out / _LOCK_NAME).unlink()  # while held: see rule 4
    finally:
        handle.close()
    if forget and made_folder:
        with contextlib.suppress(OSError):
            out.rmdir()  # only when empty


def _any_data(out: Path) -> bool:
    """Whether a day folder of ``out`` holds a data file (a part, not a temporary one)."""
    return any(out.glob("day=*/part-*.parquet"))


def _remove_empty_days(out: Path) -> None:
    for day in out.glob("day=*"):
        if day.is_dir() and not day.is_symlink():
            for tmp in day.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                day.rmdir()  # only when empty


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


def _read(files: list[Path], columns: list[str] | None, kind: RunKind) -> pl.DataFrame:
    try:
        return read_states_files(files, columns, kind)
    except Exception as err:  # polars raises several kinds for a damaged file
        names = ", ".join(str(f) for f in files)
        msg = (
            f"cannot read {names} ({type(err).__name__}: {str(err)[:160]}). Hint: a file of "
            "the dataset is damaged; move it out of the folder and export its days again "
            "with --since."
        )
        raise StorageError(msg) from err


def _merge_day(
    day_dir: Path,
    new: pl.DataFrame,
    *,
    target_file_rows: int,
    kind: RunKind,
) -> int:
    """Add the rows of ``new`` whose ids the day does not have yet; return how many."""
    if day_dir.is_symlink():
        msg = (
            f"{day_dir} is a symbolic link, not a day folder of the dataset; nothing is "
            "written through it (it could point outside the dataset). Hint: replace it by "
            "a plain folder."
        )
        raise StorageError(msg)
    parts = _day_files(day_dir)
    if parts:
        known = _read(parts, ["id"], kind)["id"]
        new = new.filter(~pl.col("id").is_in(known.implode()))
    if new.height == 0:
        return 0
    last = parts[-1] if parts else None
    if last is not None and _rows_in(last) + new.height <= target_file_rows:
        merged = pl.concat([_read([last], None, kind), new], how="vertical")
        atomic_write_parquet(
            merged.sort("timestamp", "id"), last, schema_version=kind.schema_version
        )
    else:
        number = int(last.stem.removeprefix("part-")) + 1 if last is not None else 0
        atomic_write_parquet(
            new.sort("timestamp", "id"),
            day_dir / f"part-{number:05d}.parquet",
            schema_version=kind.schema_version,
        )
    return new.height


class _Writer:
    """Buffers rows by day and merges them into the dataset; ``before_write`` runs first."""

    def __init__(
        self,
        out: Path,
        *,
        flush_rows: int,
        target_file_rows: int,
        before_write: Callable[[], None] | None = None,
        kind: RunKind = TASK_RUNS,
    ) -> None:
        self.out = out
        self.kind = kind
        self.flush_rows = flush_rows
        self.target_file_rows = target_file_rows
        self.before_write = before_write
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
        if frame.height and self.before_write is not None:
            self.before_write()
        day = pl.col("timestamp").dt.date().dt.to_string("%Y-%m-%d").alias("_day")
        for (name,), rows in sorted(
            frame.with_columns(day).partition_by("_day", as_dict=True).items()
        ):
            added = _merge_day(
                self.out / f"day={name}",
                rows.drop("_day").select(self.kind.schema.names()),
                target_file_rows=self.target_file_rows,
                kind=self.kind,
            )
            if added:
                self.added += added
                self.days.add(str(name))


# -- the dataset -----------------------------------------------------------


class Dataset:
    """An open, locked dataset folder: the one writer of its files, cursor and marker.

    Open it with :meth:`open` in a ``with`` block; the lock is held until the
    block ends. Rows go in with :meth:`add` (buffered, merged by state ``id``),
    and :meth:`commit` makes them durable and moves the cursor. See the module
    docstring for why a crash at any moment leaves a readable dataset.

    Attributes:
        path: the dataset folder.
        info: the marker as it stands (for a new dataset, what will be written).
        is_new: ``True`` until the marker is on disk.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp()) / "states"
        >>> with Dataset.open(folder, filters={"flow_names": ["etl"]}) as dataset:
        ...     dataset.is_new, dataset.info.cursor
        (True, None)
        >>> folder.exists()  # nothing was committed: nothing is left behind
        False
    """

    def __init__(
        self,
        path: Path,
        info: DatasetInfo,
        *,
        is_new: bool,
        made_folder: bool,
        lock: IO[str],
        flush_rows: int,
        target_file_rows: int,
        kind: RunKind = TASK_RUNS,
    ) -> None:
        self.path = path
        self.kind = kind
        self.info = info
        self.is_new = is_new
        self._fresh = is_new  # new when opened: a failure before its first commit undoes it
        self._committed = False
        self._made_folder = made_folder
        self._lock = lock
        self._writer = _Writer(
            path,
            flush_rows=flush_rows,
            target_file_rows=target_file_rows,
            before_write=self._write_marker_once,
            kind=kind,
        )

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        filters: Mapping[str, Iterable[str]] | None = None,
        wait: float = 0.0,
        flush_rows: int = 100_000,
        target_file_rows: int = 1_000_000,
        kind: RunKind = TASK_RUNS,
    ) -> Self:
        """Open (or prepare) the dataset at ``path`` and take its lock.

        ``kind=FLOW_RUNS`` opens the dataset's flow-run table instead: the
        ``_flow_run_states/`` folder inside it (``kind.folder``), a dataset of its own
        (marker, cursor, lock) in :data:`~trs_analytics.FLOW_RUN_STATES_SCHEMA`. The
        marker records the kind, so one kind's export never writes into the other's
        table.

        Args:
            path: the dataset folder: missing, empty, or an existing dataset.
            filters: the selection this dataset holds, such as ``{"flow_names": ["etl"]}``;
                an existing dataset must have been made with the same.
            wait: seconds to wait for another writer's lock before giving up.
            flush_rows: rows held in memory before they are written.
            target_file_rows: a day's part file grows up to about this many rows.

        Raises:
            StorageError: ``path`` holds something other than a dataset, a file in it
                is damaged, or the folder cannot be written.
            DatasetLockedError: another export is writing to ``path``.
            ConfigurationError: the filters differ from the dataset's, or ``path`` is
                (or its marker says it is) another kind's table.
        """
        check_path(path, "the dataset folder (out)")
        _flock()  # this platform can lock: said before anything is made
        if flush_rows < 1 or target_file_rows < 1:
            msg = "flush_rows and target_file_rows must be at least 1."
            raise ConfigurationError(msg)
        folder = Path(path) / kind.folder
        _check_not_nested(Path(path), folder)
        wanted = _filters_json(filters or {})
        _existing_info(folder, wanted, kind)  # refuse a foreign folder before the lock file
        made_folder = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise storage_error(err, f"cannot create the dataset folder {folder}") from err
        lock = _lock(folder, wait=wait)
        try:
            info = _existing_info(folder, wanted, kind)  # again, under the lock
            if info is not None:
                _remove_leftovers(folder)
            for file in list_parquet_files(folder):
                _check_file(file, kind)
        except BaseException:
            forget = not (folder / MARKER_NAME).exists()
            _release(folder, lock, forget=forget, made_folder=made_folder)
            raise
        return cls(
            folder,
            info
            or DatasetInfo(
                path=folder,
                filters=wanted,
                created=datetime.now(UTC),
                schema_version=kind.schema_version,
                kind=kind.name,
            ),
            is_new=info is None,
            made_folder=made_folder,
            lock=lock,
            flush_rows=flush_rows,
            target_file_rows=target_file_rows,
            kind=kind,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the lock; a new dataset that holds no data file (its first write
        failed: a full disk) leaves nothing behind, its marker and empty days included."""
        if self._lock.closed:
            return
        forget = self.is_new
        if self._fresh and not self._committed and not _any_data(self.path):
            _remove_empty_days(self.path)
            with contextlib.suppress(OSError):
                (self.path / MARKER_NAME).unlink(missing_ok=True)
            forget = True
        _release(self.path, self._lock, forget=forget, made_folder=self._made_folder)

    def add(self, batch: pl.DataFrame) -> None:
        """Buffer a frame of states; full buffers are merged into their day partitions."""
        self._writer.add(batch)

    def flush(self) -> None:
        """Merge every buffered row into the dataset's files (the cursor stays)."""
        self._writer.flush()

    @property
    def added(self) -> int:
        """Rows written so far that the dataset did not hold."""
        return self._writer.added

    @property
    def days(self) -> tuple[str, ...]:
        """The day partitions written so far, ``YYYY-MM-DD``, sorted."""
        return tuple(sorted(self._writer.days))

    def size(self) -> tuple[int, int]:
        """``(rows, files)`` of the dataset as it is on disk now."""
        files = list_parquet_files(self.path)
        rows = int(pl.scan_parquet(files).select(pl.len()).collect().item()) if files else 0
        return rows, len(files)

    def commit(self, result: ExportRecord, *, started: datetime) -> DatasetInfo:
        """Flush, then move the cursor to ``result.until`` (never back) and record the export."""
        self.flush()
        cursor = self.info.cursor
        if cursor is not None and cursor > datetime.now(UTC):
            cursor = None  # a cursor in the future was never true: the server could not answer it
        entry = {
            "started": iso(started),
            "since": iso(result.since),
            "until": iso(result.until),
            "source": result.source,
            "states": result.states,
            "added": result.added,
            "requests": result.requests,
            "retries": result.retries,
            "seconds": round(result.seconds, 3),
        }
        self.info = replace(
            self.info,
            cursor=result.until if cursor is None else max(result.until, cursor),
            history=(*self.info.history, entry)[-_HISTORY_KEPT:],
        )
        write_json_atomic(self.path / MARKER_NAME, self.info.to_json())
        self.is_new = False
        self._committed = True
        return self.info

    def _write_marker_once(self) -> None:
        if self.is_new:
            write_json_atomic(self.path / MARKER_NAME, self.info.to_json())
            self.is_new = False

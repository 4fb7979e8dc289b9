"""Atomic file writes: readers see the old file or the new one, never half of one.

A base module: it imports nothing of trs_analytics but its exceptions. Every
file the package writes (Parquet files, dataset markers, reports) goes through
:func:`atomic_write`:

1. the bytes go to a hidden temporary file with a unique name in the target's
   own folder (``.NAME.<uuid>.tmp``: two writers never share one, and readers
   skip hidden names);
2. the file is flushed and ``fsync``-ed, so its bytes are on disk;
3. it is renamed over the target with ``os.replace`` (atomic on POSIX), and
   the folder is ``fsync``-ed so the rename itself survives a power cut.

A failure at any step (a full disk, a read-only mount, a crash) leaves the old
target untouched; the temporary file is removed when the process lives on to
do it, and else by the next write of the same target once it is an hour old
(:func:`remove_stale_temporaries`: a killed report's ``.report.html.*.tmp``). ``OSError`` becomes a :class:`~trs_analytics.exceptions.StorageError`
that names the file, the cause and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import time
import uuid
from typing import TYPE_CHECKING, Any, BinaryIO

from trs_analytics.exceptions import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = [
    "STALE_SECONDS",
    "atomic_write",
    "check_writable",
    "fsync_dir",
    "os_error_of",
    "remove_stale_temporaries",
    "storage_error",
    "write_json_atomic",
]

_HINTS = {
    errno.ENOSPC: "the disk is full; free some space or write to another disk",
    errno.EDQUOT: "the disk quota is used up; free some space or write to another disk",
    errno.EROFS: "the file system is mounted read-only; choose a writable folder",
    errno.EACCES: "you may not write there; choose a folder you own",
    errno.EPERM: "you may not write there; choose a folder you own",
}


def storage_error(err: OSError, doing: str) -> StorageError:
    """Turn an ``OSError`` into a one-sentence :class:`StorageError` with a hint.

    Examples:
        >>> err = OSError(errno.ENOSPC, "No space left on device", "/data/x.parquet")
        >>> print(storage_error(err, "cannot write /data/x.parquet"))
        cannot write /data/x.parquet: No space left on device. Hint: the disk is full; free some space or write to another disk. Files written before were left as they were.
    """
    hint = _HINTS.get(err.errno or 0, "check the path and its permissions")
    reason = err.strerror or type(err).__name__
    msg = f"{doing}: {reason}. Hint: {hint}. Files written before were left as they were."
    return StorageError(msg)


#: How a library that writes through its own I/O (Polars, in Rust) names the OS error.
_OS_ERROR = re.compile(r"\(os error (\d+)\)")
#: A temporary file older than this is a killed writer's: the next write of its target removes it.
STALE_SECONDS = 3600.0


def os_error_of(err: BaseException) -> OSError | None:
    """The ``OSError`` behind ``err``: itself, one in its chain, or one a library put
    in its message as ``(os error 28)``; else ``None``.

    Examples:
        >>> os_error_of(RuntimeError("write failed: No space left on device (os error 28)")).errno
        28
        >>> os_error_of(ValueError("bad value")) is None
        True
    """
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        if match := _OS_ERROR.search(str(seen)):
            number = int(match[1])
            return OSError(number, os.strerror(number))
        seen = seen.__cause__ or seen.__context__
    return None


def remove_stale_temporaries(path: Path, *, older_than: float = STALE_SECONDS) -> None:
    """Remove ``.NAME.*.tmp`` files of ``path`` left by a writer killed more than
    ``older_than`` seconds ago (a live writer's file is younger, and is kept)."""
    cutoff = time.time() - older_than
    with contextlib.suppress(OSError):
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                if tmp.lstat().st_mtime < cutoff:
                    tmp.unlink()


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write`` with a binary handle, then put what it wrote at ``path`` atomically.

    Raises:
        StorageError: the folder cannot be made or written (full disk, read-only,
            no permission); ``path`` is then as it was.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> target = Path(tempfile.mkdtemp()) / "sub" / "hello.txt"
        >>> atomic_write(target, lambda handle: handle.write(b"hello")).read_text()
        'hello'
        >>> sorted(p.name for p in target.parent.iterdir())  # no temporary file left
        ['hello.txt']
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if (cause := os_error_of(err)) is not None and isinstance(err, Exception):
            raise storage_error(cause, f"cannot write {path}") from err
        raise
    remove_stale_temporaries(path)
    return path


def write_json_atomic(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented, key-sorted JSON to ``path``, atomically.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> target = Path(tempfile.mkdtemp()) / "marker.json"
        >>> print(write_json_atomic(target, {"b": 1, "a": [2]}).read_text(), end="")
        {
          "a": [
            2
          ],
          "b": 1
        }
    """

    def dump(handle: BinaryIO) -> None:
        handle.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))

    return atomic_write(path, dump)


def check_writable(folder: Path) -> None:
    """Fail now, before a long download, if files cannot be created in ``folder``.

    The folder is created when missing. A probe file is written and removed.

    Raises:
        StorageError: the folder cannot be made or written.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> check_writable(Path(tempfile.mkdtemp()) / "new")
        >>> check_writable(Path("/proc/trs-analytics"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.StorageError: cannot write into /proc/trs-analytics: ...
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".trs-write-probe.{uuid.uuid4().hex}.tmp"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise storage_error(err, f"cannot write into {folder}") from err

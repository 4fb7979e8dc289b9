"""Real full disks and read-only folders for tests of what a failed write leaves.

As root (CI's container), a tiny tmpfs is mounted for the test: full when
filled, or mounted read-only. Otherwise the read-only folder is ``chmod 555``
and the full disk is ``ENOSPC`` injected where every file is written (the
``os.fsync`` of :mod:`trs_analytics._atomic`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import pytest

__all__ = ["disk", "fill", "mounted", "read_only"]


def _mount(folder: Path, options: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@contextlib.contextmanager
def mounted(folder: Path, options: str) -> Iterator[bool]:
    folder.mkdir(parents=True, exist_ok=True)
    ok = _mount(folder, options)
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", str(folder)], check=True)


@contextlib.contextmanager
def disk(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """A folder on a tiny disk; call what it yields to fill the disk up.

    A real 2 MB tmpfs filled with a filler file as root; else ENOSPC injected
    where every file is written (``os.fsync`` of the atomic writer).
    """
    with mounted(folder, "size=2m") as ok:
        if ok:
            yield lambda: fill(folder)
            return

        def no_space(_fd: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        yield lambda: monkeypatch.setattr("trs_analytics._atomic.os.fsync", no_space)


def fill(disk: Path) -> None:
    """Write a filler file until the disk is full."""
    with (disk / f"filler-{uuid.uuid4().hex}").open("wb") as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` made read-only: a read-only tmpfs as root, else ``chmod 555``."""
    with mounted(folder, "ro,size=1m") as ok:
        if not ok:
            folder.chmod(0o555)
        try:
            yield folder
        finally:
            if not ok:
                folder.chmod(0o755)

"""The Prefect lines the tests run against, each from its own virtualenv.

The project's own Prefect (the dev dependency group, 3.9.1) runs from the
project's virtualenv. Older lines each get a virtualenv built with uv, with
their dependencies resolved as they were on the release's date
(``--exclude-newer``), in a cache folder outside the repository::

    $TRS_PREFECT_VENVS/prefect-2.20.16      (when the variable is set)
    $XDG_CACHE_HOME/trs-analytics/prefect-2.20.16
    ~/.cache/trs-analytics/prefect-2.20.16  (otherwise)

:func:`prefect_python` builds a line's virtualenv on first use (a few seconds
with uv; about a second when uv's cache already holds the wheels) and returns
its interpreter. A file lock keeps two processes from building the same one,
and a marker written last tells a finished build from an interrupted one.
Build them ahead of a test run with ``python -m devtools.prefect_lines``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth

__all__ = [
    "LINES",
    "PrefectLine",
    "PrefectLineError",
    "ServerLine",
    "build_venv",
    "prefect_python",
    "venvs_root",
]

#: The file written into a virtualenv once its build finished.
MARKER: Final = ".trs-prefect-line.json"
#: Python of the old lines' virtualenvs.
PYTHON: Final = "3.11"


class PrefectLineError(RuntimeError):
    """A line's virtualenv could not be built."""


class ServerLine(NamedTuple):
    """One Prefect line under test: its server and the workload's ground truth on it."""

    server: PrefectServer
    truth: GroundTruth


@dataclass(frozen=True)
class PrefectLine:
    """One Prefect release line the tests cover.

    Attributes:
        id: the line, e.g. ``"2.20"`` (the ``prefect_line`` fixture's id).
        version: the exact release, e.g. ``"2.20.16"``.
        exclude_newer: the date passed to ``uv pip install --exclude-newer``, or
            None for the project's own Prefect (the running interpreter's).

    Examples:
        >>> line = LINES["2.20"]
        >>> line.version, line.suffix, line.own
        ('2.20.16', '2_20', False)
        >>> LINES["3.9"].own
        True
    """

    id: str
    version: str
    exclude_newer: str | None

    @property
    def suffix(self) -> str:
        """The id as it appears in fixture names: ``2_20``."""
        return self.id.replace(".", "_")

    @property
    def own(self) -> bool:
        """Whether this is the project's own Prefect (no separate virtualenv)."""
        return self.exclude_newer is None

    @property
    def major(self) -> int:
        """The major version: 2 or 3."""
        return int(self.version.split(".")[0])


#: Every line the integration tests cover, by id, oldest first.
LINES: Final[Mapping[str, PrefectLine]] = {
    line.id: line
    for line in (
        PrefectLine("2.20", "2.20.16", "2025-01-15"),
        PrefectLine("3.2", "3.2.15", "2025-04-01"),
        PrefectLine("3.9", "3.9.1", None),
    )
}


def venvs_root(env: Mapping[str, str] | None = None) -> Path:
    """The folder holding the lines' virtualenvs.

    Examples:
        >>> venvs_root({"TRS_PREFECT_VENVS": "/v"})
        PosixPath('/v')
        >>> venvs_root({"XDG_CACHE_HOME": "/c", "HOME": "/h"})
        PosixPath('/c/trs-analytics')
        >>> venvs_root({"HOME": "/h"})
        PosixPath('/h/.cache/trs-analytics')
    """
    env = os.environ if env is None else env
    if env.get("TRS_PREFECT_VENVS"):
        return Path(env["TRS_PREFECT_VENVS"])
    cache = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", "~"), ".cache"))
    return Path(cache).expanduser() / "trs-analytics"


def prefect_python(line: PrefectLine, root: Path | None = None) -> Path:
    """Return the interpreter whose environment has ``line``'s Prefect, building it if needed.

    Raises:
        PrefectLineError: uv is missing or the install failed (the message quotes uv).
    """
    if line.own:
        return Path(sys.executable)
    venv = (root or venvs_root()) / f"prefect-{line.version}"
    if not _is_built(venv, line):
        build_venv(line, venv)
    return venv / "bin" / "python"


def build_venv(line: PrefectLine, venv: Path) -> float:
    """(Re)build ``venv`` with ``line``'s Prefect; return the seconds it took.

    Holds a lock next to ``venv`` meanwhile; another process that finished the
    same build first wins, and this one returns 0.
    """
    if line.exclude_newer is None:
        raise PrefectLineError(f"Prefect {line.version} is the project's own: it has no venv.")
    venv.parent.mkdir(parents=True, exist_ok=True)
    with _locked(venv.with_name(venv.name + ".lock")):
        if _is_built(venv, line):
            return 0.0
        started = time.monotonic()
        shutil.rmtree(venv, ignore_errors=True)
        uv = _uv()
        _run([uv, "venv", str(venv), "--python", PYTHON, "--quiet"])
        python = str(venv / "bin" / "python")
        pin = f"prefect=={line.version}"
        dated = ["--exclude-newer", line.exclude_newer]
        _run([uv, "pip", "install", "--quiet", "--python", python, pin, *dated])
        (venv / MARKER).write_text(json.dumps(_marker(line)) + "\n")
        return time.monotonic() - started


def _marker(line: PrefectLine) -> dict[str, str | None]:
    """What a finished build records: a change to either means a rebuild."""
    return {"version": line.version, "exclude_newer": line.exclude_newer}


def _is_built(venv: Path, line: PrefectLine) -> bool:
    try:
        marker = json.loads((venv / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return bool(marker == _marker(line) and (venv / "bin" / "prefect").exists())


def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        raise PrefectLineError(
            "uv is needed to build the virtualenvs of older Prefect lines. "
            "Hint: pip install uv (or run the tests with `uv run pytest`)."
        )
    return found


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PrefectLineError(
            f"{' '.join(command)} exited with code {result.returncode}:\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the virtualenvs of older Prefect lines.")
    parser.add_argument("lines", nargs="*", default=[k for k, v in LINES.items() if not v.own])
    parser.add_argument("--rebuild", action="store_true", help="rebuild even when built")
    args = parser.parse_args(argv)
    root = venvs_root()
    for key in args.lines:
        line = LINES[key]
        if line.own:
            continue
        venv = root / f"prefect-{line.version}"
        if args.rebuild:
            with contextlib.suppress(FileNotFoundError):
                (venv / MARKER).unlink()
        seconds = build_venv(line, venv)
        state = f"built in {seconds:.1f} s" if seconds else "already built"
        print(f"prefect {line.version}: {venv} ({state})")
    return 0


if __name__ == "__main__":
    sys.exit(_main())

"""Library errors become one ``Error:`` line and an exit code a scheduler can act on.

:data:`EXIT_CODES` is the one table: :func:`exit_on_error` maps an error to
its code, the top-level help and docs/cli.md's table are written from it.
:class:`Group` turns an exception no command foresaw into exit code 70, and
:func:`interruptible` lets Ctrl-C stop an engine computing in native code.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar, cast

import click

from trs_analytics._atomic import os_error_of, storage_error
from trs_analytics.cli._output import current_output
from trs_analytics.engines import out_of_memory
from trs_analytics.exceptions import (
    AuthenticationError,
    ConfigurationError,
    PrefectAPIError,
    ServerError,
    StorageError,
    TransportError,
    TrsAnalyticsError,
)
from trs_analytics.storage import MARKER_NAME, DatasetLockedError, find_damaged_file

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

__all__ = [
    "CRASH_EXIT_CODE",
    "EXIT_CODES",
    "Group",
    "exit_code_help",
    "exit_on_error",
    "interruptible",
]

_T = TypeVar("_T")

logger = logging.getLogger("trs_analytics.cli")


#: The exit code of an unforeseen error (``EX_SOFTWARE``): never ``check``'s 1 ("flagged").
CRASH_EXIT_CODE: Final = 70


#: Exit codes, most specific first: ``(exception class, code, meaning)``; the class
#: is ``None`` for an outcome no exception carries (``check`` flagged something, a
#: crash). The top-level help and docs/cli.md's table are written from this one table.
EXIT_CODES: Final[tuple[tuple[type[BaseException] | None, int, str], ...]] = (
    (DatasetLockedError, 75, "another export is writing the dataset: try again later"),
    (AuthenticationError, 4, "the server refused the credentials"),
    (TransportError, 3, "the server could not be reached: try again later"),
    (ServerError, 3, "the server kept failing (5xx, 429): try again later"),
    (PrefectAPIError, 5, "the server answered, but not with the Prefect API (wrong URL?)"),
    (StorageError, 6, "the dataset or file cannot be read, or written safely (read-only, full)"),
    (ConfigurationError, 2, "a bad option, or no API URL configured"),
    (None, 1, "check: something was flagged (anomaly, stuck run, SLA breach); not an error"),
    (TrsAnalyticsError, 8, "any other error"),
    (None, CRASH_EXIT_CODE, "an unforeseen error (a bug: please report it); one Error: line"),
    (BrokenPipeError, 141, "the output was closed early (such as by | head); nothing is wrong"),
    (KeyboardInterrupt, 130, "interrupted (Ctrl-C); a dataset keeps the files it wrote"),
)


def exit_code_help() -> str:
    """The exit codes of :data:`EXIT_CODES` as help lines, one code a line, sorted.

    Examples:
        >>> print(exit_code_help().splitlines()[2])
          0    ok
    """
    meanings: dict[int, list[str]] = {0: ["ok"]}
    for _, code, meaning in EXIT_CODES:
        meanings.setdefault(code, []).append(meaning)
    lines = [f"  {code:<4} {'; '.join(text)}" for code, text in sorted(meanings.items())]
    return "\b\nExit codes:\n" + "\n".join(lines)


def _fail(err: TrsAnalyticsError) -> NoReturn:
    code = next(code for kind, code, _ in EXIT_CODES if kind and isinstance(err, kind))
    current_output().error(" ".join(str(err).split()))
    sys.exit(code)


def _interrupted(writes: Path | None) -> str:
    """What an interrupt left of the dataset ``writes`` (the export's ``--out``).

    A dataset is one from its marker on (written just before its first data
    file); a first export interrupted before that leaves nothing behind.
    """
    if writes is None:
        return "interrupted."
    if (writes / MARKER_NAME).is_file():
        return "interrupted; the dataset keeps every file written before the interrupt."
    return (
        f"interrupted before the first rows of {writes} were written; the first export "
        "leaves nothing behind (its folder is removed). Run the command again to start afresh."
    )


@contextmanager
def exit_on_error(reads: Path | None = None, *, writes: Path | None = None) -> Iterator[None]:
    """Turn library errors into one ``Error:`` line and the matching exit code.

    ``reads``: the dataset or file the command reads; an engine's error while
    reading it is checked against its files, so a damaged one is named.
    ``writes``: the dataset the command exports into, for what an interrupt left.
    """
    try:
        yield
    except TrsAnalyticsError as err:
        _fail(err)
    except BrokenPipeError:
        _closed_output()
    except KeyboardInterrupt:
        current_output().error(_interrupted(writes))
        sys.exit(130)
    except Exception as err:
        if (cause := os_error_of(err)) is not None:  # a write outside the atomic writer
            where = f" {cause.filename}" if cause.filename else ""
            _fail(storage_error(cause, f"cannot write{where}"))
        if reads is not None and (damaged := find_damaged_file(reads)) is not None:
            _fail(damaged)
        if (hint := out_of_memory(err)) is not None:
            _fail(TrsAnalyticsError(hint))
        raise


def _crash(err: BaseException) -> NoReturn:
    """An unforeseen error: one ``Error:`` line (JSON with --log-format json), exit 70."""
    logger.info("the traceback of the unforeseen error", exc_info=err)
    current_output().error(
        f"an unforeseen error ({type(err).__name__}: {' '.join(str(err).split())[:300]}). "
        "Hint: this is a bug in trs_analytics; please report it with the command and -v output."
    )
    sys.exit(CRASH_EXIT_CODE)


def _closed_output() -> NoReturn:
    """The reader of stdout went away (``| head``): stop quietly, as ``cat`` does."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(141)


class Group(click.Group):
    """The command group: an exception no command foresaw becomes :func:`_crash`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            _closed_output()
        except Exception as err:
            _crash(err)


def interruptible(work: Callable[[], _T], message: str) -> _T:
    """Run ``work`` so that Ctrl-C stops it at once: ``Error: <message>``, exit code 130.

    An engine computing in native code (a Polars collect, a DuckDB query, a
    Spark job) does not return to Python for minutes, so a KeyboardInterrupt
    raised in it would wait for the query to end. ``work`` runs in a daemon
    thread instead, the main thread waits for it interruptibly, and on Ctrl-C
    the process ends at once (nothing half-written: the report is written
    atomically at the very end).
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as err:  # handed to the main thread below
            outcome["error"] = err

    context = contextvars.copy_context()  # what the group set (the hints' spelling) holds there
    thread = threading.Thread(
        target=context.run, args=(target,), name="trs-analytics-work", daemon=True
    )
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        current_output().error(message)
        sys.stderr.flush()
        os._exit(130)
    if "error" in outcome:
        raise outcome["error"]
    return cast("_T", outcome["value"])

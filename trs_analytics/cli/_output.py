"""Where the CLI's messages go: plain text, or JSON lines with ``--log-format json``.

:class:`Output` holds the output options (given before or after the
subcommand), installs the package's log handler, and writes the summary line
(stdout) and the one ``Error:`` line (stderr), credentials redacted.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from trs_analytics._format import terminal_text
from trs_analytics._redact import redact
from trs_analytics._time import iso

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "LOG_FORMAT_HELP",
    "QUIET_HELP",
    "VERBOSE_HELP",
    "Output",
    "current_output",
    "with_output_options",
]


class _JSONFormatter(logging.Formatter):
    """One JSON object per log record, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": iso(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        data.update(getattr(record, "fields", {}))
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, default=str)


class _TextFormatter(logging.Formatter):
    """``LEVEL: message``, credentials redacted."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        lines = redact(super().format(record)).split("\n")  # a traceback keeps its lines
        return "\n".join(terminal_text(line) for line in lines)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is now (progress bars and test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # a logging failure must not end the export
            self.handleError(record)


class Output:
    """Where the CLI's messages go: plain text, or JSON lines with ``--log-format json``."""

    def __init__(self, *, log_format: str, quiet: bool, verbose: bool) -> None:
        self.handler = _StderrHandler()
        self.json, self.quiet, self.verbose = False, False, False
        self.configure(log_format=log_format, quiet=quiet, verbose=verbose)

    def configure(
        self, *, log_format: str | None = None, quiet: bool = False, verbose: bool = False
    ) -> None:
        """Apply output options, given before or after the subcommand (later ones add)."""
        if log_format is not None:
            self.json = log_format == "json"
        self.quiet = self.quiet or quiet
        self.verbose = self.verbose or verbose
        self.handler.setFormatter(_JSONFormatter() if self.json else _TextFormatter())
        self.level = logging.INFO if (self.verbose or self.json) else logging.WARNING
        logging.getLogger("trs_analytics").setLevel(self.level)

    def install(self) -> None:
        package = logging.getLogger("trs_analytics")
        package.addHandler(self.handler)
        package.setLevel(self.level)

    def uninstall(self) -> None:
        logging.getLogger("trs_analytics").removeHandler(self.handler)

    def summary(self, text: str, **fields: Any) -> None:
        """The result line: stdout, unless ``--quiet``."""
        if self.quiet:
            return
        if self.json:
            record = {"time": _now_iso(), "level": "info", "message": text, **fields}
            click.echo(json.dumps(record, default=str))
        else:
            click.echo(terminal_text(text))

    def error(self, message: str) -> None:
        """The one ``Error:`` line, on stderr, credentials redacted."""
        message = redact(message)
        if self.json:
            record = {"time": _now_iso(), "level": "error", "message": f"Error: {message}"}
            click.echo(json.dumps(record), err=True)
        else:
            click.echo(f"Error: {terminal_text(message)}", err=True)

    def progress_enabled(self) -> bool:
        return not self.quiet and not self.json and sys.stderr.isatty()


def _now_iso() -> str:
    return iso(datetime.now(UTC))


def current_output() -> Output:
    """The running command's :class:`Output` (text, not quiet, when none is set)."""
    out = click.get_current_context().find_object(Output)
    return out if out is not None else Output(log_format="text", quiet=False, verbose=False)


def _set_output(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Callback of the output options a subcommand repeats (``export -q``)."""
    output = ctx.find_object(Output)
    if output is None or value in (None, False):
        return
    if param.name == "log_format":
        output.configure(log_format=value)
    else:
        output.configure(quiet=param.name == "quiet", verbose=param.name == "verbose")


LOG_FORMAT_HELP = (
    "json: logs, the summary and errors as one JSON object a line, for log collectors."
)
QUIET_HELP = "No progress bar and no summary line."
VERBOSE_HELP = "Log what is being done (INFO level)."


def with_output_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Accept -q, -v and --log-format after the subcommand too, as users type them."""
    options = [
        click.option(
            "--log-format", type=click.Choice(["text", "json"]), default=None,
            expose_value=False, is_eager=True, callback=_set_output, help=LOG_FORMAT_HELP,
        ),
        click.option(
            "--quiet", "-q", is_flag=True, expose_value=False, is_eager=True,
            callback=_set_output, help=QUIET_HELP,
        ),
        click.option(
            "--verbose", "-v", is_flag=True, expose_value=False, is_eager=True,
            callback=_set_output, help=VERBOSE_HELP,
        ),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn

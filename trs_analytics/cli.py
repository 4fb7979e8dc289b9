"""The ``trs-analytics`` command: export, fetch, info, report, check, serve-metrics, metrics.

Each command parses its options, calls the library, and turns a library error
into one ``Error: ...`` line on stderr and an exit code a scheduler can act on
(see :data:`EXIT_CODES` and ``docs/cli.md``). Nothing here computes anything.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import os
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar, cast

import click

from trs_analytics._atomic import check_writable, os_error_of, storage_error
from trs_analytics._format import cli_spelling, count_text, terminal_text
from trs_analytics._progress import progress_bar, steps_bar
from trs_analytics._redact import redact
from trs_analytics._time import iso, parse_age, parse_when
from trs_analytics.client import PrefectClient
from trs_analytics.engines import check_engine, import_engine
from trs_analytics.exceptions import (
    AuthenticationError,
    ConfigurationError,
    PrefectAPIError,
    ServerError,
    StorageError,
    TransportError,
    TrsAnalyticsError,
)
from trs_analytics.export import export_states
from trs_analytics.fetch import FilterKwargs, fetch_flow_run_states, fetch_states
from trs_analytics.schema import FLOW_RUNS, STATE_TYPES, TASK_RUNS
from trs_analytics.storage import (
    DEFAULT_OVERLAP,
    MARKER_NAME,
    DatasetLockedError,
    find_damaged_file,
    require_parquet,
    scan_states,
    summarize_states,
    write_flow_run_states,
    write_states,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from trs_analytics.fetch import Source

__all__ = ["CRASH_EXIT_CODE", "EXIT_CODES", "main"]

_T = TypeVar("_T")


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


def _exit_code_help() -> str:
    """The exit codes of :data:`EXIT_CODES` as help lines, one code a line, sorted.

    Examples:
        >>> print(_exit_code_help().splitlines()[2])
          0    ok
    """
    meanings: dict[int, list[str]] = {0: ["ok"]}
    for _, code, meaning in EXIT_CODES:
        meanings.setdefault(code, []).append(meaning)
    lines = [f"  {code:<4} {'; '.join(text)}" for code, text in sorted(meanings.items())]
    return "\b\nExit codes:\n" + "\n".join(lines)


logger = logging.getLogger("trs_analytics.cli")


# -- output: text or JSON lines --------------------------------------------


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


class _Output:
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


def _output() -> _Output:
    out = click.get_current_context().find_object(_Output)
    return out if out is not None else _Output(log_format="text", quiet=False, verbose=False)


def _fail(err: TrsAnalyticsError) -> NoReturn:
    code = next(code for kind, code, _ in EXIT_CODES if kind and isinstance(err, kind))
    _output().error(" ".join(str(err).split()))
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
def _errors(reads: Path | None = None, *, writes: Path | None = None) -> Iterator[None]:
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
        _output().error(_interrupted(writes))
        sys.exit(130)
    except Exception as err:
        if (cause := os_error_of(err)) is not None:  # a write outside the atomic writer
            where = f" {cause.filename}" if cause.filename else ""
            _fail(storage_error(cause, f"cannot write{where}"))
        if reads is not None and (damaged := find_damaged_file(reads)) is not None:
            _fail(damaged)
        raise


def _crash(err: BaseException) -> NoReturn:
    """An unforeseen error: one ``Error:`` line (JSON with --log-format json), exit 70."""
    logger.info("the traceback of the unforeseen error", exc_info=err)
    _output().error(
        f"an unforeseen error ({type(err).__name__}: {' '.join(str(err).split())[:300]}). "
        "Hint: this is a bug in trs_analytics; please report it with the command and -v output."
    )
    sys.exit(CRASH_EXIT_CODE)


def _closed_output() -> NoReturn:
    """The reader of stdout went away (``| head``): stop quietly, as ``cat`` does."""
    import os

    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(141)


class _Group(click.Group):
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


def _interruptible(work: Callable[[], _T], message: str) -> _T:
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
        _output().error(message)
        sys.stderr.flush()
        os._exit(130)
    if "error" in outcome:
        raise outcome["error"]
    return cast("_T", outcome["value"])


# -- option types ------------------------------------------------------------


def _duration(_ctx: click.Context, _param: click.Parameter, value: str) -> timedelta:
    try:
        age = parse_age(value)
    except ConfigurationError as err:
        raise click.BadParameter(str(err)) from err
    if age is None:
        msg = f"{value!r} is not a duration. Use a number and a unit, such as 90s, 10m, 2h or 1d."
        raise click.BadParameter(msg)
    return age


def _web_url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """An http(s) address with a host, or None; anything else (``javascript:``) is refused."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value.strip())
    except ValueError as err:
        msg = f"{value!r} is not a valid URL ({err})."
        raise click.BadParameter(msg) from err
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        msg = f"{value!r} is not an http(s) address. Use one such as http://127.0.0.1:4200."
        raise click.BadParameter(msg)
    return value.strip()


def _set_output(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Callback of the output options a subcommand repeats (``export -q``)."""
    output = ctx.find_object(_Output)
    if output is None or value in (None, False):
        return
    if param.name == "log_format":
        output.configure(log_format=value)
    else:
        output.configure(quiet=param.name == "quiet", verbose=param.name == "verbose")


_LOG_FORMAT_HELP = (
    "json: logs, the summary and errors as one JSON object a line, for log collectors."
)
_QUIET_HELP = "No progress bar and no summary line."
_VERBOSE_HELP = "Log what is being done (INFO level)."


def _output_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Accept -q, -v and --log-format after the subcommand too, as users type them."""
    options = [
        click.option(
            "--log-format", type=click.Choice(["text", "json"]), default=None,
            expose_value=False, is_eager=True, callback=_set_output, help=_LOG_FORMAT_HELP,
        ),
        click.option(
            "--quiet", "-q", is_flag=True, expose_value=False, is_eager=True,
            callback=_set_output, help=_QUIET_HELP,
        ),
        click.option(
            "--verbose", "-v", is_flag=True, expose_value=False, is_eager=True,
            callback=_set_output, help=_VERBOSE_HELP,
        ),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


_STATE_TYPE = click.Choice(STATE_TYPES, case_sensitive=False)


def _filter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the six filter options; the command receives them as one ``filters`` dict."""

    @functools.wraps(fn)
    def command(**kwargs: Any) -> Any:
        filters = {name: kwargs.pop(name) for name in FilterKwargs.__annotations__}
        return fn(filters=cast("FilterKwargs", filters), **kwargs)

    options = [
        click.option(
            "--flow", "flow_names", multiple=True, help="Keep runs of this flow (repeatable)."
        ),
        click.option(
            "--deployment",
            "deployments",
            multiple=True,
            help="Keep runs of this deployment, by name or id (repeatable).",
        ),
        click.option(
            "--work-pool", "work_pools", multiple=True, help="Keep runs of this work pool."
        ),
        click.option(
            "--task", "task_names", multiple=True, help="Keep this task name (repeatable)."
        ),
        click.option("--tag", "tags", multiple=True, help="Keep runs carrying every tag given."),
        click.option(
            "--state-type",
            "state_types",
            multiple=True,
            type=_STATE_TYPE,
            help="Keep runs whose current state has this type (repeatable).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _client_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--api-url",
            metavar="URL",
            help="Prefect API URL, such as http://127.0.0.1:4200/api. "
            "Default: PREFECT_API_URL, then the active Prefect profile.",
        ),
        click.option(
            "--concurrency", type=click.IntRange(1, 64), default=8, show_default=True,
            help="Requests in flight at once.",
        ),
        click.option(
            "--requests-per-minute", type=click.FloatRange(min=1), default=None,
            help="Stay under this request rate (Prefect Cloud limits per account).",
        ),
        click.option(
            "--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
            help="Seconds to wait for one response.",
        ),
        click.option(
            "--max-attempts", type=click.IntRange(1, 20), default=6, show_default=True,
            help="Attempts per request; 429, 5xx and dropped connections are retried.",
        ),
        click.option(
            "--max-retry-wait", type=click.FloatRange(min=0), default=300.0, show_default=True,
            metavar="SECONDS",
            help="The most one request waits between its attempts, all waits together "
            "(Retry-After included); beyond it the request fails.",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def _client(options: dict[str, Any]) -> PrefectClient:
    return PrefectClient(
        options["api_url"],
        concurrency=options["concurrency"],
        requests_per_minute=options["requests_per_minute"],
        timeout=options["timeout"],
        max_attempts=options["max_attempts"],
        max_retry_wait=options["max_retry_wait"],
    )


# -- the commands --------------------------------------------------------------


_MAIN_HELP = """Task-run state analytics for Prefect: export states to Parquet, report on them.

-q, -v and --log-format may also be given after the command (export -q).

\b
Example:
  trs-analytics report data/sample_states.parquet --out report.html
  trs-analytics export --api-url http://127.0.0.1:4200/api --out states/
  trs-analytics check states/ --rules sla.toml

"""


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    help=_MAIN_HELP + _exit_code_help(),
)
@click.version_option(package_name="trs-analytics")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help=_LOG_FORMAT_HELP,
)
@click.option("--quiet", "-q", is_flag=True, help=_QUIET_HELP)
@click.option("--verbose", "-v", is_flag=True, help=_VERBOSE_HELP)
@click.pass_context
def main(ctx: click.Context, log_format: str, quiet: bool, verbose: bool) -> None:
    output = _Output(log_format=log_format, quiet=quiet, verbose=verbose)
    output.install()
    ctx.call_on_close(output.uninstall)
    ctx.obj = output
    ctx.with_resource(cli_spelling())  # hints name options (--api-url), not api_url=


@main.command()
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="The dataset folder (created if missing; must be empty or a dataset).",
)
@click.option(
    "--since",
    metavar="WHEN",
    help="Start of the window: ISO-8601 (2026-01-01T00:00:00Z), a date, or an age (7d). "
    "Default: the dataset's cursor minus --overlap; 7d for a new dataset.",
)
@click.option("--until", metavar="WHEN", help="End of the window (exclusive). Default: now.")
@click.option(
    "--source",
    type=click.Choice(["auto", "events", "states"]),
    default="auto",
    show_default=True,
    help="auto: events inside the server's event retention (7 days), per-run states before "
    "it and for the last 2 minutes (events lag).",
)
@click.option(
    "--overlap",
    default=f"{int(DEFAULT_OVERLAP.total_seconds() // 60)}m",
    show_default=True,
    callback=_duration,
    metavar="AGE",
    help="How much before the cursor is read again, to catch states recorded late.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Wait this long for another export of the same dataset to finish (else exit 75).",
)
@click.option(
    "--flush-rows",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="States held in memory before they are written to the dataset.",
)
@click.option(
    "--flow-runs/--no-flow-runs",
    default=True,
    show_default=True,
    help="Also export flow-run states into the dataset's flow-run table (_flow_run_states/).",
)
@_filter_options
@_client_options
@_output_options
def export(
    out: Path,
    since: str | None,
    until: str | None,
    source: str,
    overlap: timedelta,
    wait: float,
    flush_rows: int,
    flow_runs: bool,
    filters: FilterKwargs,
    **client_options: Any,
) -> None:
    """Export task-run states into a Parquet dataset partitioned by day, incrementally.

    The first run reads the last 7 days (or --since). Each later run starts at
    the dataset's cursor minus --overlap and skips states it already holds, so
    running it twice adds nothing. Writes are atomic and a lock keeps two runs
    apart. It prints the source it used and a summary line. Flow-run states go
    to the dataset's flow-run table with a cursor of their own (--no-flow-runs:
    not); a dataset made before that table gains it on its next export.

    \b
    Example:
      trs-analytics export --api-url http://127.0.0.1:4200/api --since 7d --out states/
    """
    output = _output()
    with _errors(writes=out), ExitStack() as stack:
        client = stack.enter_context(_client(client_options))
        bar = progress_bar(output.progress_enabled(), title="export")
        on_progress = stack.enter_context(bar)
        result = export_states(
            out,
            client=client,
            since=since,
            until=until,
            source=cast("Source", source),
            overlap=overlap,
            wait=wait,
            flush_rows=flush_rows,
            on_progress=on_progress,
            progress=False,  # the bar above, or none (--quiet, JSON, not a terminal)
            flow_runs=flow_runs,
            **filters,
        )
    output.summary(result.summary(), event="export", **result.as_dict())


@main.command()
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Parquet file to write.",
)
@click.option(
    "--since", metavar="WHEN", default="1d", show_default=True, help="Start of the window."
)
@click.option("--until", metavar="WHEN", help="End of the window (exclusive). Default: now.")
@click.option(
    "--source",
    type=click.Choice(["auto", "events", "states"]),
    default="auto",
    show_default=True,
    help="Where states are read from (see export).",
)
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option(
    "--flow-runs",
    is_flag=True,
    help="Fetch flow-run states (FLOW_RUN_STATES_SCHEMA) instead of task-run states.",
)
@_filter_options
@_client_options
@_output_options
def fetch(
    out: Path,
    since: str,
    until: str | None,
    source: str,
    force: bool,
    flow_runs: bool,
    filters: FilterKwargs,
    **client_options: Any,
) -> None:
    """Fetch the task-run (or --flow-runs: flow-run) states of one window into one Parquet file.

    \b
    Example:
      trs-analytics fetch --api-url http://127.0.0.1:4200/api --since 1d --out states.parquet
      trs-analytics fetch --flow-runs --since 1d --out flow_runs.parquet
    """
    kind, read, write = (
        (FLOW_RUNS, fetch_flow_run_states, write_flow_run_states)
        if flow_runs
        else (TASK_RUNS, fetch_states, write_states)
    )
    output = _output()
    started = time.monotonic()
    with _errors():
        if out.exists() and not force:
            msg = f"{out} exists. Hint: pass --force to replace it, or choose another --out."
            raise StorageError(msg)
        check_writable(out.parent)  # now, not after a download of minutes
        with _client(client_options) as client:
            states = read(
                client=client,
                since=since,
                until=until,
                source=cast("Source", source),
                progress=output.progress_enabled(),
                **filters,
            )
            write(states, out)
            requests = client.stats.requests
    runs = states[kind.id_column].n_unique()
    seconds = time.monotonic() - started
    output.summary(
        f"fetched {count_text(runs, kind.noun, grouped=False)}, "
        f"{count_text(states.height, 'state', grouped=False)} in "
        f"{count_text(requests, 'request', grouped=False)}, "
        f"{seconds:.1f} s; wrote {out}",
        event="fetch",
        out=str(out),
        **{kind.name: runs},
        states=states.height,
        requests=requests,
        seconds=round(seconds, 3),
    )


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@_output_options
def info(path: Path, as_json: bool) -> None:
    """Summarise a dataset folder or Parquet file of states.

    Prints the path, states, task_runs, first and last (the oldest and newest
    state time, UTC); for a dataset also its cursor, filters and the number of
    exports, and for its flow-run table the same as flow_run_states, flow_runs,
    flow_run_first, flow_run_last, flow_run_cursor, flow_run_filters and
    flow_run_exports.

    \b
    Example:
      trs-analytics info states/
    """
    with _errors(reads=path):
        facts = summarize_states(path).as_dict()
    if as_json:
        click.echo(json.dumps(facts, default=str))
        return
    for key, value in facts.items():
        click.echo(f"{key}: {value}")


def _scan_on(path: Path, engine: str, memory_limit: str | None) -> Any:
    """Open PATH's states on ENGINE (DuckDB with its memory limit)."""
    connection = _duckdb_connection(engine, memory_limit)
    return scan_states(path, engine=check_engine(engine), connection=connection)


def _duckdb_connection(engine: str, memory_limit: str | None) -> Any:
    """A DuckDB connection in UTC with --memory-limit, for --engine duckdb; else ``None``."""
    if memory_limit is not None and engine != "duckdb":
        msg = f"--memory-limit is for --engine duckdb, not {engine}. Hint: add --engine duckdb."
        raise ConfigurationError(msg)
    if engine != "duckdb":
        return None
    duckdb = import_engine("duckdb")
    connection = duckdb.connect()
    connection.sql("SET TimeZone = 'UTC'")
    if memory_limit is not None:
        try:
            connection.sql(f"SET memory_limit = '{memory_limit.replace(chr(39), '')}'")
        except duckdb.Error as err:
            msg = (
                f"--memory-limit {memory_limit!r} is not a size DuckDB understands "
                f"({str(err).splitlines()[0][:120]}). Hint: use a number and a unit, such as 2GB."
            )
            raise ConfigurationError(msg) from err
    return connection


def _flow_runs_for_report(path: Path, explicit: Path | None) -> Any:
    """The flow-run states the report draws: ``explicit``, else the dataset's own table.

    ``None`` when there are none (a Parquet file of task-run states, a dataset
    exported before its flow-run table existed): the report is then as before.
    """
    from trs_analytics.storage import FLOW_RUN_TABLE, scan_flow_run_states

    source = explicit or (path if (path / FLOW_RUN_TABLE).is_dir() else None)
    if source is None:
        return None
    frame = scan_flow_run_states(source).collect()
    return None if frame.is_empty() else frame


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML report to write.",
)
@click.option("--title", help='The page title. Default: "Task-run report".')
@click.option(
    "--period",
    default="auto",
    show_default=True,
    metavar="AGE",
    help="Compare the last period with the one before it, for regressions (1d, 7d); "
    "auto: the longest of 1m, 5m, 10m, 15m, 30m, 1h, 3h, 6h, 12h, 1d, 7d that fits twice "
    "in the data.",
)
@click.option(
    "--engine",
    type=click.Choice(["polars", "duckdb", "spark"]),
    default="polars",
    show_default=True,
    help="Where the metrics run: Polars (in memory), DuckDB (larger than memory; "
    "pip install 'trs-analytics[duckdb]') or Spark ('trs-analytics[spark]').",
)
@click.option(
    "--memory-limit",
    metavar="SIZE",
    help="With --engine duckdb: DuckDB's memory_limit (e.g. 2GB); it spills to disk beyond.",
)
@click.option(
    "--ui-url",
    metavar="URL",
    callback=_web_url,
    help="The Prefect UI address that run ids link to (e.g. http://127.0.0.1:4200).",
)
@click.option(
    "--flow-run-states",
    type=click.Path(exists=True, path_type=Path),
    help="Flow-run states (a dataset, its _flow_run_states/ table or a Parquet file) for the "
    "report's 'Flow runs' part. Default: the dataset's own flow-run table, when it has one.",
)
@click.option(
    "--rules",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SLA rules (TOML, docs/sla.md) whose breaches the report lists.",
)
@_output_options
def report(
    path: Path,
    out: Path,
    title: str | None,
    period: str,
    engine: str,
    memory_limit: str | None,
    ui_url: str | None,
    flow_run_states: Path | None,
    rules: Path | None,
) -> None:
    """Write the HTML report of a dataset folder or a Parquet file of states.

    No server is needed: it reads only PATH. The page is self-contained (works offline).
    Every section is computed on --engine; a terminal shows the section in hand, -v logs
    each section's time, and Ctrl-C stops it at once.

    \b
    Example:
      trs-analytics report data/sample_states.parquet --out report.html
      trs-analytics report states/ --out report.html --engine duckdb --memory-limit 2GB
      trs-analytics report data/sample_states.parquet --out report.html \\
        --flow-run-states data/sample_flow_run_states.parquet
    """
    from trs_analytics.check import load_rules
    from trs_analytics.report import write_report

    output = _output()
    started = time.monotonic()
    with _errors(reads=path), steps_bar(output.progress_enabled(), title="report") as on_section:
        check_writable(out.absolute().parent)  # now, not after minutes of computing
        chosen = load_rules(rules) if rules is not None else []
        require_parquet(path, to="report on")
        states = _scan_on(path, engine, memory_limit)
        written = _interruptible(
            lambda: write_report(
                states,
                out,
                title=title,
                period=period,
                ui_url=ui_url,
                flow_run_states=_flow_runs_for_report(path, flow_run_states),
                rules=chosen,
                on_section=on_section,
            ),
            "interrupted; no report was written.",
        )
    seconds = time.monotonic() - started
    output.summary(
        f"wrote {written} from {path} in {seconds:.1f} s",
        event="report",
        out=str(written),
        path=str(path),
        seconds=round(seconds, 3),
    )


def _positive_age(text: str, option: str) -> timedelta:
    span = parse_age(text)
    if span is None or span <= timedelta(0):
        msg = f"{option} {text!r} is not a positive age. Hint: use '9m', '30m' or '1h'."
        raise ConfigurationError(msg)
    return span


@main.command()
@click.argument("path", type=click.Path(path_type=Path), required=False)
@click.option(
    "--since",
    metavar="WHEN",
    help="With --api-url: start of the window fetched (default 7d). With PATH: read the "
    "states from then on (default: what the checks need, the recent period and the 14 days "
    "of training before it; docs/sla.md). The history the checks learn from.",
)
@click.option(
    "--rules",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SLA rules, a TOML file of [[rule]] tables (docs/sla.md).",
)
@click.option(
    "--recent",
    default="1d",
    show_default=True,
    metavar="AGE",
    help="Report what happened in this last period (older states are history); its failure "
    "rate is tested as one window ending at --now.",
)
@click.option(
    "--every",
    default="1d",
    show_default=True,
    metavar="AGE",
    help="Bucket width of the anomaly detection and of the per-run SLA checks.",
)
@click.option("--now", metavar="WHEN", help="Check as of this time (default: now).")
@click.option(
    "--stuck-after",
    metavar="AGE",
    help="A run open (Running or Pending) longer than this is stuck, whatever its history.",
)
@click.option(
    "--min-history",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Finished runs a task needs before its p99 bounds its open runs (fewer: its "
    "deployment's, then its flow's runs).",
)
@click.option(
    "--engine",
    type=click.Choice(["polars", "duckdb", "spark"]),
    default="polars",
    show_default=True,
    help="With PATH: where the checks run: Polars, DuckDB (larger than memory; "
    "pip install 'trs-analytics[duckdb]') or Spark ('trs-analytics[spark]').",
)
@click.option(
    "--memory-limit",
    metavar="SIZE",
    help="With --engine duckdb: DuckDB's memory_limit (e.g. 1GB); it spills to disk beyond.",
)
@click.option(
    "--heartbeat-after",
    metavar="AGE",
    help="Prefect 3.6.22+ (flow runs send prefect.flow-run.heartbeat events, every 180 s by "
    "default): flag the open task runs of a flow run silent for longer than AGE (e.g. 9m) as hung.",
)
@click.option(
    "--emit-events",
    is_flag=True,
    help="Post each new finding as a Prefect event (POST /api/events, Prefect 3) for "
    "automations, and trs-analytics.<kind>.resolved once a later check no longer sees it.",
)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --emit-events: the file that remembers the open findings. Default: "
    "check-state.json in the PATH folder (required without a folder).",
)
@click.option(
    "--ui-url",
    metavar="URL",
    callback=_web_url,
    help="The Prefect UI address that runs link to (default: derived from the API URL).",
)
@_client_options
@_output_options
def check(
    path: Path | None,
    since: str | None,
    rules: Path | None,
    recent: str,
    every: str,
    now: str | None,
    stuck_after: str | None,
    min_history: int,
    heartbeat_after: str | None,
    engine: str,
    memory_limit: str | None,
    emit_events: bool,
    state_file: Path | None,
    ui_url: str | None,
    **client_options: Any,
) -> None:
    """Check for anomalies, stuck runs and SLA breaches; exit 1 when something is flagged.

    Reads PATH (a dataset folder or Parquet file: only the states the checks
    need, on --engine) or, without PATH, fetches the states of --since (7d)
    from the server. Prints one line per finding and a summary line (JSON
    lines with --log-format json). Exit codes: 0 nothing flagged, 1 something
    flagged, others as for every command.

    \b
    Example:
      trs-analytics check --api-url http://127.0.0.1:4200/api --since 7d --rules sla.toml
      trs-analytics check states/ --rules sla.toml --emit-events --stuck-after 2h
      trs-analytics check states/ --engine duckdb --memory-limit 1GB
    """

    from trs_analytics.check import check_from, load_rules, state_path

    output = _output()
    with _errors(reads=path), ExitStack() as stack:
        if path is None and (engine != "polars" or memory_limit is not None):
            msg = (
                "--engine and --memory-limit are for PATH. Hint: pass a dataset folder or "
                "Parquet file, or drop them to check the states fetched with --api-url."
            )
            raise ConfigurationError(msg)
        if emit_events:
            state_path(path, state_file)  # says a missing state file before the server is asked
        client = None
        if path is None or emit_events or heartbeat_after:
            client = stack.enter_context(_client(client_options))
        outcome = check_from(
            path,
            client=client,
            rules=load_rules(rules) if rules is not None else [],
            now=parse_when(now) if now else None,
            since=since,
            recent=recent,
            every=every,
            ui_url=ui_url,
            stuck_after=stuck_after,
            min_history=min_history,
            heartbeat_after=(
                _positive_age(heartbeat_after, "--heartbeat-after") if heartbeat_after else None
            ),
            engine=engine,
            connection=_duckdb_connection(engine, memory_limit) if path is not None else None,
            emit_events=emit_events,
            state=state_file,
            progress=output.progress_enabled(),
        )
    result = outcome.result
    posted, resolved = len(outcome.emitted.opened), len(outcome.emitted.resolved)
    for row in result.findings.iter_rows(named=True):
        fields = {k: (iso(v) if isinstance(v, datetime) else v) for k, v in row.items()}
        text = f"{row['kind']:<8} {row['check']:<16} {row['subject']}: {row['message']}"
        if row["url"]:
            text += f" {row['url']}"
        output.summary(text, event="finding", **fields)
    output.summary(
        result.summary(),
        event="check",
        flagged=result.flagged,
        runs=result.runs,
        rules=result.rules,
        events=posted,
        resolved=resolved,
        **result.counts(),
    )
    if result.flagged:
        sys.exit(1)


# -- Prometheus: serve-metrics and metrics ------------------------------------


def _exporter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options serve-metrics and metrics share: window, engine, series."""
    options = [
        click.option(
            "--window", default="1d", show_default=True, metavar="AGE",
            help="Width of the window of the quantiles, failure rates and check findings.",
        ),
        click.option(
            "--now", metavar="WHEN",
            help="End of the window. Default: the dataset's cursor (else its newest state).",
        ),
        click.option(
            "--engine", type=click.Choice(["polars", "duckdb", "spark"]), default="polars",
            show_default=True, help="Where the metrics run (as for report).",
        ),
        click.option(
            "--memory-limit", metavar="SIZE", help="With --engine duckdb: its memory_limit.",
        ),
        click.option(
            "--max-series", type=click.IntRange(min=1), default=200, show_default=True,
            help='Groups with series of their own; the rest are summed into "(other)".',
        ),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def _metrics_source(path: Path, options: dict[str, Any]) -> Any:
    """What each refresh reads: PATH's states (and flow-run table) on the chosen engine."""
    from trs_analytics.prometheus import MetricsSource
    from trs_analytics.storage import FLOW_RUN_TABLE, scan_flow_run_states

    engine, memory_limit = options["engine"], options["memory_limit"]
    _scan_on(path, engine, memory_limit)  # check the options before serving

    def scan() -> tuple[Any, Any]:
        flows = None
        if (path / FLOW_RUN_TABLE).is_dir():
            flows = scan_flow_run_states(path, engine=check_engine(engine))
        return _scan_on(path, engine, memory_limit), flows

    return MetricsSource(
        path,
        scan=scan,
        window=options["window"],
        now=parse_when(options["now"]) if options["now"] else None,
        max_series=options["max_series"],
    )


@main.command("serve-metrics")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--port", type=click.IntRange(1, 65535), default=9464, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--refresh",
    default="60s",
    show_default=True,
    callback=_duration,
    metavar="AGE",
    help="Recompute at least this often; also whenever the dataset's cursor moves.",
)
@_exporter_options
@_output_options
def serve_metrics(path: Path, port: int, host: str, refresh: timedelta, **options: Any) -> None:
    """Serve task and flow-run metrics from PATH on http://HOST:PORT/metrics for Prometheus.

    Values are recomputed in the background when the dataset's cursor moves (or
    every --refresh); a scrape only reads the last values. docs/prometheus.md
    lists the metric families and shows the Grafana dashboards in dashboards/.

    \b
    Example:
      trs-analytics serve-metrics states/ --port 9464 --window 1d
      trs-analytics serve-metrics states/ --engine duckdb --memory-limit 2GB
    """
    from trs_analytics.prometheus import serve_metrics as serve

    output = _output()
    with _errors():
        require_parquet(path, to="serve metrics of")
        source = _metrics_source(path, options)
        output.summary(
            f"serving http://{host}:{port}/metrics from {path}",
            event="serve-metrics",
            path=str(path),
            url=f"http://{host}:{port}/metrics",
        )
        try:
            serve(source, host=host, port=port, refresh=refresh.total_seconds())
        except KeyboardInterrupt:
            return


@main.command("metrics")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--textfile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the metrics to this file atomically (node_exporter's textfile collector "
    "reads *.prom). Default: print them.",
)
@_exporter_options
@_output_options
def metrics(path: Path, textfile: Path | None, **options: Any) -> None:
    """Compute the metrics serve-metrics serves once, into a textfile (for cron) or stdout.

    \b
    Example:
      trs-analytics metrics states/ --textfile /var/lib/node_exporter/textfile/trs.prom
    """
    from trs_analytics.prometheus import render_metrics, write_textfile

    output = _output()
    with _errors():
        require_parquet(path, to="compute metrics of")
        snap = _metrics_source(path, options).snapshot()
        if textfile is None:
            click.echo(render_metrics(snap).decode(), nl=False)
            return
        write_textfile(textfile, snap)
    output.summary(
        f"wrote {textfile} from {path} in {snap.seconds:.1f} s",
        event="metrics",
        out=str(textfile),
        path=str(path),
        seconds=round(snap.seconds, 3),
    )


if __name__ == "__main__":
    main()

"""Bad input: one clear error, never a traceback, from the Python API and from the CLI.

* every metric and reader given something that is not a frame or a path;
* times and durations that overflow date arithmetic;
* rules files that are binary, UTF-16, huge, or hold a huge glob;
* options that cannot work (``--memory-limit lots``, ``--ui-url javascript:``);
* damaged Parquet files (named by ``info``, ``report`` and ``check`` on each engine),
  a marker of a newer format, a report whose ``--out`` cannot be written, and a
  killed report's temporary files;
* an unforeseen exception: its own exit code (70), never ``check``'s 1.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import time
from typing import TYPE_CHECKING, Any

import click
import pytest
from click.testing import CliRunner, Result

import trs_analytics as ta
from tests.cliout import assert_one_error
from tests.clock import DISTANT
from trs_analytics.cli import CRASH_EXIT_CODE, EXIT_CODES
from trs_analytics.cli import main as cli_main
from trs_analytics.cli._exits import Group
from trs_analytics.cli._output import Output

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.clock(DISTANT)

SAMPLE = "data/sample_states.parquet"
NOT_FRAMES = ["states.parquet", None, 7, [1, 2], {"id": ["a"]}]


def run(*args: Any) -> Result:
    return CliRunner().invoke(cli_main, [str(a) for a in args])


# -- the Python API ----------------------------------------------------------------------

#: Metrics whose first argument is a frame of states, with the keywords they need.
METRICS: dict[str, dict[str, Any]] = {
    "cache_hits": {},
    "concurrency": {},
    "currently_failing": {},
    "duration_trend": {"by": "task_name", "every": "1d"},
    "durations": {"start": "Pending", "end": "Completed"},
    "error_messages": {},
    "explode_tags": {"by": ["tags"]},
    "failed_runs": {},
    "landing_time": {},
    "lateness": {},
    "outcome_counts": {},
    "peak_concurrency": {"every": "1h"},
    "run_outcomes": {},
    "run_time": {},
    "run_volume": {"every": "1d"},
    "slot_waits": {},
    "slowest_runs": {},
    "state_intervals": {},
    "time_in_state": {},
    "time_to_resolution": {},
    "stuck_runs": {},
    "failure_rates": {},
    "retry_counts": {},
    "summarize": {},
}


def wrong(value: Any) -> Any:
    """A value of the wrong type, passed on as the caller of an untyped API would."""
    return value


def call(name: str, frame: Any, kwargs: dict[str, Any]) -> Any:
    fn = getattr(ta, name)
    accepted = inspect.signature(fn).parameters
    return fn(frame, **{k: v for k, v in kwargs.items() if k in accepted})


@pytest.mark.parametrize("value", NOT_FRAMES, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("name", sorted(METRICS))
def test_a_metric_given_something_else_than_a_frame_names_the_argument(
    name: str, value: Any
) -> None:
    with pytest.raises((ta.ConfigurationError, ta.SchemaError), match=type(value).__name__):
        call(name, value, METRICS[name])


@pytest.mark.parametrize(
    ("call_it", "error", "pattern"),
    [
        (lambda: ta.validate_states(wrong("x")), ta.SchemaError, "got str"),
        (lambda: ta.validate_states(wrong(None)), ta.SchemaError, "got NoneType"),
        (lambda: ta.scan_states(wrong(123)), ta.ConfigurationError, "got int 123"),
        (lambda: ta.scan_states(wrong(None)), ta.ConfigurationError, "got NoneType"),
        (lambda: ta.scan_flow_run_states(wrong(1.5)), ta.ConfigurationError, "got float"),
        (lambda: ta.export_states(wrong(123)), ta.ConfigurationError, "got int 123"),
        (lambda: ta.fetch_states(since=wrong(123)), ta.ConfigurationError, "got int 123"),
        (lambda: ta.fetch_states(since=wrong([1])), ta.ConfigurationError, "got list"),
        (lambda: ta.parse_rules(wrong(123)), ta.ConfigurationError, "takes TOML text"),
        (lambda: ta.write_states(wrong("x"), "/tmp/never.parquet"), ta.SchemaError, "got str"),
        (
            lambda: ta.sla_report(ta.scan_states(SAMPLE), wrong("x")),
            ta.ConfigurationError,
            "takes a list of SlaRule",
        ),
        (
            lambda: ta.stuck_runs(ta.scan_states(SAMPLE), now=wrong("garbage")),
            ta.ConfigurationError,
            "now must be an aware datetime, got str",
        ),
        (lambda: ta.PrefectClient("http://h/api", timeout=-1), ta.ConfigurationError, "timeout"),
        (lambda: ta.PrefectClient(wrong(42)), ta.ConfigurationError, "api_url must be a string"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v))[:30],
)
def test_the_api_given_the_wrong_type_fails_at_once_and_clearly(
    call_it: Any, error: type[Exception], pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        call_it()


@pytest.mark.parametrize(
    "value",
    ["99999999d", "0001-01-01", "0001-01-01T00:00:00+01:00", "1969-12-31", "5000000w"],
)
def test_a_time_out_of_range_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ta.ConfigurationError, match=r"century|before 1970|out of range"):
        ta.parse_when(value)


@pytest.mark.parametrize(
    "args",
    [
        [
            "export",
            "--out",
            "{tmp}/ds",
            "--since",
            "99999999d",
            "--api-url",
            "http://127.0.0.1:9/api",
        ],
        [
            "export",
            "--out",
            "{tmp}/ds",
            "--since",
            "0001-01-01",
            "--api-url",
            "http://127.0.0.1:9/api",
        ],
        [
            "export",
            "--out",
            "{tmp}/ds",
            "--overlap",
            "999999d",
            "--api-url",
            "http://127.0.0.1:9/api",
        ],
        ["check", SAMPLE, "--recent", "100000000d"],
        ["check", SAMPLE, "--every", "99999999999d"],
        ["check", SAMPLE, "--since", "0001-01-01"],
    ],
    ids=["since-age", "since-year-1", "overlap", "recent", "every", "check-since"],
)
def test_cli_times_that_overflow_are_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = run(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "ds").exists()


# -- rules files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "not UTF-8 text"),
        ('[[rule]]\ntask = "x"\nfreshness = "1d"\n'.encode("utf-16"), "not UTF-8 text"),
        (b'[[rule]]\ntask = "' + b"*" * 5_000_000 + b'"\n', "larger than 1,000,000 bytes"),
        (b'[[rule]]\ntask = "' + b"a*" * 2_000 + b'"\nfreshness = "1d"\n', "glob of 4,000"),
        (b'[[rule]]\ntask = "x"\nfreshness = "99999999999d"\n', "freshness"),
    ],
    ids=["binary", "utf-16", "5-MB-glob", "4-KB-glob", "freshness-overflow"],
)
def test_a_bad_rules_file_is_exit_2_naming_it(tmp_path: Path, content: bytes, pattern: str) -> None:
    rules = tmp_path / "sla.toml"
    rules.write_bytes(content)
    started = time.monotonic()
    result = run("check", SAMPLE, "--rules", rules, "--now", "2026-11-28T14:00:00Z")
    assert_one_error(result, 2, pattern)
    assert time.monotonic() - started < 60


# -- options ------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["lots", "12 parsecs", "2GB; DROP", "2GB'; SET threads = 1; --"])
def test_a_memory_limit_duckdb_cannot_read_is_exit_2(tmp_path: Path, limit: str) -> None:
    result = run("report", SAMPLE, "--out", tmp_path / "r.html", "--engine", "duckdb",
                 "--memory-limit", limit)  # fmt: skip
    assert_one_error(result, 2, "is not a size DuckDB understands")


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "data:text/html,x", "file:///etc/passwd", "//evil", "ftp://h"]
)
@pytest.mark.parametrize("command", ["report", "check"])
def test_a_ui_url_that_is_not_http_is_refused(tmp_path: Path, url: str, command: str) -> None:
    extra = ["--out", tmp_path / "r.html"] if command == "report" else []
    result = run(command, SAMPLE, *extra, "--ui-url", url)
    assert result.exit_code == 2
    assert "is not an http(s) address" in result.output
    assert not (tmp_path / "r.html").exists()


def test_an_invalid_ipv6_api_url_is_exit_2(tmp_path: Path) -> None:
    result = run("export", "--out", tmp_path / "ds", "--api-url", "http://[::1/api")
    assert_one_error(result, 2, "not a valid URL")


# -- files -------------------------------------------------------------------------------


def damaged_copy(tmp_path: Path) -> Path:
    """The sample with 5,000 bytes in its middle zeroed: header and footer intact."""
    path = tmp_path / "damaged.parquet"
    shutil.copy(SAMPLE, path)
    with path.open("r+b") as handle:
        handle.seek(path.stat().st_size // 2)
        handle.write(b"\0" * 5000)
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["info", "{file}"],
        ["report", "{file}", "--out", "{tmp}/r.html"],
        ["report", "{file}", "--out", "{tmp}/r.html", "--engine", "duckdb"],
        ["check", "{file}", "--now", "2026-11-28T14:00:00Z"],
    ],
    ids=["info", "report-polars", "report-duckdb", "check"],
)
def test_a_damaged_parquet_file_is_named(tmp_path: Path, args: list[str]) -> None:
    file = damaged_copy(tmp_path)
    result = run(*(a.replace("{file}", str(file)).replace("{tmp}", str(tmp_path)) for a in args))
    assert_one_error(result, 6, f"{re.escape(str(file))} cannot be read: it is damaged")


def test_info_of_a_missing_path_is_exit_6(tmp_path: Path) -> None:
    assert_one_error(run("info", tmp_path / "nonexistent"), 6, "does not exist")


def test_report_refuses_a_marker_of_a_newer_format(tmp_path: Path) -> None:
    folder = tmp_path / "ds" / "day=2026-11-28"
    folder.mkdir(parents=True)
    shutil.copy(SAMPLE, folder / "part-00000.parquet")
    marker = {"format": "trs_analytics.dataset", "format_version": 99}
    (tmp_path / "ds" / ta.storage.MARKER_NAME).write_text(json.dumps(marker))
    for args in (
        ["report", tmp_path / "ds", "--out", tmp_path / "r.html"],
        ["info", tmp_path / "ds"],
    ):
        assert_one_error(run(*args), 6, "format version 99, newer than")
    assert not (tmp_path / "r.html").exists()


def test_report_fails_before_computing_when_out_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    started = time.monotonic()
    result = run("report", SAMPLE, "--out", blocker / "sub" / "r.html")
    assert_one_error(result, 6, "cannot write into")
    assert time.monotonic() - started < 5


def test_a_killed_reports_temporary_files_are_removed_by_the_next(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    stale = tmp_path / ".r.html.0123456789abcdef.tmp"
    fresh = tmp_path / ".r.html.fedcba9876543210.tmp"
    other = tmp_path / ".other.html.0123.tmp"
    for path in (stale, fresh, other):
        path.write_text("half a report")
    now = time.time()  # the test clock's: the writer compares with it
    hours_ago = now - 2 * 3600
    os.utime(fresh, (now, now))
    os.utime(stale, (hours_ago, hours_ago))
    os.utime(other, (hours_ago, hours_ago))
    result = run("report", SAMPLE, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.exists()
    assert not stale.exists()  # a killed writer's
    assert fresh.exists()  # may be a live writer's
    assert other.exists()  # another target's


# -- an unforeseen error --------------------------------------------------------------------


def test_an_unforeseen_error_has_its_own_exit_code_and_one_error_line() -> None:
    group = Group("demo")

    @group.command()
    def boom() -> None:
        msg = "something nobody foresaw"
        raise RuntimeError(msg)

    result = CliRunner().invoke(group, ["boom"])
    assert result.exit_code == CRASH_EXIT_CODE == 70
    assert result.stderr.splitlines() == [
        "Error: an unforeseen error (RuntimeError: something nobody foresaw). Hint: this is a "
        "bug in trs_analytics; please report it with the command and -v output."
    ]
    codes = [code for _, code, _ in EXIT_CODES]
    assert codes.count(70) == 1
    assert 1 in codes


def test_an_unforeseen_error_in_json_logs_stays_one_object_a_line() -> None:
    @click.group(cls=Group)
    @click.option("--log-format", default="text")
    @click.pass_context
    def group(ctx: click.Context, log_format: str) -> None:
        ctx.obj = Output(log_format=log_format, quiet=False, verbose=True)
        ctx.obj.install()
        ctx.call_on_close(ctx.obj.uninstall)

    @group.command()
    def boom() -> None:
        raise RecursionError("maximum recursion depth exceeded")

    result = CliRunner().invoke(group, ["--log-format", "json", "boom"])
    assert result.exit_code == 70
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert [r["level"] for r in records] == ["info", "error"]
    assert "RecursionError" in records[0]["exception"]
    assert records[1]["message"].startswith("Error: an unforeseen error (RecursionError")

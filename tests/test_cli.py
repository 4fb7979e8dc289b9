"""The ``trs-analytics`` command: docs, summaries, JSON logs, exit codes, bad input.

Commands run through click's ``CliRunner`` (in-process) against the real test
server; one runs as a real subprocess to check what a terminal or cron sees.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
import httpx
import polars as pl
import pytest
from click.testing import CliRunner, Result

from devtools.prefect_harness import PREFECT_AUTH_STRING, free_port
from tests.cliout import assert_one_error
from tests.clock import DISTANT
from tests.disks import disk, read_only
from tests.fresh import auto_sources
from tests.recorded import Router, serve
from tests.test_fetch_flow_runs import N_RUNS, FlowRunServer
from trs_analytics.cli import EXIT_CODES, main
from trs_analytics.export import ExportResult
from trs_analytics.schema import FLOW_RUN_STATES_SCHEMA, FLOW_RUNS, TASK_RUNS
from trs_analytics.storage import (
    MARKER_NAME,
    Dataset,
    scan_flow_run_states,
    scan_states,
)
from trs_analytics.testing import generate_flow_run_states, generate_states

if TYPE_CHECKING:
    from collections.abc import Callable

    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
SUMMARY = re.compile(
    r"^exported (\d+) task runs?, (\d+) states? \((\d+) new\) via ((?:events|states)(?:\+(?:events|states))*) "
    r"in (\d+) requests?, [\d.]+ s; .+ has (\d+) states? in (\d+) files?"
    r"(?:; and \d+ flow runs?, \d+ flow-run states? \(\d+ new\); \d+ in its flow-run table)?$"
)
NOTHING_NEW = re.compile(
    r"^nothing new: the (\d+) task runs? \((\d+) states?\) read via [a-z+]+ in \d+ "
    r"requests?, [\d.]+ s were already in .+; it has (\d+) states? in \d+ files?"
    r"(?:; and \d+ flow runs?, \d+ flow-run states? \(\d+ new\); \d+ in its flow-run table)?$"
)


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def window(workload: GroundTruth) -> list[str]:
    since = (workload.started_at - timedelta(minutes=1)).isoformat()
    until = (workload.finished_at + timedelta(minutes=1)).isoformat()
    return ["--since", since, "--until", until]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def assert_one_error_line(result: Result, code: int, pattern: str) -> None:
    assert_one_error(result, code, pattern)
    assert isinstance(result.exception, SystemExit)


# -- docs ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_is_documented_with_an_example(name: str) -> None:
    assert f"\n## {name}\n" in DOCS, f"docs/cli.md has no '## {name}' section"
    command = main.commands[name]
    with click.Context(command, info_name=name) as ctx:
        assert "Example:" in command.get_help(ctx)
    assert f"trs-analytics {name} " in DOCS


def test_the_group_help_has_an_example_and_the_exit_codes() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "Example:" in result.stdout
    for _, code, _ in EXIT_CODES:
        assert f" {code} " in result.stdout.replace("\n", " ").replace(";", " ")


def test_every_exit_code_is_in_the_docs_table() -> None:
    for _, code, _ in EXIT_CODES:
        assert re.search(rf"^\| {code} \| ", DOCS, flags=re.MULTILINE), code


# -- against the real server ----------------------------------------------------------


def test_export_prints_one_summary_line_then_adds_nothing(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    out = tmp_path / "ds"
    api = ["--api-url", prefect_server.api_url]
    before = datetime.now(UTC)
    first = run("export", *api, "--out", out, *window(workload))
    after = datetime.now(UTC)
    assert first.exit_code == 0, first.output
    assert first.stderr == ""  # no progress bar when stderr is not a terminal, no logs
    match = SUMMARY.match(first.stdout.strip())
    assert match, first.stdout
    task_runs, states, new, source, _, rows, _ = match.groups()
    assert int(task_runs) >= workload.n_task_runs
    assert int(states) == int(new) == int(rows) >= workload.n_states
    # events, but for the last FRESH_SPAN before now, read per run while events lag (26.17)
    assert source in auto_sources(workload, before, after)

    until = window(workload)[-1]
    second = run("export", *api, "--out", out, "--until", until)
    match = NOTHING_NEW.match(second.stdout.strip())
    assert match, second.stdout
    assert match.group(3) == rows


def test_json_logs_quiet_and_info(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    out = tmp_path / "ds"
    api = ["--api-url", prefect_server.api_url]
    before = datetime.now(UTC)
    result = run("--log-format", "json", "export", *api, "--out", out, *window(workload))
    after = datetime.now(UTC)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["event"] == "export"
    assert summary["source"] in auto_sources(workload, before, after)
    assert summary["added"] == summary["rows"] >= workload.n_states
    logs = [json.loads(line) for line in result.stderr.splitlines()]
    assert {record["level"] for record in logs} == {"info"}
    assert (
        any("via events" in record["message"] for record in logs) or summary["source"] == "states"
    )  # the window is all within the fresh span: no events planned

    quiet = run("--quiet", "export", *api, "--out", out, *window(workload))
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")

    info = run("info", out, "--json")
    assert json.loads(info.stdout)["states"] == summary["rows"]
    assert json.loads(info.stdout)["cursor"] == summary["until"]


def test_fetch_writes_one_file_and_will_not_replace_it(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    out = tmp_path / "states.parquet"
    api = ["--api-url", prefect_server.api_url]
    result = run("fetch", *api, "--out", out, *window(workload), "--flow", "etl")
    assert result.exit_code == 0, result.output
    assert scan_states(out).collect()["task_run_id"].n_unique() == len(
        workload.select(flow_name="etl")
    )
    again = run("fetch", *api, "--out", out, *window(workload))
    assert_one_error_line(again, 6, r"exists\. Hint: pass --force")


def test_report_from_an_exported_dataset(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    out = tmp_path / "ds"
    exported = run("export", "--api-url", prefect_server.api_url, "--out", out, *window(workload))
    assert exported.exit_code == 0, exported.output
    html = tmp_path / "report.html"
    result = run("report", out, "--out", html)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {html} from {out}")
    assert "<html" in html.read_text(encoding="utf-8").lower()


def test_the_readme_main_job_runs_on_the_bundled_sample(tmp_path: Path) -> None:
    sample = ROOT / "data" / "sample_states.parquet"
    if not sample.exists():
        pytest.skip("data/sample_states.parquet is not there yet")
    html = tmp_path / "report.html"
    result = run("report", sample, "--out", html)
    assert result.exit_code == 0, result.output
    assert html.stat().st_size > 0


# -- bad input: one Error line, an exit code, nothing overwritten -----------------------


def test_an_unreachable_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    result = run("export", "--api-url", url, "--out", tmp_path / "ds", "--max-attempts", "2")
    assert_one_error_line(result, 3, r"Connection refused\. Hint: is the Prefect server running")


def test_a_url_without_api(tmp_path: Path, prefect_server: PrefectServer) -> None:
    result = run("export", "--api-url", prefect_server.url, "--out", tmp_path / "ds")
    assert_one_error_line(result, 5, r"404 Not Found\. Hint: check that the API URL ends in /api")


@pytest.mark.parametrize("auth", [None, "trs:wrong"])
def test_wrong_credentials(
    tmp_path: Path, prefect_server_auth: PrefectServer, auth: str | None
) -> None:
    assert auth != PREFECT_AUTH_STRING
    env = {"PREFECT_API_AUTH_STRING": auth} if auth else None
    result = run("export", "--api-url", prefect_server_auth.api_url, "--out", tmp_path, env=env)
    assert_one_error_line(result, 4, r"refused with 401.*Hint: set PREFECT_API_KEY")


def test_no_api_url_at_all(tmp_path: Path) -> None:
    result = run("export", "--out", tmp_path / "ds")
    assert_one_error_line(result, 2, r"no Prefect API URL was given")
    # issue 26.10: the hint names the option, not the Python argument
    assert "Hint: pass --api-url http://127.0.0.1:4200/api (or your Cloud" in result.stderr
    assert "api_url=" not in result.stderr


@pytest.mark.clock(DISTANT)  # after the recording: an export never reads past now
def test_a_retry_budget_hint_names_the_option(tmp_path: Path) -> None:
    """Issue 26.10, for a message made on a worker thread of the client."""

    def busy(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/flows/filter"):
            return httpx.Response(503, headers={"Retry-After": "60"}, json={"detail": "busy"})
        return None

    args = ["--since", "2026-11-28T13:35:00Z", "--until", "2026-11-28T13:37:00Z"]
    with serve(Router(fault=busy)) as api:
        result = run("export", "--api-url", api, "--out", tmp_path, "--max-retry-wait", "1", *args)
    assert_one_error_line(result, 3, r"Hint: try again later, or raise --max-retry-wait\.$")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], r"cannot read 'yesterday' as a time"),
        (["--since", "2026-01-01T00:00:00"], r"has no time zone"),
        (["--overlap", "ten minutes"], r"is not a duration"),
        (["--state-type", "DONE"], r"'DONE' is not one of"),
    ],
)
def test_bad_options_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = run("export", "--api-url", "http://127.0.0.1:9/api", "--out", tmp_path, *args)
    assert result.exit_code == 2, result.output
    assert re.search(message, result.stderr)
    assert "Traceback" not in result.output


def test_a_folder_that_holds_something_else(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("do not touch")
    result = run("export", "--api-url", "http://127.0.0.1:9/api", "--out", tmp_path)
    assert_one_error_line(result, 6, r"holds other files \(thesis.tex\).*nothing was written")
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"]


def test_a_corrupted_parquet_file_in_the_dataset(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    out = tmp_path / "ds"
    api = ["--api-url", prefect_server.api_url]
    assert run("export", *api, "--out", out, *window(workload)).exit_code == 0
    part = next(out.glob("day=*/part-*.parquet"))  # the task-run table
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    before = snapshot(out)
    result = run("export", *api, "--out", out, *window(workload))
    assert_one_error_line(result, 6, rf"{part.name} is not a readable Parquet file.*Hint")
    assert snapshot(out) == before
    assert_one_error_line(run("report", out, "--out", tmp_path / "r.html"), 6, r"not a readable")
    assert not (tmp_path / "r.html").exists()


def test_a_dataset_locked_by_another_export(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / MARKER_NAME).write_text(
        json.dumps({"format": "trs_analytics.dataset", "format_version": 1, "filters": {}})
    )
    with Dataset.open(out):  # another export holds the lock
        result = run("export", "--api-url", "http://127.0.0.1:9/api", "--out", out)
    assert_one_error_line(result, 75, r"being written by another export \(pid \d+")


def test_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    command = [sys.executable, "-m", "trs_analytics.cli", "--log-format", "json", "export"]
    done = subprocess.run(
        [*command, "--api-url", url, "--out", str(tmp_path / "ds"), "--max-attempts", "1"],
        capture_output=True,
        text=True,
        env={**env, "PREFECT_PROFILES_PATH": str(tmp_path / "none.toml")},
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    record = json.loads(line)
    assert record["level"] == "error"
    assert record["message"].startswith("Error: POST ")


# -- issue 14: writes that fail, first exports that fail, typos, wrong files ------------

SAMPLE = ROOT / "data" / "sample_states.parquet"
DEAD = "http://127.0.0.1:9/api"


@pytest.mark.parametrize(
    "command",
    [
        ["report", SAMPLE, "--out", "{ro}/report.html"],
        ["export", "--api-url", DEAD, "--out", "{ro}/ds"],
        ["fetch", "--api-url", DEAD, "--out", "{ro}/states.parquet"],  # before any request
    ],
    ids=["report", "export", "fetch"],
)
def test_a_read_only_destination_is_one_error_line_and_exit_6(
    tmp_path: Path, command: list[str | Path]
) -> None:
    with read_only(tmp_path / "ro") as folder:
        args = [str(a).replace("{ro}", str(folder)) for a in command]
        result = run(*args)
        assert_one_error_line(result, 6, r"(Read-only file system|Permission denied)\. Hint: ")
        assert list(folder.iterdir()) == []


def test_a_report_on_a_full_disk_is_one_error_line_and_exit_6(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with disk(tmp_path / "disk", monkeypatch) as make_full:
        make_full()
        result = run("report", SAMPLE, "--out", tmp_path / "disk" / "report.html")
        assert_one_error_line(result, 6, r"No space left on device\. Hint: the disk is full")
        assert not (tmp_path / "disk" / "report.html").exists()


@pytest.mark.parametrize("command", ["export", "fetch"])
@pytest.mark.parametrize(
    ("option", "kind", "typo", "name"),
    [("--flow", "flow", "et1", "etl"), ("--task", "task", "lood", "load")],
)
def test_a_name_with_a_typo_is_an_error_naming_the_closest(
    tmp_path: Path,
    prefect_server: PrefectServer,
    workload: GroundTruth,
    command: str,
    option: str,
    kind: str,
    typo: str,
    name: str,
) -> None:
    out = tmp_path / ("ds" if command == "export" else "states.parquet")
    api = ["--api-url", prefect_server.api_url]
    result = run(command, *api, "--out", out, *window(workload), option, typo)
    pattern = rf"no {kind} is named '{typo}' .*the closest: '{name}'.*Hint.*fix {option}"
    assert_one_error_line(result, 2, pattern)
    assert not out.exists()  # nothing recorded: the corrected command is not refused
    fixed = run(command, *api, "--out", out, *window(workload), option, name)
    assert fixed.exit_code == 0, fixed.output


def test_a_work_pool_that_does_not_exist_is_an_error(
    tmp_path: Path, prefect_server: PrefectServer
) -> None:
    args: list[str | Path] = ["--api-url", prefect_server.api_url, "--out", tmp_path / "ds"]
    args += ["--since", "1h"]
    result = run("export", *args, "--work-pool", "no-such-pool")
    assert_one_error_line(result, 2, r"no work pool is named 'no-such-pool' on .*Hint: ")
    assert not (tmp_path / "ds").exists()


def test_a_failed_first_export_does_not_fix_the_dataset(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    for args in (["--since", "yesterday"], ["--max-attempts", "1", "--tag", "prod"]):
        result = run("export", "--api-url", DEAD, "--out", out, *args)
        assert result.exit_code in (2, 3), result.output
        assert not out.exists()


def test_a_csv_is_not_called_damaged_parquet(tmp_path: Path) -> None:
    csv = tmp_path / "states.csv"
    csv.write_text("id,task_run_id\n1,a\n")
    commands: list[list[str | Path]] = [
        ["report", csv, "--out", tmp_path / "r.html"],
        ["info", csv],
    ]
    for command in commands:
        result = run(*command)
        assert_one_error_line(result, 6, r"states\.csv is not a readable Parquet file: it is not")
        assert "damaged" not in result.stderr


@pytest.mark.parametrize("marker", [False, True], ids=["folder", "dataset"])
def test_a_folder_with_no_parquet_says_so(tmp_path: Path, marker: bool) -> None:
    if marker:
        (tmp_path / MARKER_NAME).write_text(
            json.dumps({"format": "trs_analytics.dataset", "format_version": 1, "filters": {}})
        )
    result = run("report", tmp_path, "--out", tmp_path / "r.html")
    assert_one_error_line(result, 6, r"holds no Parquet files.*Hint")
    assert "write_report" not in result.stderr


def test_json_logs_print_the_summary_once(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    args: list[str | Path] = [
        "export",
        "--api-url",
        prefect_server.api_url,
        "--out",
        tmp_path / "ds",
    ]
    result = run("--log-format", "json", *args, *window(workload))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (result.stdout + result.stderr).splitlines()]
    summaries = [line for line in lines if line["message"].startswith("exported ")]
    assert len(summaries) == 1
    assert summaries[0]["event"] == "export"


def test_output_options_work_after_the_command(tmp_path: Path) -> None:
    html = tmp_path / "r.html"
    assert run("report", SAMPLE, "--out", html, "-q").stdout == ""
    assert run("report", SAMPLE, "--out", html, "--quiet").stdout == ""
    record = json.loads(run("report", SAMPLE, "--out", html, "--log-format", "json").stdout)
    assert record["event"] == "report"
    verbose = run("report", SAMPLE, "--out", html, "-v")
    assert verbose.exit_code == 0, verbose.output
    # one attempt: the refused connection is not retried (six attempts waited 8 s)
    dead = ["--api-url", DEAD, "--max-attempts", "1"]
    failed = run("export", *dead, "--out", tmp_path / "ds", "--log-format", "json")
    assert json.loads(failed.stderr.splitlines()[-1])["message"].startswith("Error: ")


def test_the_help_lists_exit_130_and_keeps_example_lines() -> None:
    top = run("--help").stdout
    assert re.search(r"^\s+130\s+interrupted", top, flags=re.MULTILINE), top
    for name, command in main.commands.items():
        doc = command.callback.__doc__ or ""
        example = next(line.strip() for line in doc.splitlines() if "trs-analytics " in line)
        shown = run(name, "--help").stdout
        assert any(line.strip() == example for line in shown.splitlines()), (name, shown)


def _ctrl_c_at(path: str) -> Callable[[httpx.Request], httpx.Response | None]:
    """A fault that presses Ctrl-C (SIGINT to the main thread) at the first request to ``path``."""
    pressed: list[str] = []

    def press(request: httpx.Request) -> None:
        if request.url.path.endswith(path) and not pressed:
            pressed.append(path)
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    return press


@pytest.mark.clock(DISTANT)  # after the recording: an export never reads past now
@pytest.mark.parametrize(
    ("path", "kept", "message"),
    [
        pytest.param(
            "/events/filter",
            False,
            r"interrupted before the first rows of \S+ds were written; the first export leaves "
            r"nothing behind \(its folder is removed\)\. Run the command again to start afresh\.",
            id="before-the-first-rows",
        ),
        pytest.param(
            "/flow_run_states/",  # the task-run states are written, the flow-run ones are read
            True,
            r"interrupted; the dataset keeps every file written before the interrupt\.",
            id="after-the-first-rows",
        ),
    ],
)
def test_ctrl_c_during_a_first_export_says_what_is_left(
    tmp_path: Path, path: str, kept: bool, message: str
) -> None:
    """Issue 26.13: the message said files were kept when the folder was removed."""
    out = tmp_path / "ds"
    args = ["--since", "2026-11-28T13:35:00Z", "--until", "2026-11-28T13:37:00Z"]
    with serve(Router(fault=_ctrl_c_at(path))) as api:
        result = run("export", "--api-url", api, "--out", out, "--flush-rows", "1", *args)
    assert_one_error_line(result, 130, message)
    assert out.exists() is kept
    if kept:
        assert scan_states(out).collect().height == 13  # every recorded task-run state


@pytest.mark.clock("2026-11-28T13:40:00Z")  # the window is recent: events are planned unasked
def test_the_summary_names_the_source_read_when_prefect_2_refuses_events(tmp_path: Path) -> None:
    """Issue 26.8: Prefect 2 answers 404 to events; the summary said 'via events'."""
    router = Router(server="2.20.16")
    args = ["--since", "2026-11-28T13:35:00Z", "--until", "2026-11-28T13:37:00Z"]
    with serve(router) as api:
        result = run("--log-format", "json", "export", "--api-url", api, "--out", tmp_path, *args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["source"], summary["states"]) == ("states", 13)
    assert " via states in " in summary["message"]
    assert " has 13 states in 1 file; and 0 flow runs, 0 flow-run states " in summary["message"]
    refused = [p for p in router.paths() if p == "POST /api/events/filter"]
    assert len(refused) == 2  # the task-run and the flow-run table each asked once


def test_info_help_promises_what_info_prints(tmp_path: Path) -> None:
    facts = json.loads(run("info", SAMPLE, "--json").stdout)
    helped = " ".join(run("info", "--help").stdout.split())
    for key in facts:
        assert key in helped, key
    for key in ("cursor", "filters", "exports"):  # printed for a dataset
        assert key in helped, key
    assert "days" not in helped


# -- issue 14.13: the README as a new user follows it -----------------------------------

README = (ROOT / "README.md").read_text(encoding="utf-8")
DEV_ONLY = ("prefect", "duckdb", "pandas", "jupyterlab", "IPython", "hypothesis", "pytest")


def test_the_readme_main_job_installs_only_what_the_report_needs(tmp_path: Path) -> None:
    assert "uv run --no-dev trs-analytics report data/sample_states.parquet" in README
    html = tmp_path / "report.html"
    code = (
        "import sys; from trs_analytics.cli import main\n"
        f"try: main(['report', {str(SAMPLE)!r}, '--out', {str(html)!r}, '-q'])\n"
        "except SystemExit as done: assert done.code in (0, None), done.code\n"
        f"print(sorted(m for m in {DEV_ONLY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # no dev-group package is imported by the report
    assert html.stat().st_size > 0


def test_the_readme_quickstart_runs_as_pasted(monkeypatch: pytest.MonkeyPatch) -> None:
    section = README.split("## Notebook quickstart", 1)[1]
    first_block = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert "127.0.0.1" not in first_block  # the sample first; the server comes second
    monkeypatch.chdir(ROOT)
    exec(compile(first_block, "README.md", "exec"), {})  # the README's own code


def test_the_readme_states_the_samples_real_span() -> None:
    import polars as pl

    match = re.search(r"sample_states\.parquet` holds .*?\((\d+) min (\d+) s of", README)
    assert match, "the README does not say how long the sample is"
    stamps = pl.read_parquet(SAMPLE, columns=["timestamp"])["timestamp"]
    first, last = stamps.min(), stamps.max()
    assert isinstance(first, datetime)
    assert isinstance(last, datetime)
    span = (last - first).total_seconds()
    assert int(match[1]) * 60 + int(match[2]) == int(span)
    assert not re.search(r"\b12 minutes\b", README)


def test_what_the_readme_writes_is_ignored_by_git() -> None:
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "/report.html" in ignored
    if (ROOT / ".git").exists():
        check = subprocess.run(["git", "check-ignore", "-q", "report.html"], cwd=ROOT, check=False)
        assert check.returncode == 0


def test_the_cron_example_lets_cron_mail_failures() -> None:
    cron = DOCS.split("### cron", 1)[1].split("### ", 1)[0]
    quiet = next(line for line in cron.splitlines() if line.startswith("*/15") and "-q" in line)
    assert "MAILTO=" in cron
    assert ">" not in quiet  # output left to cron, which mails it only when there is some
    mailed = next(line for line in cron.splitlines() if ">>" in line)
    assert "|| echo" in mailed  # the logging variant still prints on a non-zero exit


# -- issue 12: the report on another engine ------------------------------------------------------


def _without_generated_time(html: str) -> str:
    return re.sub(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", "", html)


def _to_ten_digits(html: str) -> str:
    """Decimals to 10 significant digits, and chart data names (hashes of the values) out:
    each engine aggregates the charts' data itself, equal to 1e-9 relative, not bit for bit
    (tests/engines/test_report_engines.py compares those frames)."""
    rounded = re.sub(r"\d+\.\d+(?:e-?\d+)?", lambda m: f"{float(m.group()):.10g}", html)
    return re.sub(r"data-[0-9a-f]{32}", "data", rounded)


def test_report_on_duckdb_is_the_report_on_polars(tmp_path: Path) -> None:
    on_polars = run("report", SAMPLE, "--out", tmp_path / "polars.html")
    on_duckdb = run(
        "report",
        SAMPLE,
        "--out",
        tmp_path / "duckdb.html",
        "--engine",
        "duckdb",
        "--memory-limit",
        "1GB",
    )
    assert on_polars.exit_code == 0, on_polars.output
    assert on_duckdb.exit_code == 0, on_duckdb.output
    polars_html = (tmp_path / "polars.html").read_text(encoding="utf-8")
    duckdb_html = (tmp_path / "duckdb.html").read_text(encoding="utf-8")
    want = _to_ten_digits(_without_generated_time(polars_html))
    assert _to_ten_digits(_without_generated_time(duckdb_html)) == want


def test_memory_limit_without_duckdb_is_a_usage_error(tmp_path: Path) -> None:
    result = run("report", SAMPLE, "--out", tmp_path / "r.html", "--memory-limit", "1GB")
    assert result.exit_code == 2
    assert "--engine duckdb" in result.output


def test_report_with_flow_runs_adds_their_part(tmp_path: Path) -> None:
    flow_runs = SAMPLE.parent / "sample_flow_run_states.parquet"
    folder = tmp_path / "states"
    folder.mkdir()
    small = folder / "part-0.parquet"  # a small task-run part: three reports stay quick
    generate_states(300, seed=1).write_parquet(small)
    with_flows = run("report", small, "--out", tmp_path / "r.html", "--flow-run-states", flow_runs)
    assert with_flows.exit_code == 0, with_flows.output
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Flow runs: deployments currently failing" in text
    assert text.count('class="chart"') == 11
    # a folder of task-run Parquet files (no flow-run table): the report as before
    plain = run("report", folder, "--out", tmp_path / "plain.html")
    assert plain.exit_code == 0, plain.output
    assert "Flow runs:" not in (tmp_path / "plain.html").read_text(encoding="utf-8")
    # the same folder with a flow-run table (as export writes it): read by default
    table = folder / "_flow_run_states" / "day=2026-01-01"
    table.mkdir(parents=True)
    (table / "part-0.parquet").write_bytes(flow_runs.read_bytes())
    auto = run("report", folder, "--out", tmp_path / "auto.html")
    assert auto.exit_code == 0, auto.output
    assert "Flow runs: deployments currently failing" in (tmp_path / "auto.html").read_text(
        encoding="utf-8"
    )


# -- flow runs: fetch --flow-runs, and the dataset's tables by kind (issue 23) ------------------


def _flow_run_window() -> list[str]:
    return ["--since", "2026-11-28T11:59:00Z", "--until", "2026-11-28T13:00:00Z"]


def test_fetch_flow_runs_writes_the_flow_run_states(tmp_path: Path) -> None:
    server = FlowRunServer()
    out = tmp_path / "flow_runs.parquet"
    with serve(server) as api:
        args: list[str | Path] = ["fetch", "--flow-runs", "--api-url", api, "--out", out]
        args += ["--source", "states"]
        result = run("--log-format", "json", *args, *_flow_run_window())
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["event"], summary["flow_runs"]) == ("fetch", N_RUNS)
    assert summary["states"] == N_RUNS * len(server.states)
    assert "task_runs" not in summary
    frame = scan_flow_run_states(out).collect()
    assert frame.schema == FLOW_RUN_STATES_SCHEMA
    assert set(frame["flow_run_id"]) == {r["id"] for r in server.runs}
    assert frame.height == frame["id"].n_unique() == summary["states"]
    assert pl.read_parquet_metadata(out)["trs_analytics.schema_version"] == "1"


def test_fetch_flow_runs_refuses_a_task_name(tmp_path: Path) -> None:
    out = tmp_path / "flow_runs.parquet"
    with serve(FlowRunServer()) as api:
        result = run("fetch", "--flow-runs", "--api-url", api, "--out", out, "--task", "load")
    assert_one_error_line(result, 2, r"task_names does not apply to flow runs\. Hint: ")
    assert not out.exists()


def test_fetch_flow_runs_from_a_real_server(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    out = tmp_path / "flow_runs.parquet"
    api = ["--api-url", prefect_server.api_url]
    result = run("fetch", "--flow-runs", *api, "--out", out, *window(workload))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("fetched ")
    frame = scan_flow_run_states(out).collect()
    mine = frame.filter(pl.col("flow_run_id").is_in(list(workload.flow_runs)))
    assert set(mine["flow_run_id"]) == set(workload.flow_runs)
    assert mine.height == workload.n_flow_run_states
    finals = mine.sort("timestamp").group_by("flow_run_id").agg(pl.col("name").last())
    assert dict(finals.iter_rows()) == {k: v.final_name for k, v in workload.flow_runs.items()}
    assert f"fetched {frame['flow_run_id'].n_unique()} flow runs, {frame.height} states" in (
        result.stdout
    )


@pytest.mark.clock(DISTANT)  # after the recording: an export never reads past now
@pytest.mark.parametrize("table_made", [True, False], ids=["table-exported", "no-table-yet"])
def test_a_task_run_export_into_the_flow_run_table_is_refused(
    tmp_path: Path, table_made: bool
) -> None:
    out = tmp_path / "ds"
    window_args = ["--since", "2026-11-28T13:35:00Z", "--until", "2026-11-28T13:37:00Z"]
    with serve(Router()) as api:
        flow_runs = "--flow-runs" if table_made else "--no-flow-runs"
        first = run("export", "--api-url", api, "--out", out, *window_args, flow_runs)
        assert first.exit_code == 0, first.output
        assert (out / "_flow_run_states" / MARKER_NAME).is_file() is table_made
        before = snapshot(out)
        wrong = run("export", "--api-url", api, "--out", out / "_flow_run_states", *window_args)
    assert_one_error_line(
        wrong, 2, r"_flow_run_states is its flow-run table of the dataset .*Hint: pass --out "
    )
    assert snapshot(out) == before  # nothing written, the empty table not made


def test_info_shows_the_flow_run_table_too(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    until = datetime(2026, 2, 1, tzinfo=UTC)
    tables = {
        TASK_RUNS: generate_states(80, seed=3, days=2),
        FLOW_RUNS: generate_flow_run_states(80, seed=3, days=2),
    }
    for kind, frame in tables.items():
        with Dataset.open(out, kind=kind) as dataset:
            dataset.add(frame)
            since = datetime(2026, 1, 1, tzinfo=UTC)
            done = ExportResult(out, "states", since, until, frame.height, 0, 0, 0, 0)
            dataset.commit(done, started=since)
    facts = json.loads(run("info", out, "--json").stdout)
    task_runs, flow_runs = tables[TASK_RUNS], tables[FLOW_RUNS]
    assert (facts["states"], facts["task_runs"]) == (task_runs.height, 80)
    assert (facts["flow_run_states"], facts["flow_runs"]) == (
        flow_runs.height,
        flow_runs["flow_run_id"].n_unique(),
    )
    assert facts["flow_run_first"] == str(flow_runs["timestamp"].min())
    assert facts["flow_run_last"] == str(flow_runs["timestamp"].max())
    assert facts["cursor"] == facts["flow_run_cursor"] == "2026-02-01T00:00:00Z"
    assert facts["flow_run_exports"] == facts["exports"] == 1
    text = run("info", out).stdout
    assert f"flow_runs: {facts['flow_runs']}\n" in text
    helped = " ".join(run("info", "--help").stdout.split())
    assert all(key in helped for key in facts)

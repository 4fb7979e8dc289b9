"""The fault suite: the real CLI against a real Prefect server through a misbehaving proxy,
and onto real file systems that fill up or refuse writes.

Every case ends in one of two outcomes, within a bounded time: the data equal
to a clean run, or one ``Error:`` line with the documented exit code and no
traceback (:func:`assert_one_error`), with the dataset as it was before. No
case shows the test's credentials (:data:`KEY`) in any output.

* data loss: a redirect, a 307 on the states source; a cursor held where it was;
* hangs: a ``next_page`` that points to itself, an endless stream of pages, a
  ``/task_runs/filter`` that ignores its cursor, a body sent a byte at a time,
  ``Retry-After`` of 31 years and a retry budget;
* crashes: malformed records from both sources, a bad gzip body, JSON nested
  200,000 deep, JSON logs that stay one object a line;
* leaks: a server that echoes the request's headers and URL into its errors;
* file systems: a 2 MB tmpfs that fills up, a read-only mount.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from tests.cliout import assert_one_error
from tests.disks import mounted, read_only
from tests.faultproxy import Answer, Exchange, FaultProxy
from trs_analytics.cli import main
from trs_analytics.storage import MARKER_NAME, read_dataset_info, scan_states

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import polars as pl

    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth

#: The credential of every run here: it must never be shown.
KEY = "pnu_FAULTSUITEkey9f8e7d6c5b4a"


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(
        main, [str(a) for a in args], env={"PREFECT_API_KEY": KEY, **(env or {})}
    )
    assert KEY not in result.output
    assert KEY not in result.stderr
    return result


def window(workload: GroundTruth) -> tuple[str, str]:
    since = (workload.started_at - timedelta(minutes=1)).isoformat()
    until = (workload.finished_at + timedelta(minutes=1)).isoformat()
    return since, until


def export(api_url: str, out: Path, workload: GroundTruth, *extra: str) -> Result:
    since, until = window(workload)
    return run("export", "--api-url", api_url, "--out", out, "--since", since, "--until", until,
               "--max-attempts", "2", *extra)  # fmt: skip


def files_of(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def clean(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: PrefectServer, workload: GroundTruth
) -> pl.DataFrame:
    """The workload's window exported with no proxy: the truth every case is held to."""
    out = tmp_path_factory.mktemp("clean") / "ds"
    result = export(prefect_server.api_url, out, workload, "--source", "events")
    assert result.exit_code == 0, result.output
    return scan_states(out).collect().sort("id")


def through(server: PrefectServer, script: Callable[[Exchange], Answer | None]) -> FaultProxy:
    return FaultProxy(server.api_url, script=script, lifetime=120)


def json_answer(data: Any, status: int = 200, **headers: str) -> Answer:
    return Answer(
        status, json.dumps(data).encode(), {"Content-Type": "application/json", **headers}
    )


# -- data loss: only a 2xx is data, and the cursor holds ----------------------------------


@pytest.mark.parametrize(
    ("status", "path", "source"),
    [(302, "/events/filter", "events"), (307, "/task_runs/filter", "states")],
)
def test_a_redirect_fails_the_export_and_keeps_dataset_and_cursor(
    tmp_path: Path,
    prefect_server: PrefectServer,
    workload: GroundTruth,
    clean: pl.DataFrame,
    status: int,
    path: str,
    source: str,
) -> None:
    since, until = window(workload)
    middle = (workload.started_at + (workload.finished_at - workload.started_at) / 2).isoformat()
    out = tmp_path / "ds"
    first = run("export", "--api-url", prefect_server.api_url, "--out", out,
                "--since", since, "--until", middle)  # fmt: skip
    assert first.exit_code == 0, first.output
    before, cursor = files_of(out), read_dataset_info(out).cursor

    def redirect(exchange: Exchange) -> Answer | None:
        if exchange.path.endswith(path):  # an empty page in the body: once read as data
            empty = {"events": [], "total": 0, "next_page": None} if source == "events" else []
            return json_answer(empty, status, Location="http://elsewhere.example/api/x")
        return None

    with through(prefect_server, redirect) as proxy:
        result = run("export", "--api-url", proxy.api_url, "--out", out, "--until", until,
                     "--source", source)  # fmt: skip
    assert_one_error(result, 5, f"answered {status}, a redirect to 'http://elsewhere.example")
    assert files_of(out) == before
    assert read_dataset_info(out).cursor == cursor
    final = run("export", "--api-url", prefect_server.api_url, "--out", out, "--until", until)
    assert final.exit_code == 0, final.output
    assert scan_states(out).collect().sort("id").equals(clean)


# -- hangs: every loop and wait is bounded ------------------------------------------------


class EventPages:
    """The real first page of events, then made-up next pages: ``fresh`` events each
    time (an endless stream), or the same page pointing to itself."""

    def __init__(self, *, fresh: bool) -> None:
        self.fresh = fresh
        self.first: dict[str, Any] | None = None
        self.count = 0

    def __call__(self, exchange: Exchange) -> Answer | None:
        if "/events/filter" not in exchange.path:
            return None
        if self.first is None:
            self.first = json.loads(exchange.forward().body)
        page = json.loads(json.dumps(self.first))
        self.count += 1
        if self.fresh:
            for i, event in enumerate(page["events"]):
                event["id"] = f"made-up-{self.count}-{i}"
            token = f"t{self.count}"
        else:
            token = "same" + "x" * 1000
        page["next_page"] = f"http://127.0.0.1/api/events/filter/next?page-token={token}"
        return json_answer(page)


def ignores_cursor(exchange: Exchange) -> Answer | None:
    body = exchange.json()
    if not exchange.path.endswith("/task_runs/filter") or not isinstance(body, dict):
        return None
    if body.get("sort") != "EXPECTED_START_TIME_ASC":
        return None
    window_ = body.get("task_runs", {}).get("expected_start_time", {})
    window_.pop("after_", None)
    body.pop("offset", None)
    exchange.body = json.dumps(body).encode()
    return None  # forwarded, rewritten: the server answers the first page again


@pytest.mark.parametrize(
    ("script", "source", "pattern"),
    [
        (EventPages(fresh=False), "events", "next_page link it had sent before"),
        (EventPages(fresh=True), "events", r"events in \d+ pages although its first page counted"),
        (ignores_cursor, "states", "answered runs expected before the cursor"),
    ],
    ids=["next-page-to-itself", "endless-pages", "keyset-cursor-ignored"],
)
def test_a_paging_loop_that_would_never_end_stops_with_one_error(
    tmp_path: Path,
    prefect_server: PrefectServer,
    workload: GroundTruth,
    script: Callable[[Exchange], Answer | None],
    source: str,
    pattern: str,
) -> None:
    if script is ignores_cursor and workload.n_task_runs <= 200:
        pytest.skip("needs more than one page (200) of task runs")
    started = time.monotonic()
    with through(prefect_server, script) as proxy:
        result = export(proxy.api_url, tmp_path / "ds", workload, "--source", source)
        requests = proxy.counts["requests"]
    error = assert_one_error(result, 5, pattern)
    assert time.monotonic() - started < 60
    assert requests < 300  # the states source reads one page of runs (200 GETs) first
    assert len(error) < 600  # no 1 KB page token in the line
    assert not (tmp_path / "ds").exists()  # a first export that failed leaves nothing


def test_a_body_sent_a_byte_at_a_time_hits_the_deadline(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    def trickle(exchange: Exchange) -> Answer | None:
        if "/events/filter" not in exchange.path:
            return None
        answer = exchange.forward()
        return Answer(answer.status, answer.body, answer.headers, trickle=0.05)

    started = time.monotonic()
    with through(prefect_server, trickle) as proxy:
        result = export(proxy.api_url, tmp_path / "ds", workload, "--source", "events",
                        "--timeout", "0.5")  # fmt: skip
    assert_one_error(result, 3, r"timed out: the answer did not arrive in full within the 5 s")
    assert time.monotonic() - started < 30  # 2 attempts of a 5 s deadline, and one wait
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(
    ("retry_after", "extra", "waits"),
    [("1000000000", ["--max-retry-wait", "3"], 0), ("1", ["--max-retry-wait", "2.5"], 2)],
    ids=["31-years", "budget-of-2.5-s"],
)
def test_retry_after_is_bounded_by_the_budget_and_every_wait_is_said(
    tmp_path: Path,
    prefect_server: PrefectServer,
    workload: GroundTruth,
    retry_after: str,
    extra: list[str],
    waits: int,
) -> None:
    def throttle(exchange: Exchange) -> Answer | None:
        if "/events/filter" in exchange.path:
            return json_answer({"detail": "slow down"}, 429, **{"Retry-After": retry_after})
        return None

    started = time.monotonic()
    with through(prefect_server, throttle) as proxy:
        result = export(proxy.api_url, tmp_path / "ds", workload, "--source", "events",
                        "--max-attempts", "10", *extra)  # fmt: skip
    assert_one_error(result, 3, r"kept failing with 429 .* retry budget")
    said = re.findall(r"WARNING: waiting ([\d.]+) s before attempt \d+ of 10", result.stderr)
    assert len(said) == waits
    assert all(float(s) >= 1.0 for s in said)
    assert time.monotonic() - started < 20


# -- crashes: one clear error, never a traceback ------------------------------------------


def edit_first(path: str, edit: Callable[[Any], None]) -> Callable[[Exchange], Answer | None]:
    """Forward, then ``edit`` the JSON of the first answer to ``path``."""
    done: list[bool] = []

    def script(exchange: Exchange) -> Answer | None:
        if done or not exchange.path.split("?")[0].endswith(path):
            return None
        done.append(True)
        answer = exchange.forward()
        data = json.loads(answer.body)
        edit(data)
        return json_answer(data)

    return script


def _events(edit: Callable[[list[Any]], None]) -> Callable[[Any], None]:
    return lambda page: edit(page["events"])


@pytest.mark.parametrize(
    ("script", "source", "code", "pattern"),
    [
        (
            edit_first("/task_runs/filter", lambda runs: runs[0].update(tags="alpha,beta")),
            "states",
            5,
            "'tags' = \"alpha,beta\" \\(a string\\), expected a list of strings",
        ),
        (
            edit_first("/task_runs/filter", lambda runs: runs[0].update(run_count="1")),
            "events",
            5,
            "'run_count' = \"1\"",
        ),
        (
            edit_first("/flows/filter", lambda flows: flows[0].update(name={"a": 1})),
            "events",
            5,
            "a flow .* 'name' = \\{",
        ),
        (
            edit_first("/events/filter", _events(lambda e: e.insert(0, None))),
            "events",
            5,
            "an event that is 'None'",
        ),
        (
            edit_first("/events/filter", _events(lambda e: e[0].update(payload="x"))),
            "events",
            5,
            "'payload' is 'x'",
        ),
        (
            edit_first(
                "/task_run_states/", lambda s: s[0]["state_details"].update(retriable="yes")
            ),
            "states",
            5,
            "'state_details.retriable' = \"yes\"",
        ),
    ],
    ids=[
        "tags-string",
        "run-count-string",
        "flow-name-object",
        "null-event",
        "payload-string",
        "retriable-yes",
    ],
)
def test_a_malformed_record_is_one_error_naming_the_field(
    tmp_path: Path,
    prefect_server: PrefectServer,
    workload: GroundTruth,
    script: Callable[[Exchange], Answer | None],
    source: str,
    code: int,
    pattern: str,
) -> None:
    with through(prefect_server, script) as proxy:
        result = export(proxy.api_url, tmp_path / "ds", workload, "--source", source)
    assert_one_error(result, code, pattern)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(
    ("answer", "pattern"),
    [
        (
            Answer(
                200,
                b"\x1f\x8b\x08\x00garbage" * 10,
                {"Content-Encoding": "gzip", "Content-Type": "application/json"},
            ),
            "cannot be decoded",
        ),
        (
            Answer(
                200,
                gzip.compress(b"[" * 200_000 + b"]" * 200_000),
                {"Content-Encoding": "gzip", "Content-Type": "application/json"},
            ),
            "nested too deeply",
        ),
    ],
    ids=["bad-gzip", "json-200000-deep"],
)
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_an_unreadable_body_is_one_server_error_in_either_log_format(
    tmp_path: Path,
    prefect_server: PrefectServer,
    workload: GroundTruth,
    answer: Answer,
    pattern: str,
    log_format: str,
) -> None:
    def broken(exchange: Exchange) -> Answer | None:
        return answer if "/events/filter" in exchange.path else None

    since, until = window(workload)
    with through(prefect_server, broken) as proxy:
        result = run("--log-format", log_format, "export", "--api-url", proxy.api_url,
                     "--out", tmp_path / "ds", "--since", since, "--until", until,
                     "--source", "events")  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    if log_format == "json":
        records = [json.loads(line) for line in result.stderr.splitlines()]
        errors = [r["message"] for r in records if r["level"] == "error"]
    else:
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1
    assert re.search(pattern, errors[0]), errors[0]


# -- leaks: no credential in any output -----------------------------------------------------


@pytest.mark.parametrize("status", [400, 500])
@pytest.mark.parametrize("credential", ["api-key", "userinfo", "query-token"])
def test_a_server_echoing_the_request_never_shows_a_credential(
    tmp_path: Path,
    prefect_server: PrefectServer,
    workload: GroundTruth,
    status: int,
    credential: str,
) -> None:
    def echo(exchange: Exchange) -> Answer | None:
        if "/events/filter" in exchange.path:
            detail = {"headers": exchange.headers, "path": exchange.path}
            return json_answer({"detail": detail}, status)
        return None

    with through(prefect_server, echo) as proxy:
        url = proxy.api_url
        if credential == "userinfo":
            url = url.replace("http://", f"http://admin:{KEY}@")
        elif credential == "query-token":
            url = f"{url}?token={KEY}"
        result = export(url, tmp_path / "ds", workload, "--source", "events", "-v",
                        "--max-attempts", "1")  # fmt: skip
    code = 3 if status == 500 else 5
    error = assert_one_error(result, code, f"(answered|failing with) {status}")
    assert "***" in error
    assert "YWRtaW46" not in result.output  # base64 of "admin:", the basic auth header


def test_credentials_in_the_url_still_export_the_clean_data(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth, clean: pl.DataFrame
) -> None:
    url = prefect_server.api_url.replace("http://", f"http://admin:{KEY}@") + f"?token={KEY}"
    result = export(url, tmp_path / "ds", workload, "--source", "events", "-v")
    assert result.exit_code == 0, result.output
    assert scan_states(tmp_path / "ds").collect().sort("id").equals(clean)


# -- file systems -------------------------------------------------------------------------


def test_an_export_onto_a_disk_that_fills_up_is_exit_6_and_leaves_nothing(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    folder = tmp_path / "tiny"
    with mounted(folder, "size=2m") as ok:
        if not ok:
            pytest.skip("needs root to mount a 2 MB tmpfs (mount -t tmpfs)")
        filler = folder / "filler"
        filler.write_bytes(b"\0" * (shutil.disk_usage(folder).free - 12 * 1024))  # 12 KB left
        out = folder / "ds"
        result = export(prefect_server.api_url, out, workload, "--source", "events",
                        "--flush-rows", "100000")  # fmt: skip
        assert_one_error(result, 6, r"No space left on device\. Hint: the disk is full")
        assert sorted(p.name for p in folder.iterdir()) == ["filler"]


def test_an_export_into_a_read_only_mount_is_exit_6(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    with read_only(tmp_path / "ro") as folder:
        result = export(prefect_server.api_url, folder / "ds", workload)
        assert_one_error(result, 6, r"read-only|may not write")
        assert list(folder.iterdir()) == []


def test_a_dataset_on_a_full_disk_keeps_its_rows_and_cursor(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth, clean: pl.DataFrame
) -> None:
    folder = tmp_path / "tiny"
    with mounted(folder, "size=2m") as ok:
        if not ok:
            pytest.skip("needs root to mount a 2 MB tmpfs (mount -t tmpfs)")
        out = folder / "ds"
        since, until = window(workload)
        middle = workload.started_at + (workload.finished_at - workload.started_at) / 3
        first = run("export", "--api-url", prefect_server.api_url, "--out", out,
                    "--since", since, "--until", middle.isoformat())  # fmt: skip
        assert first.exit_code == 0, first.output
        before = files_of(out)
        marker = (out / MARKER_NAME).read_bytes()
        filler = folder / "filler"
        free = shutil.disk_usage(folder).free
        filler.write_bytes(b"\0" * max(0, free - 4096))
        result = run("export", "--api-url", prefect_server.api_url, "--out", out,
                     "--until", until)  # fmt: skip
        assert_one_error(result, 6, r"No space left on device")
        assert files_of(out) == before
        assert (out / MARKER_NAME).read_bytes() == marker
        rows = scan_states(out).collect().sort("id")
        assert rows.equals(clean.filter(clean["id"].is_in(rows["id"].implode())))

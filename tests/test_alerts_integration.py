"""Alerts on real Prefect servers: a hung run is flagged, and each finding is posted once.

A flow of our own (distinct names, run after the window of the workload whose runs other
tests count) runs a quick task five times, then a task that sleeps a minute; the process is
killed with SIGKILL two seconds into that task, so its task run stays Running for ever. The
task prints its own task-run id first: that is the ground truth the check must flag.

For the events, three ``check --emit-events`` runs against a 3.9.1 server, with SLA rules that
change between them, must leave on the server exactly one event per new finding and one
resolution per cleared finding (read back from ``/api/events/filter``), also when the state
file is rolled back as if the process had crashed between posting and recording.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import polars as pl
import pytest
from click.testing import CliRunner

import trs_analytics as ta
from trs_analytics.check import last_heartbeats
from trs_analytics.cli import main

if TYPE_CHECKING:
    from pathlib import Path

    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth

HANG = textwrap.dedent(
    """
    import json, sys, time
    from prefect import flow, task
    from prefect.runtime import task_run

    @task(name="trs-alert-quick")
    def quick() -> None:
        print("TRUTH " + json.dumps({"task_run_id": str(task_run.id), "hung": False}), flush=True)

    @task(name="trs-alert-hang")
    def hang() -> None:
        print("TRUTH " + json.dumps({"task_run_id": str(task_run.id), "hung": True}), flush=True)
        time.sleep(60)

    @flow(name="trs-alert-flow")
    def alerting() -> None:
        for _ in range(5):
            quick()
        hang()

    alerting()
    """
)


def _after_workload(workload: GroundTruth) -> datetime:
    """Wait until the window the workload's counting tests read is over; return a start."""
    after_window = workload.finished_at + timedelta(minutes=1, seconds=2)
    time.sleep(max(0.0, (after_window - datetime.now(UTC)).total_seconds()))
    return datetime.now(UTC) - timedelta(seconds=1)


def _run_and_kill(server: PrefectServer, tmp_path: Path, **settings: str) -> list[dict[str, Any]]:
    """Run HANG with the server's own Prefect; SIGKILL it 2 s into the hung task."""
    env = {**os.environ, **server.client_env(), "PREFECT_LOGGING_LEVEL": "WARNING", **settings}
    child = subprocess.Popen(
        [str(server.python), "-c", HANG],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    truth: list[dict[str, Any]] = []
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 180
        for line in child.stdout:
            if line.startswith("TRUTH "):
                truth.append(json.loads(line.removeprefix("TRUTH ")))
            if (truth and truth[-1]["hung"]) or time.monotonic() > deadline:
                break
        time.sleep(2.0)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return truth


def _wait_for(predicate: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(1.0)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s")


def _check(*args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["--log-format", "json", "check", *args])
    assert result.exit_code in (0, 1), result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == int(records[-1]["flagged"])
    return records


def _hung_run_is_flagged(server: PrefectServer, workload: GroundTruth, tmp_path: Path) -> None:
    started = _after_workload(workload)
    truth = _run_and_kill(server, tmp_path)
    hung = [t["task_run_id"] for t in truth if t["hung"]]
    assert len(truth) == 6
    assert len(hung) == 1
    api = server.api_url

    def readable() -> bool:
        states = ta.fetch_states(api, since=started, progress=False)
        mine = states.filter(pl.col("task_run_id").is_in([t["task_run_id"] for t in truth]))
        done = mine.filter(pl.col("type") == "COMPLETED")["task_run_id"].n_unique()
        running = mine.filter((pl.col("task_run_id") == hung[0]) & (pl.col("type") == "RUNNING"))
        return done == 5 and not running.is_empty()

    _wait_for(readable, "the quick runs' Completed and the hung run's Running state readable")
    since = started.isoformat()
    # defaults: the hung task has no finished run; its flow's five quick runs bound it
    records = _check("--api-url", api, "--since", since, "--recent", "1h")
    stuck = [r for r in records if r.get("event") == "finding" and r["kind"] == "stuck"]
    assert [(r["task_run_id"], r["check"]) for r in stuck] == [(hung[0], "RUNNING")]
    assert "k x p99 of flow_name" in stuck[0]["message"]
    # an absolute limit, and an SLA max_running rule, flag it as well
    rules = tmp_path / "sla.toml"
    rules.write_text('[[rule]]\ntask = "trs-alert-*"\nmax_running = "1s"\n', encoding="utf-8")
    records = _check(
        "--api-url", api, "--since", since, "--recent", "1h", "--stuck-after", "1s",
        "--min-history", "100", "--rules", str(rules),
    )  # fmt: skip
    found = [(r["kind"], r["check"], r["task_run_id"]) for r in records if "kind" in r]
    assert sorted(found) == [("sla", "max_running", hung[0]), ("stuck", "RUNNING", hung[0])]
    assert "(limit)" in next(r["message"] for r in records if r.get("kind") == "stuck")


def test_a_killed_flow_leaves_a_hung_run_that_check_flags_3_9(
    prefect_server: PrefectServer, workload: GroundTruth, tmp_path: Path
) -> None:
    _hung_run_is_flagged(prefect_server, workload, tmp_path)


def test_a_killed_flow_leaves_a_hung_run_that_check_flags_2_20(
    prefect_server_2_20: PrefectServer, workload_2_20: GroundTruth, tmp_path: Path
) -> None:
    _hung_run_is_flagged(prefect_server_2_20, workload_2_20, tmp_path)


def test_a_killed_flow_is_found_hung_by_its_heartbeats_3_9(
    prefect_server: PrefectServer, workload: GroundTruth, tmp_path: Path
) -> None:
    """3.9.1 sends prefect.flow-run.heartbeat from a plain `python flow.py` (every 30 s here,
    Prefect's minimum): once they stop for over --heartbeat-after, the open run is hung, with
    no run-time threshold at all (--min-history 100: no group has that much history).

    The run is killed, so no heartbeat follows its last one: a --heartbeat-after shorter
    than Prefect's interval (10 s, where a user sets more than 30 s to spare live runs) finds
    it hung 10 s after its last heartbeat instead of 45 s, and the same check with an hour
    does not: what decides is the last heartbeat's age against --heartbeat-after."""
    started = _after_workload(workload)
    truth = _run_and_kill(prefect_server, tmp_path, PREFECT_FLOWS_HEARTBEAT_FREQUENCY="30")
    killed = datetime.now(UTC)
    hung = [t["task_run_id"] for t in truth if t["hung"]]
    assert len(hung) == 1
    api = prefect_server.api_url
    with ta.PrefectClient(api) as client:
        beats = _wait_for(
            lambda: last_heartbeats(client, since=started, until=datetime.now(UTC)),
            "a heartbeat of the killed flow run on the server",
        )
    assert len(beats) == 1
    (last,) = beats.values()
    assert started < last < killed

    def check(heartbeat_after: str) -> list[dict[str, Any]]:
        args = ["--api-url", api, "--since", started.isoformat(), "--recent", "1h"]
        records = _check(*args, "--min-history", "100", "--heartbeat-after", heartbeat_after)
        return [r for r in records if r.get("event") == "finding"]

    def readable() -> bool:
        states = ta.fetch_states(api, since=started, progress=False)
        return not states.filter(
            (pl.col("task_run_id") == hung[0]) & (pl.col("type") == "RUNNING")
        ).is_empty()

    _wait_for(readable, "the hung run's Running state readable")
    assert check("1h") == []  # its last heartbeat is recent for an hour: not hung
    time.sleep(max(0.0, (last + timedelta(seconds=11) - datetime.now(UTC)).total_seconds()))
    found = check("10s")
    assert [(f["kind"], f["check"], f["task_run_id"]) for f in found] == [
        ("stuck", "heartbeat", hung[0])
    ]
    assert found[0]["flow_run_id"] == next(iter(beats))
    assert "sent no heartbeat for" in found[0]["message"]


PROBE = textwrap.dedent(
    """
    import json, time
    from prefect import flow, task
    from prefect.runtime import task_run

    @task(name="trs-emit-step")
    def step(seconds: float) -> None:
        time.sleep(seconds)
        print("TRUTH " + json.dumps({"task_run_id": str(task_run.id), "seconds": seconds}))

    @flow(name="trs-emit-flow")
    def probe() -> None:
        for seconds in [0.0, 0.0, 0.0, 2.0]:
            step(seconds)

    probe()
    """
)


def _our_events(api: str, run: str) -> list[dict[str, Any]]:
    body = {
        "filter": {
            "event": {"prefix": ["trs-analytics."]},
            "related": {"id": [f"prefect.task-run.{run}"]},
        },
        "limit": 50,
    }
    response = httpx.post(f"{api}/events/filter", json=body, timeout=10)
    response.raise_for_status()
    return list(response.json()["events"])


def test_three_checks_post_each_finding_once_and_its_resolution_once(
    prefect_server: PrefectServer, workload: GroundTruth, tmp_path: Path
) -> None:
    started = _after_workload(workload)
    env = {**os.environ, **prefect_server.client_env(), "PREFECT_LOGGING_LEVEL": "WARNING"}
    done = subprocess.run(
        [str(prefect_server.python), "-c", PROBE],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    truth = [json.loads(x[6:]) for x in done.stdout.splitlines() if x.startswith("TRUTH ")]
    slow = [t["task_run_id"] for t in truth if t["seconds"] > 0]
    assert len(truth) == 4
    assert len(slow) == 1
    api = prefect_server.api_url

    def readable() -> bool:
        states = ta.fetch_states(api, since=started, progress=False)
        mine = states.filter(pl.col("task_run_id").is_in([t["task_run_id"] for t in truth]))
        return mine.filter(pl.col("type") == "COMPLETED")["task_run_id"].n_unique() == 4

    _wait_for(readable, "every probe run's Completed state readable")
    first = tmp_path / "first.toml"
    first.write_text(
        '[[rule]]\nname = "render fast"\ntask = "trs-emit-*"\nmax_run_time = "1s"\n', "utf-8"
    )
    second = tmp_path / "second.toml"
    second.write_text(
        '[[rule]]\nname = "step/fast"\ntask = "trs-emit-*"\nmax_run_time = "1s"\n', "utf-8"
    )
    state = tmp_path / "check-state.json"
    now = datetime.now(UTC).isoformat()

    def check(rules: Path) -> dict[str, Any]:
        args = ["--api-url", api, "--since", started.isoformat(), "--now", now, "--recent", "1h"]
        records = _check(*args, "--rules", str(rules), "--emit-events", "--state", str(state))
        return records[-1]

    a = f"trs-analytics.check.sla.render-fast.max_run_time.{slow[0]}"
    b = f"trs-analytics.check.sla.step-fast.max_run_time.{slow[0]}"
    # 1: the breach under "render fast" is new; 2: seen again, nothing posted;
    # 3: the rule is now "step/fast": its breach is new, and "render fast"'s is resolved
    assert (check(first)["events"], check(first)["events"]) == (1, 0)
    before_third = state.read_bytes()
    third = check(second)
    assert (third["events"], third["resolved"]) == (1, 1)
    # a crash between posting and recording: the state file as it was before the third check
    state.write_bytes(before_third)
    again = check(second)
    assert (again["events"], again["resolved"]) == (1, 1)  # posted again, with the same ids
    expected = [
        ("trs-analytics.sla.breached", a),
        ("trs-analytics.sla.breached", b),
        ("trs-analytics.sla.resolved", a),
    ]

    def arrived() -> list[tuple[str, str]]:
        got = sorted(
            (e["event"], e["resource"]["prefect.resource.id"]) for e in _our_events(api, slow[0])
        )
        return got if len(got) >= len(expected) else []

    assert _wait_for(arrived, "the three events on the server") == expected
    time.sleep(5.0)  # the duplicate posts had time to be persisted too: still three
    got = sorted(
        (e["event"], e["resource"]["prefect.resource.id"]) for e in _our_events(api, slow[0])
    )
    assert got == expected
    # a fourth check with the same rules posts nothing more
    fourth = check(second)
    assert (fourth["events"], fourth["resolved"]) == (0, 0)

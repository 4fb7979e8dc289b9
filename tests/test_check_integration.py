"""``trs-analytics check`` against real Prefect servers, with ground truth the tasks record.

A flow of our own (a distinct name, run after the window of the workload whose runs other
tests count) runs one task fast three times, then once slow on purpose;
the task prints its own task-run id and sleep. ``check --emit-events`` must flag the slow run
(an SLA breach of max_run_time) and its event must arrive on the server, read back from
``/api/events/filter`` by its related task run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import polars as pl
import pytest
from click.testing import CliRunner

import trs_analytics as ta
from trs_analytics.check import _fill, finding_events
from trs_analytics.cli import main

if TYPE_CHECKING:
    from pathlib import Path

    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth

PROBE = textwrap.dedent(
    """
    import json, time
    from prefect import flow, task
    from prefect.runtime import task_run

    @task(name="trs-check-probe-step")
    def step(seconds: float) -> None:
        time.sleep(seconds)
        print("TRUTH " + json.dumps({"task_run_id": str(task_run.id), "seconds": seconds}))

    @flow(name="trs-check-probe")
    def probe() -> None:
        for seconds in [0.0] * 3 + [2.0]:
            step(seconds)

    probe()
    """
)

RULES = '[[rule]]\nname = "probe"\ntask = "trs-check-probe-step"\nmax_run_time = "1s"\n'


def _run_probe(server: PrefectServer, tmp_path: Path) -> list[dict[str, Any]]:
    env = {**server.client_env(), "PREFECT_LOGGING_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [x.removeprefix("TRUTH ") for x in done.stdout.splitlines() if x.startswith("TRUTH ")]
    return [json.loads(x) for x in lines]


def _wait_for(predicate: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(1.0)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s")


def test_check_flags_the_slow_run_and_its_event_arrives(
    prefect_server: PrefectServer, workload: GroundTruth, tmp_path: Path
) -> None:
    # the tests that count the workload's runs read its window, up to a minute after it:
    # our runs come after that (in a full run the workload finished long before)
    after_window = workload.finished_at + timedelta(minutes=1, seconds=2)
    time.sleep(max(0.0, (after_window - datetime.now(UTC)).total_seconds()))
    started = datetime.now(UTC) - timedelta(seconds=1)
    truth = _run_probe(prefect_server, tmp_path)
    slow = [t["task_run_id"] for t in truth if t["seconds"] > 0]
    assert len(truth) == 4
    assert len(slow) == 1
    api = prefect_server.api_url

    def readable() -> bool:
        states = ta.fetch_states(api, since=started, progress=False)
        mine = states.filter(pl.col("task_run_id").is_in([t["task_run_id"] for t in truth]))
        done = mine.filter(pl.col("type").is_in(["COMPLETED"]))
        return done["task_run_id"].n_unique() == len(truth)

    _wait_for(readable, "every probe run's Completed state readable")
    rules = tmp_path / "sla.toml"
    rules.write_text(RULES, encoding="utf-8")
    since = started.isoformat()
    result = CliRunner().invoke(
        main,
        ["--log-format", "json", "check", "--api-url", api, "--since", since,
         "--rules", str(rules), "--recent", "1h", "--emit-events",
         "--state", str(tmp_path / "check-state.json")],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    findings = [r for r in records if r.get("event") == "finding"]
    mine = [f for f in findings if f["kind"] == "sla"]
    assert [(f["check"], f["task_run_id"]) for f in mine] == [("max_run_time", slow[0])]
    assert mine[0]["url"] == f"{prefect_server.url.rstrip('/')}/runs/task-run/{slow[0]}"
    summary = records[-1]
    assert summary["event"] == "check"
    assert summary["flagged"] is True
    assert summary["events"] == len(findings)  # every finding is new

    def arrived() -> list[dict[str, Any]]:
        body = {
            "filter": {
                "event": {"prefix": ["trs-analytics."]},
                "related": {"id": [f"prefect.task-run.{slow[0]}"]},
            },
            "limit": 50,
        }
        response = httpx.post(f"{api}/events/filter", json=body, timeout=10)
        response.raise_for_status()
        return list(response.json()["events"])

    events = _wait_for(arrived, "the breach event on the server")
    assert [e["event"] for e in events] == ["trs-analytics.sla.breached"]
    related = {r["prefect.resource.role"]: r["prefect.resource.id"] for r in events[0]["related"]}
    assert related["task-run"] == f"prefect.task-run.{slow[0]}"
    assert related["flow-run"].startswith("prefect.flow-run.")
    assert events[0]["resource"]["prefect.resource.id"].startswith("trs-analytics.check.sla.probe.")
    assert events[0]["payload"]["task_run_id"] == slow[0]


def test_prefect_2_20_has_no_event_endpoint_and_says_so(
    prefect_server_2_20: PrefectServer,
) -> None:
    client = ta.PrefectClient(prefect_server_2_20.api_url)
    with client, pytest.raises(ta.NotFoundError, match=r"does not accept events.*Prefect 2"):
        client.post_events([{"event": "trs-analytics.test"}])


def test_prefect_3_2_accepts_events(prefect_server_3_2: PrefectServer) -> None:
    row = {
        "kind": "stuck",
        "check": "RUNNING",
        "subject": "probe",
        "task_run_id": "00000000-0000-4000-8000-000000000032",
        "at": datetime.now(UTC),
        "message": "stuck on purpose",
    }
    findings = pl.DataFrame([row]).select(_fill(pl.DataFrame([row])))
    api = prefect_server_3_2.api_url
    with ta.PrefectClient(api) as client:
        assert client.post_events(finding_events(findings)) == 1

    def arrived() -> list[dict[str, Any]]:
        body = {"filter": {"event": {"name": ["trs-analytics.run.stuck"]}}, "limit": 50}
        response = httpx.post(f"{api}/events/filter", json=body, timeout=10)
        response.raise_for_status()
        return [e for e in response.json()["events"] if e["payload"]["message"] == row["message"]]

    assert _wait_for(arrived, "the event on the 3.2 server")[0]["related"][0][
        "prefect.resource.id"
    ] == (f"prefect.task-run.{row['task_run_id']}")

"""Tests of the Prefect server harness and of the workload's ground truth.

Every claim :class:`~devtools.workload.GroundTruth` makes is checked against a real
Prefect server with raw httpx (``/api/task_runs/filter``, ``/api/task_run_states/``,
``/api/flow_runs/filter``), independently of trs_analytics' own fetcher: in detail
on the project's own Prefect (3.9.1), and on every line of :data:`LINES` (2.20,
3.2, 3.9) through the ``prefect_line`` fixture.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil
import pytest

from devtools.prefect_harness import (
    PREFECT_AUTH_STRING,
    PrefectServerError,
    basic_auth_header,
    clean_prefect_env,
    start_prefect_server,
)
from devtools.prefect_lines import LINES, MARKER, PrefectLineError, prefect_python, venvs_root
from devtools.workload import (
    DEPLOYMENTS,
    PATTERNS,
    SUBFLOWS,
    TASK_RUNS_PER_SCALE,
    TASKS,
    GroundTruth,
    flow_calls,
    patterns_for,
    plan,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from devtools.prefect_harness import PrefectServer
    from devtools.workload import TaskRunTruth
    from tests.conftest import ServerLine

# --------------------------------------------------------------------------- helpers


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _servers_with_home(home: Path) -> list[psutil.Process]:
    """Live processes whose PREFECT_HOME is ``home`` (a leaked server would be one)."""
    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if process.environ().get("PREFECT_HOME") == str(home):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _filter_all(client: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of a ``/filter`` endpoint, 200 at a time (nothing writes meanwhile)."""
    rows: list[dict[str, Any]] = []
    while True:
        page = client.post(path, json={**body, "limit": 200, "offset": len(rows)})
        page.raise_for_status()
        rows += page.json()
        if len(page.json()) < 200:
            return rows


# --------------------------------------------------------------------------- pure parts


def test_plan_scale_one_exceeds_one_page() -> None:
    assert TASK_RUNS_PER_SCALE == 234
    assert TASK_RUNS_PER_SCALE > 200  # the server's page cap


@pytest.mark.parametrize("scale", [1, 2, 5])
def test_plan_grows_linearly(scale: int) -> None:
    runs = plan(scale)
    assert sum(len(calls) for _, _, calls in runs) == scale * TASK_RUNS_PER_SCALE
    flows = Counter(flow for flow, _, _ in runs if flow is not None)
    assert flows == {
        "etl": 3 * scale,
        "reports": 3 * scale,
        "maintenance": 3 * scale,
        "cleanup": scale,  # a subflow of maintenance
    }
    assert runs[0][0] is None  # calls outside a flow come first


def test_plan_uses_every_pattern_and_task() -> None:
    calls = [call for _, _, batch in plan(1) for call in batch]
    assert {call.pattern for call in calls} == set(PATTERNS)
    assert {call.task for call in calls} == set(TASKS) | set(SUBFLOWS)
    counts = Counter(call.pattern for call in calls)
    assert counts["cache_hit"] == counts["cache_miss"] == 18


@pytest.mark.parametrize(
    ("pattern", "attempts", "final_type", "n_states"),
    [
        ("succeed", 1, "COMPLETED", 3),
        ("fail", 1, "FAILED", 3),
        ("retry_once_then_succeed", 2, "COMPLETED", 4),
        ("retry_twice_then_succeed", 3, "COMPLETED", 5),
        ("await_retry_then_succeed", 2, "COMPLETED", 5),
        ("retries_exhausted", 3, "FAILED", 5),
        ("await_retry_exhausted", 2, "FAILED", 5),
        ("cache_miss", 1, "COMPLETED", 3),
        ("cache_hit", 1, "COMPLETED", 3),
        ("subflow_parent", 1, "COMPLETED", 4),
    ],
)
def test_pattern_table(pattern: str, attempts: int, final_type: str, n_states: int) -> None:
    spec = PATTERNS[pattern]
    assert (spec.attempts, spec.final_type, len(spec.states)) == (attempts, final_type, n_states)
    # Every attempt but a cache hit runs the body once.
    assert spec.executions == (0 if pattern in {"cache_hit", "subflow_parent"} else attempts)


def test_clean_prefect_env_drops_user_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "https://api.prefect.cloud/api/accounts/a/workspaces/w")
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_secret")
    monkeypatch.setenv("PREFECT_PROFILE", "cloud")
    monkeypatch.setenv("KEEP_ME", "1")
    env = clean_prefect_env(tmp_path, PREFECT_SERVER_API_AUTH_STRING="a:b")
    prefect = {key: value for key, value in env.items() if key.startswith("PREFECT_")}
    assert prefect == {
        "PREFECT_HOME": str(tmp_path),
        "PREFECT_PROFILES_PATH": str(tmp_path / "profiles.toml"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_API_AUTH_STRING": "a:b",
    }
    assert env["KEEP_ME"] == "1"


# --------------------------------------------------------------------------- server lifecycle


@pytest.mark.integration
def test_startup_failure_names_exit_code_and_log(tmp_path: Path) -> None:
    with pytest.raises(PrefectServerError, match=r"exited with code [1-9]") as info:
        start_prefect_server(tmp_path, extra_env={"PREFECT_SERVER_LOGGING_LEVEL": "NOT_A_LEVEL"})
    assert "Log tail" in str(info.value)
    assert "NOT_A_LEVEL" in str(info.value)  # the server's own complaint is quoted
    assert _servers_with_home(tmp_path) == []


@pytest.mark.integration
def test_startup_timeout_stops_the_server(tmp_path: Path) -> None:
    with pytest.raises(PrefectServerError, match=r"was not healthy after"):
        start_prefect_server(tmp_path, timeout=0.5)
    assert _servers_with_home(tmp_path) == []


def test_session_server_is_healthy_with_a_clean_env(prefect_server: PrefectServer) -> None:
    assert httpx.get(f"{prefect_server.api_url}/health").json() is True
    env = psutil.Process(prefect_server.process.pid).environ()
    assert env["PREFECT_HOME"] == str(prefect_server.home)
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert "PREFECT_API_URL" not in env
    assert "PREFECT_API_KEY" not in env
    assert prefect_server.api_url == f"http://127.0.0.1:{prefect_server.port}/api"


@pytest.mark.integration
def test_auth_and_csrf_server_then_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One server with both protections; nothing is left after stop.

    The CSRF check runs before the auth check: a POST with neither gets 403, not 401.
    """
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_must_not_leak")
    server = start_prefect_server(tmp_path, auth_string=PREFECT_AUTH_STRING, csrf=True)
    try:
        assert "PREFECT_API_KEY" not in psutil.Process(server.process.pid).environ()
        auth = basic_auth_header(PREFECT_AUTH_STRING)
        assert httpx.get(f"{server.api_url}/admin/version").status_code == 401
        assert httpx.get(f"{server.api_url}/admin/version", headers=auth).json() is not None
        url = f"{server.api_url}/task_runs/filter"
        assert httpx.post(url, json={}).status_code == 403
        assert httpx.post(url, json={}, headers=auth).status_code == 403
        token = httpx.get(f"{server.api_url}/csrf-token", params={"client": "t"}, headers=auth)
        csrf = {"Prefect-Csrf-Token": token.json()["token"], "Prefect-Csrf-Client": "t"}
        assert httpx.post(url, json={}, headers=csrf).status_code == 401
        response = httpx.post(url, json={}, headers={**auth, **csrf})
        assert (response.status_code, response.json()) == (200, [])
    finally:
        server.stop()
    assert server.process.returncode == -signal.SIGTERM
    assert _servers_with_home(tmp_path) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.api_url}/health")
    server.stop()  # a second stop is harmless


# --------------------------------------------------------------------------- the workload


@pytest.fixture(scope="module")
def observed(
    prefect_server: PrefectServer, workload: GroundTruth
) -> Iterator[dict[str, dict[str, Any]]]:
    """The server's view of every workload task run: the run and its states, by id."""
    with httpx.Client(base_url=prefect_server.api_url, timeout=30.0) as client:
        ids = list(workload.task_runs)
        runs: list[dict[str, Any]] = []
        for start in range(0, len(ids), 200):
            chunk = ids[start : start + 200]
            body = {"task_runs": {"id": {"any_": chunk}}, "limit": 200}
            response = client.post("/task_runs/filter", json=body)
            response.raise_for_status()
            runs += response.json()
        view = {}
        for run in runs:
            states = client.get("/task_run_states/", params={"task_run_id": run["id"]})
            states.raise_for_status()
            view[run["id"]] = {"run": run, "states": states.json()}
        yield view


def test_workload_is_bigger_than_one_page(workload: GroundTruth) -> None:
    assert workload.n_task_runs == TASK_RUNS_PER_SCALE
    assert workload.n_states == sum(t.n_states for t in workload.task_runs.values())
    assert workload.mismatches == ()
    assert workload.prefect_version == "3.9.1"


def test_server_holds_exactly_the_workload(
    prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    """The workload's flow runs hold exactly its in-flow task runs (paged, > 200)."""
    with httpx.Client(base_url=prefect_server.api_url, timeout=30.0) as client:
        body = {"task_runs": {"flow_run_id": {"any_": list(workload.flow_runs)}}}
        in_flows = _filter_all(client, "/task_runs/filter", body)
        standalone = _filter_all(
            client, "/task_runs/filter", {"task_runs": {"flow_run_id": {"is_null_": True}}}
        )
    assert len(in_flows) > 200
    assert {run["id"] for run in in_flows} == {t.task_run_id for t in workload.select(in_flow=True)}
    expected_standalone = {t.task_run_id for t in workload.select(in_flow=False)}
    assert len(expected_standalone) == 8
    assert expected_standalone <= {run["id"] for run in standalone}


def test_every_task_run_found(observed: dict[str, dict[str, Any]], workload: GroundTruth) -> None:
    assert set(observed) == set(workload.task_runs)


@pytest.fixture
def pairs(
    observed: dict[str, dict[str, Any]], workload: GroundTruth
) -> list[tuple[TaskRunTruth, dict[str, Any], list[dict[str, Any]]]]:
    """(truth, server task run, server states) for every workload task run."""
    return [
        (truth, observed[key]["run"], observed[key]["states"])
        for key, truth in workload.task_runs.items()
    ]


def test_state_names_and_types_in_order(pairs: list[Any]) -> None:
    for truth, _, states in pairs:
        assert [s["name"] for s in states] == list(truth.states), truth
        assert [s["type"] for s in states] == list(truth.state_types), truth
        assert len(states) == truth.n_states
        stamps = [_parse_ts(s["timestamp"]) for s in states]
        assert stamps == sorted(stamps)
        assert len(set(stamps)) == len(stamps), "timestamps are unique per task run"


def test_final_state_and_run_count(pairs: list[Any]) -> None:
    for truth, run, states in pairs:
        assert (run["state_type"], run["state_name"]) == (truth.final_type, truth.final_name)
        assert run["state_id"] == states[-1]["id"]
        # run_count counts RUNNING-type states, so a cache hit counts 1 with no execution.
        assert run["run_count"] == truth.attempts == sum(s["type"] == "RUNNING" for s in states)
        assert truth.retries == sum(s["name"] == "Retrying" for s in states)
        assert run["empirical_policy"]["retries"] == truth.max_retries


def test_names_keys_tags_and_flow_runs(pairs: list[Any]) -> None:
    for truth, run, _ in pairs:
        assert re.fullmatch(truth.name_pattern, run["name"]), (truth.name_pattern, run["name"])
        if truth.run_name is not None:
            assert run["name"] == truth.run_name
        assert re.fullmatch(re.escape(truth.task_key_prefix) + "[0-9a-f]{8}", run["task_key"])
        assert sorted(run["tags"]) == list(truth.tags)
        assert run["flow_run_id"] == truth.flow_run_id


def test_custom_names_and_standalone_runs(workload: GroundTruth) -> None:
    renders = workload.select(task_name="render_report")
    assert len(renders) == 18
    assert {t.run_name for t in renders} >= {"report-emea-b0", "report-apac-b5"}
    standalone = workload.select(in_flow=False)
    assert {(t.task_name, t.flow_name, t.run_name) for t in standalone} == {
        ("ping", None, "ping"),
        ("probe", None, "probe"),
    }


def test_cache_hits_never_run_but_enter_running(workload: GroundTruth) -> None:
    hits = workload.select(pattern="cache_hit")
    assert len(hits) == 18
    assert {(t.executions, t.attempts, t.run_name, t.states) for t in hits} == {
        (0, 1, None, ("Pending", "Running", "Cached"))
    }


@pytest.mark.parametrize(
    ("pattern", "count", "executions"),
    [
        ("succeed", 150, 1),
        ("fail", 17, 1),
        ("retry_once_then_succeed", 6, 2),
        ("retry_twice_then_succeed", 6, 3),
        ("await_retry_then_succeed", 6, 2),
        ("retries_exhausted", 6, 3),
        ("await_retry_exhausted", 6, 2),
        ("cache_miss", 18, 1),
        ("cache_hit", 18, 0),
        ("subflow_parent", 1, 0),
    ],
)
def test_pattern_counts_and_executions(
    workload: GroundTruth, pattern: str, count: int, executions: int
) -> None:
    runs = workload.select(pattern=pattern)
    assert len(runs) == count
    assert {t.executions for t in runs} == {executions}


def test_awaiting_retry_waits_the_delay(pairs: list[Any]) -> None:
    """AwaitingRetry (SCHEDULED) carries scheduled_time ~0.2 s later; the next state follows it."""
    checked = 0
    for truth, _, states in pairs:
        for waiting, retrying in itertools.pairwise(states):
            if waiting["name"] != "AwaitingRetry":
                continue
            scheduled = _parse_ts(waiting["state_details"]["scheduled_time"])
            delay = scheduled - _parse_ts(waiting["timestamp"])
            assert timedelta(seconds=0.15) <= delay <= timedelta(seconds=0.5), truth
            assert retrying["name"] == "Retrying"
            assert _parse_ts(retrying["timestamp"]) >= scheduled - timedelta(milliseconds=50)
            checked += 1
    assert checked == 12


def test_states_fall_inside_the_run_window(pairs: list[Any], workload: GroundTruth) -> None:
    for _, _, states in pairs:
        for state in states:
            assert workload.started_at <= _parse_ts(state["timestamp"]) <= workload.finished_at


def test_flow_runs_completed_with_their_names(
    prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    with httpx.Client(base_url=prefect_server.api_url, timeout=30.0) as client:
        body = {"flow_runs": {"id": {"any_": list(workload.flow_runs)}}}
        flow_runs = _filter_all(client, "/flow_runs/filter", body)
        flows = _filter_all(client, "/flows/filter", {})
    flow_names = {flow["id"]: flow["name"] for flow in flows}
    assert len(flow_runs) == len(workload.flow_runs) == 10
    for run in flow_runs:
        truth = workload.flow_runs[run["id"]]
        assert flow_names[run["flow_id"]] == truth.flow_name
        assert run["state_type"] == "COMPLETED"
        assert len(truth.task_run_ids) == len(flow_calls(truth.flow_name, truth.index))


def test_ground_truth_round_trips(workload: GroundTruth, tmp_path: Path) -> None:
    path = tmp_path / "truth.json"
    workload.dump(path)
    assert GroundTruth.load(path) == workload
    assert json.loads(path.read_text())["scale"] == 1
    frame = workload.to_frame()
    assert frame.height == workload.n_task_runs
    assert frame["n_states"].sum() == workload.n_states


def test_flow_runs_record_deployment_pool_and_times(
    prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    """etl and reports run from deployments in work pools; maintenance is called directly."""
    deployed = {
        (t.flow_name, t.deployment_name, t.work_pool_name) for t in workload.flow_runs.values()
    }
    assert deployed == {
        ("etl", "etl-nightly", "trs-batch"),
        ("reports", "reports-daily", "trs-reports"),
        ("maintenance", None, None),
        ("cleanup", None, None),
    }
    for truth in workload.flow_runs.values():
        assert truth.started_at is not None
        assert truth.ended_at is not None
        assert workload.started_at <= truth.started_at <= truth.ended_at <= workload.finished_at


# --------------------------------------------------------------------------- every line


def test_lines_are_the_supported_ones() -> None:
    assert {key: line.version for key, line in LINES.items()} == {
        "2.20": "2.20.16",
        "3.2": "3.2.15",
        "3.9": "3.9.1",
    }
    assert [line.own for line in LINES.values()] == [False, False, True]


def test_venvs_live_outside_the_repository() -> None:
    root = Path(__file__).resolve().parents[1]
    assert not venvs_root().resolve().is_relative_to(root)


def _count(client: httpx.Client, kind: str, body: dict[str, Any]) -> int:
    response = client.post(f"/{kind}/count", json=body)
    response.raise_for_status()
    return int(response.json())


def test_line_server_answers_its_version(
    prefect_line: ServerLine, request: pytest.FixtureRequest
) -> None:
    line = LINES[request.node.callspec.params["prefect_line"]]
    server, truth = prefect_line
    version = httpx.get(f"{server.api_url}/admin/version", headers=server.headers)
    assert version.json() == server.version == line.version
    assert truth.prefect_version == line.version  # the workload ran with the line's own client
    # The server runs the line's own console script (the venv's python is a symlink).
    assert str(server.python.parent / "prefect") in psutil.Process(server.process.pid).cmdline()


def test_line_counts_match_the_truth(prefect_line: ServerLine) -> None:
    """/task_runs/count and /flow_runs/count hold exactly the workload's runs, by id."""
    server, truth = prefect_line
    with httpx.Client(base_url=server.api_url, timeout=30.0) as client:
        task_ids = {"task_runs": {"id": {"any_": list(truth.task_runs)}}}
        flow_ids = {"flow_runs": {"id": {"any_": list(truth.flow_runs)}}}
        assert _count(client, "task_runs", task_ids) == truth.n_task_runs == TASK_RUNS_PER_SCALE
        assert _count(client, "flow_runs", flow_ids) == len(truth.flow_runs) == 10
        ids = [t.task_run_id for t in truth.select(in_flow=False)]
        standalone = {"task_runs": {"id": {"any_": ids}, "flow_run_id": {"is_null_": True}}}
        assert _count(client, "task_runs", standalone) == len(ids) == 8


def test_line_deployments_and_work_pools(prefect_line: ServerLine) -> None:
    """The deployment and work-pool filters of /flow_runs/count match the truth."""
    server, truth = prefect_line
    with httpx.Client(base_url=server.api_url, timeout=30.0) as client:
        for flow_name, (deployment_name, pool_name) in DEPLOYMENTS.items():
            runs = [t for t in truth.flow_runs.values() if t.flow_name == flow_name]
            assert {(t.deployment_name, t.work_pool_name) for t in runs} == {
                (deployment_name, pool_name)
            }
            (deployment_id,) = {t.deployment_id for t in runs}
            body = {"deployments": {"id": {"any_": [deployment_id]}}}
            assert _count(client, "flow_runs", body) == len(runs) == 3
            body = {"work_pools": {"name": {"any_": [pool_name]}}}
            assert _count(client, "flow_runs", body) == len(runs)
            in_deployment = {"deployments": {"id": {"any_": [deployment_id]}}}
            expected = len(truth.select(flow_name=flow_name))
            assert _count(client, "task_runs", in_deployment) == expected
        direct = [t for t in truth.flow_runs.values() if t.deployment_id is None]
        assert {t.flow_name for t in direct} == {"maintenance", "cleanup"}


def test_line_states_and_final_states(prefect_line: ServerLine) -> None:
    """Every task run holds exactly the states the line records for its pattern."""
    server, truth = prefect_line
    patterns = patterns_for(truth.prefect_version)
    with httpx.Client(base_url=server.api_url, timeout=30.0) as client:
        runs = _filter_all(
            client, "/task_runs/filter", {"task_runs": {"id": {"any_": list(truth.task_runs)}}}
        )
        assert len(runs) == truth.n_task_runs
        for run in runs:
            expected = truth.task_runs[run["id"]]
            states = client.get("/task_run_states/", params={"task_run_id": run["id"]}).json()
            assert tuple(s["name"] for s in states) == expected.states
            assert expected.states == patterns[expected.pattern].states
            assert tuple(s["type"] for s in states) == expected.state_types
            assert (run["state_type"], run["state_name"]) == (
                expected.final_type,
                expected.final_name,
            )
            assert run["run_count"] == expected.attempts, expected
            assert run["flow_run_id"] == expected.flow_run_id
            assert re.fullmatch(expected.name_pattern, run["name"]), (expected, run["name"])
            assert sorted(run["tags"]) == list(expected.tags)


def test_line_flow_runs_final_state_and_times(prefect_line: ServerLine) -> None:
    """Flow runs completed; the times taken inside each flow lie within its server run."""
    server, truth = prefect_line
    with httpx.Client(base_url=server.api_url, timeout=30.0) as client:
        body = {"flow_runs": {"id": {"any_": list(truth.flow_runs)}}}
        runs = _filter_all(client, "/flow_runs/filter", body)
    assert len(runs) == len(truth.flow_runs)
    for run in runs:
        expected = truth.flow_runs[run["id"]]
        assert run["state_type"] == expected.final_type == "COMPLETED"
        assert run["deployment_id"] == expected.deployment_id
        assert run["work_pool_name"] == expected.work_pool_name
        assert expected.started_at is not None
        assert expected.ended_at is not None
        assert _parse_ts(run["start_time"]) <= expected.started_at <= expected.ended_at
        assert expected.ended_at <= _parse_ts(run["end_time"])


def test_prefect_leaves_the_home_folder_alone(tmp_path: Path) -> None:
    """Importing Prefect creates its home folder: the run points it away from ``~/.prefect``."""
    env = {**os.environ, "HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-c", "import prefect"], env=env, check=True, timeout=120)
    assert list(tmp_path.iterdir()) == []
    for name in ("PREFECT_HOME", "IPYTHONDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        assert not Path(os.environ[name]).is_relative_to(Path.home()), name


# --------------------------------------------------------------------------- line virtualenvs


def test_own_line_runs_from_this_interpreter() -> None:
    assert prefect_python(LINES["3.9"]) == Path(sys.executable)


def test_a_built_venv_is_reused_without_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    line = LINES["2.20"]
    venv = tmp_path / f"prefect-{line.version}"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "prefect").touch()
    marker = {"version": line.version, "exclude_newer": line.exclude_newer}
    (venv / MARKER).write_text(json.dumps(marker))
    monkeypatch.setenv("UV", "/bin/false")  # any build attempt would fail
    assert prefect_python(line, root=tmp_path) == venv / "bin" / "python"


@pytest.mark.parametrize(
    "marker",
    [
        None,
        {"version": "3.2.14", "exclude_newer": "2025-04-01"},
        {"version": "3.2.15", "exclude_newer": "2025-03-01"},
    ],
)
def test_an_unfinished_or_stale_venv_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marker: dict[str, str] | None
) -> None:
    """No marker (an interrupted build) or another release's or date's: rebuilt; uv quoted."""
    line = LINES["3.2"]
    venv = tmp_path / f"prefect-{line.version}"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "prefect").touch()
    if marker is not None:
        (venv / MARKER).write_text(json.dumps(marker))
    uv = tmp_path / "uv"
    uv.write_text("#!/bin/sh\necho uv says no: $@ >&2\nexit 2\n")
    uv.chmod(0o755)
    monkeypatch.setenv("UV", str(uv))
    with pytest.raises(PrefectLineError, match=r"exited with code 2:\nuv says no: venv .*3\.11"):
        prefect_python(line, root=tmp_path)
    assert not venv.exists()  # the stale one was removed before the build

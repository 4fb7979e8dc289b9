"""Run the workload in a child process and wait until the server shows all it did.

:func:`run_workload` starts ``python -m devtools.workload`` (the child process,
:mod:`devtools.workload._child`) with the interpreter it is given, so a Prefect
line runs the workload with its own client and Prefect's settings and global
state never touch the calling process. Then :func:`wait_until_recorded` polls
the server until it holds every state of the child's :class:`GroundTruth`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

import httpx

from devtools.workload._plan import WorkloadError
from devtools.workload._rest import auth_headers, call_api
from devtools.workload._truth import GroundTruth

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from devtools.workload._truth import FlowRunTruth, TaskRunTruth

__all__ = ["RECORD_TIMEOUT", "RUN_TIMEOUT_PER_SCALE", "run_workload", "wait_until_recorded"]

#: The folder that holds ``devtools/``: the child process imports the package from it.
ROOT: Final = Path(__file__).resolve().parents[2]

#: Seconds the subprocess may take per unit of scale (plus a fixed startup allowance).
RUN_TIMEOUT_PER_SCALE: Final = 120.0
#: Seconds to wait for the server to show every state after the run.
RECORD_TIMEOUT: Final = 60.0


def run_workload(
    api_url: str,
    *,
    scale: int = 1,
    out_dir: Path,
    auth_string: str | None = None,
    env: Mapping[str, str] | None = None,
    python: Path | None = None,
    record_timeout: float = RECORD_TIMEOUT,
    wait_for_events: bool = True,
) -> GroundTruth:
    """Run the workload against ``api_url`` in a subprocess and return its ground truth.

    Waits until the server shows every expected state of every task run, and
    every flow run in its final state.

    Args:
        api_url: the server's API URL, e.g. ``http://127.0.0.1:4200/api``.
        scale: multiplies every count (``scale * TASK_RUNS_PER_SCALE`` task runs).
        out_dir: where the subprocess writes ``ground_truth.json``, its logs and
            its ``PREFECT_HOME`` (result storage for the cached task).
        auth_string: ``user:password`` when the server demands basic auth.
        env: the subprocess's base environment (default ``os.environ``); every
            ``PREFECT_*`` variable in it is dropped.
        python: the interpreter to run the workload with, so the client is the
            Prefect of that environment (default: this interpreter). It runs
            ``python -m devtools.workload`` with this repository on PYTHONPATH,
            so it needs only Prefect (and its httpx).
        record_timeout: seconds to wait for the server to show every state.
        wait_for_events: also wait for the event store to hold every state's event
            (False: return as soon as the per-run states are readable, as a user who
            fetches right after a run does).

    Raises:
        WorkloadError: the subprocess failed, observations disagree with the
            plan, or the states did not all become readable in time.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    child_env = _workload_env(api_url, out_dir / "home", auth_string, env or os.environ)
    log_path = out_dir / "workload.log"
    command = [str(python or sys.executable), "-m", "devtools.workload", "--api-url", api_url]
    command += ["--scale", str(scale), "--out", str(out_dir)]
    with log_path.open("wb") as log:
        try:
            result = subprocess.run(
                command,
                env=child_env,
                cwd=out_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=30.0 + RUN_TIMEOUT_PER_SCALE * scale,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise WorkloadError(f"Workload timed out. Log tail:\n{_tail(log_path)}") from err
    if result.returncode != 0:
        raise WorkloadError(
            f"Workload exited with code {result.returncode}. Log tail:\n{_tail(log_path)}"
        )
    truth = GroundTruth.load(out_dir / "ground_truth.json")
    if truth.mismatches:
        shown = "\n".join(truth.mismatches[:20])
        raise WorkloadError(
            f"{len(truth.mismatches)} observations disagree with the plan:\n{shown}"
        )
    headers = auth_headers(auth_string)
    wait_until_recorded(
        api_url, truth, headers=headers, timeout=record_timeout, events=wait_for_events
    )
    return truth


def wait_until_recorded(
    api_url: str,
    truth: GroundTruth,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = RECORD_TIMEOUT,
    events: bool = True,
) -> None:
    """Poll the server until it holds every state and every final flow-run state of ``truth``
    (and, with ``events``, every task-run state's event).

    Prefect 2 writes states through the API as they happen; Prefect 3 sends
    them as events that a server service persists a few seconds later. First
    ``/task_runs/count`` and ``/flow_runs/count`` must reach the truth's counts,
    then every task run must show all its states (``/task_run_states/``) and every
    flow run its final state type.

    Raises:
        WorkloadError: after ``timeout`` seconds, saying what is still missing.
    """
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=api_url, headers=dict(headers or {}), timeout=10.0) as client:
        checks: list[Callable[[], str | None]] = [
            lambda: _count_missing(client, "task_runs", list(truth.task_runs)),
            lambda: _count_missing(client, "flow_runs", list(truth.flow_runs)),
            _states_missing(client, truth.task_runs.values()),
            lambda: _flow_runs_unfinished(client, truth.flow_runs.values()),
            _flow_run_states_missing(client, truth.flow_runs.values()),
        ]
        if events and not truth.prefect_version.startswith("2."):
            # the event persister is a service of its own: states readable per run do
            # not mean their events are (seen on 3.2.15: 739 of 744 a moment later)
            checks.append(lambda: _events_missing(client, truth))
        for check in checks:
            while (missing := check()) is not None:
                if time.monotonic() > deadline:
                    raise WorkloadError(
                        f"the server at {api_url} still lacks {missing} after {timeout:.0f} s. "
                        "Hint: is the server's task-run recorder (event persister) on?"
                    )
                time.sleep(0.5)


def _events_missing(client: httpx.Client, truth: GroundTruth) -> str | None:
    """Say how many task-run state events the server's event store still lacks, or None."""
    since = truth.started_at - timedelta(minutes=1)
    until = datetime.now(UTC) + timedelta(minutes=1)
    body = {
        "filter": {
            "event": {"prefix": ["prefect.task-run."]},
            "occurred": {"since": since.isoformat(), "until": until.isoformat()},
        },
        "limit": 1,
    }
    response = call_api(client, "POST", "/events/filter", json=body)
    total = int(response.json().get("total", 0))
    # a subflow's parent task run is orchestrated through the API: no events (3.9.1)
    expected = sum(t.n_states for t in truth.task_runs.values() if t.pattern != "subflow_parent")
    if total >= expected:
        return None
    return f"{expected - total} of {expected} task-run state events"


def _count_missing(client: httpx.Client, kind: str, ids: list[str]) -> str | None:
    """``/{kind}/count`` of ``ids``; a description of the gap, or None when all are there."""
    if not ids:
        return None
    response = call_api(client, "POST", f"/{kind}/count", json={kind: {"id": {"any_": ids}}})
    count = int(response.json())
    return None if count == len(ids) else f"{kind}: {count} of {len(ids)} counted"


def _states_missing(
    client: httpx.Client, task_runs: Iterable[TaskRunTruth]
) -> Callable[[], str | None]:
    """A check that re-reads only the task runs still short of states."""
    waiting = {truth.task_run_id: truth.n_states for truth in task_runs}
    seen: dict[str, int] = {}

    def check() -> str | None:
        for task_run_id, expected in list(waiting.items()):
            response = call_api(
                client, "GET", "/task_run_states/", params={"task_run_id": task_run_id}
            )
            seen[task_run_id] = len(response.json())
            if seen[task_run_id] >= expected:
                del waiting[task_run_id]
        if not waiting:
            return None
        sample = ", ".join(f"{k}: {seen.get(k, 0)}/{v}" for k, v in list(waiting.items())[:5])
        return f"states of {len(waiting)} task runs (seen/expected: {sample})"

    return check


def _flow_run_states_missing(
    client: httpx.Client, flow_runs: Iterable[FlowRunTruth]
) -> Callable[[], str | None]:
    """A check that re-reads only the flow runs still short of states."""
    waiting = {truth.flow_run_id: truth.n_states for truth in flow_runs}

    def check() -> str | None:
        for flow_run_id, expected in list(waiting.items()):
            response = call_api(
                client, "GET", "/flow_run_states/", params={"flow_run_id": flow_run_id}
            )
            if len(response.json()) >= expected:
                del waiting[flow_run_id]
        return f"states of {len(waiting)} flow runs" if waiting else None

    return check


def _flow_runs_unfinished(client: httpx.Client, flow_runs: Iterable[FlowRunTruth]) -> str | None:
    expected = {truth.flow_run_id: truth.final_type for truth in flow_runs}
    if not expected:
        return None
    got: dict[str, str] = {}
    ids = list(expected)
    for start in range(0, len(ids), 200):
        body = {"flow_runs": {"id": {"any_": ids[start : start + 200]}}, "limit": 200}
        response = call_api(client, "POST", "/flow_runs/filter", json=body)
        got |= {run["id"]: run["state_type"] for run in response.json()}
    wrong = [f"{key}: {got.get(key)}" for key, final in expected.items() if got.get(key) != final]
    return f"final states of {len(wrong)} flow runs ({', '.join(wrong[:3])})" if wrong else None


def _workload_env(
    api_url: str, home: Path, auth_string: str | None, base: Mapping[str, str]
) -> dict[str, str]:
    """The child's environment: ``base`` without Prefect's settings or another venv's paths."""
    env = {key: value for key, value in base.items() if not key.startswith("PREFECT_")}
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):  # another line's venv may run it
        env.pop(key, None)
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_PROFILES_PATH=str(home / "profiles.toml"),
        PREFECT_API_URL=api_url,
        PREFECT_LOGGING_TO_API_ENABLED="false",
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW="ignore",
        PREFECT_LOGGING_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(ROOT),  # devtools only: the line's own venv holds Prefect
    )
    if auth_string is not None:
        env["PREFECT_API_AUTH_STRING"] = auth_string
    return env


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

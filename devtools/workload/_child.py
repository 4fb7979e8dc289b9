"""The child process: runs the planned flows and tasks with Prefect, records what they did.

Started by :func:`~devtools.workload.run_workload` as ``python -m devtools.workload
--api-url … --scale … --out …``, possibly with another Prefect line's interpreter:
it imports only the standard library, httpx (a Prefect dependency), the plan and
the truth, and Prefect lazily, so that importing the package (conftest does)
never loads Prefect.

Every execution of a task body appends a JSON line (task run id, attempt, raise or
return) to ``executions.jsonl``, and every flow records the state each call
returned; :meth:`Workload.run` checks those observations against the
plan and the process writes ``ground_truth.json``. What a run observed lives in
one :class:`Workload` object: the tasks and flows are closures over it.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from devtools.workload._plan import (
    CONCURRENCY_LIMITS,
    DEPLOYMENTS,
    FLOWS,
    SUBFLOWS,
    TASKS,
    Call,
    WorkloadError,
    flow_calls,
    flow_run_states_for,
    patterns_for,
    plan,
    retry_delay,
)
from devtools.workload._rest import auth_headers, call_api
from devtools.workload._truth import (
    GroundTruth,
    TaskRunTruth,
    flow_run_of,
    peak_running,
    task_run_truth,
)

if TYPE_CHECKING:
    from devtools.workload._truth import FlowRunTruth

__all__ = ["Workload", "main"]


class Workload:
    """One run of the workload in this process: its Prefect tasks and flows, and what they saw.

    Args:
        out: the folder of ``executions.jsonl`` (emptied here).
        version: the client's Prefect version (``prefect.__version__``).
    """

    def __init__(self, out: Path, version: str) -> None:
        self.version = version
        self.major = int(version.split(".")[0])
        self.executions_log = out / "executions.jsonl"
        self.executions_log.write_text("")
        self.lock = threading.Lock()  # the task runner's threads append to the log
        self.calls: list[dict[str, Any]] = []
        self.flow_runs: list[dict[str, Any]] = []
        self.flow_times: dict[str, dict[str, str | None]] = {}
        self.tasks = {name: self._make_task(name) for name in TASKS}
        self.flows = {name: self._make_flow(name) for name in FLOWS}

    # -- tasks and flows ------------------------------------------------------

    def _execute(self, item: str, fail_attempts: int) -> str:
        """The body every task shares: record the execution, then raise or return."""
        from prefect.runtime import task_run

        entered_at = datetime.now(UTC).isoformat()
        attempt = int(task_run.run_count)
        outcome = "raise" if attempt <= fail_attempts else "return"
        time.sleep(TASKS[task_run.task_name].hold_seconds)
        line = {
            "task_run_id": str(task_run.id),
            "task_name": task_run.task_name,
            "run_name": task_run.name,
            "attempt": attempt,
            "outcome": outcome,
            "item": item,
            "entered_at": entered_at,
            "exited_at": datetime.now(UTC).isoformat(),
        }
        with self.lock, self.executions_log.open("a") as log:
            log.write(json.dumps(line) + "\n")
        if outcome == "raise":
            raise WorkloadError(f"planned failure of {item!r} on attempt {attempt}")
        return item

    def _make_task(self, name: str) -> Any:
        """The ``@task`` of :data:`TASKS` ``[name]``, as this Prefect line takes it."""
        from prefect import task

        def body(item: str, fail_attempts: int) -> str:
            return self._execute(item, fail_attempts)

        # Named like the task, so its task_key starts with the task's name.
        body.__name__ = body.__qualname__ = name
        spec = TASKS[name]
        if self.major >= 3:
            from prefect.cache_policies import INPUTS, NO_CACHE

            caching: dict[str, Any] = {"cache_policy": INPUTS if spec.cached else NO_CACHE}
        else:  # Prefect 2 caches by a key function
            from prefect.tasks import task_input_hash

            caching = {"cache_key_fn": task_input_hash} if spec.cached else {}
        decorate = task(
            name=name,
            retries=spec.retries,
            retry_delay_seconds=retry_delay(spec, self.version),
            tags=list(spec.tags),
            task_run_name=spec.task_run_name,
            persist_result=spec.cached,
            **caching,
        )
        return decorate(body)

    def _make_flow(self, name: str) -> Any:
        """The ``@flow`` of :data:`FLOWS` ``[name]``: runs its calls, records its times."""
        from prefect import flow

        def flow_body(index: int, nonce: str) -> int:
            from prefect.context import FlowRunContext
            from prefect.runtime import flow_run

            started_at = datetime.now(UTC).isoformat()
            calls = flow_calls(name, index, nonce)
            if name in SUBFLOWS:
                self._run_concurrently(calls, name)
            else:
                self._run_calls(calls, name, nonce)
            context = FlowRunContext.get()
            run = context.flow_run if context is not None else None
            scheduled = flow_run.scheduled_start_time
            self.flow_times[str(flow_run.id)] = {
                "started_at": started_at,
                "ended_at": datetime.now(UTC).isoformat(),
                "expected_start_time": _utc_iso(scheduled),
                "parent_task_run_id": _str_or_none(getattr(run, "parent_task_run_id", None)),
                "parent_flow_run_id": _str_or_none(flow_run.parent_flow_run_id),
            }
            return index

        flow_body.__name__ = flow_body.__qualname__ = name
        return flow(name=name, log_prints=False)(flow_body)

    def _record_call(self, call: Call, task_run_id: str, state: Any, flow_name: str | None) -> None:
        from prefect.runtime import flow_run

        self.calls.append(
            {
                "call": asdict(call),
                "task_run_id": task_run_id,
                "final_type": state.type.value,
                "final_name": state.name,
                "flow_name": flow_name,
                "flow_run_id": str(flow_run.id) if flow_name is not None else None,
            }
        )

    def _run_calls(self, calls: list[Call], flow_name: str | None, nonce: str = "") -> None:
        for call in calls:
            if call.task in SUBFLOWS:
                # the subflow records its parent task run (its id is only known inside it)
                state = self.flows[call.task](call.batch, nonce, return_state=True)
                inside = self.flow_times[str(state.state_details.flow_run_id)]
                self._record_call(call, str(inside["parent_task_run_id"]), state, flow_name)
                self.flow_runs.append(
                    {
                        "flow_run_id": str(state.state_details.flow_run_id),
                        "flow_name": call.task,
                        "index": call.batch,
                        "final_type": state.type.value,
                        "final_name": state.name,
                        "kind": "subflow",
                    }
                )
                continue
            state = self.tasks[call.task](call.item, call.fail_attempts, return_state=True)
            self._record_call(call, str(state.state_details.task_run_id), state, flow_name)

    def _run_concurrently(self, calls: list[Call], flow_name: str) -> None:
        """Submit every call at once (the task runner's threads), then wait for all."""
        futures = [self.tasks[c.task].submit(c.item, c.fail_attempts) for c in calls]
        for call, future in zip(calls, futures, strict=True):
            state = future.wait()  # Prefect 2 returns the final state
            if state is None:  # Prefect 3 returns None and holds it on the future
                state = future.state
            self._record_call(call, str(state.state_details.task_run_id), state, flow_name)

    # -- the run ----------------------------------------------------------------

    def run(self, client: httpx.Client, *, scale: int) -> GroundTruth:
        """Run the workload at ``scale`` through ``client``'s server; return what it did."""
        deployments = _create_deployments(client)
        limits = _create_concurrency_limits(client)
        nonce = uuid.uuid4().hex[:12]
        started_at = datetime.now(UTC)
        clock = time.monotonic()
        self._run_plan(client, deployments, scale=scale, nonce=nonce)
        elapsed = time.monotonic() - clock
        finished_at = datetime.now(UTC)
        task_runs, flow_runs, mismatches = self._observed(limits)
        return GroundTruth(
            scale=scale,
            prefect_version=self.version,
            nonce=nonce,
            started_at=started_at,
            finished_at=finished_at,
            task_runs=task_runs,
            flow_runs=flow_runs,
            mismatches=tuple(mismatches),
            elapsed_seconds=round(elapsed, 3),
            concurrency_limits=limits,
        )

    def _run_plan(
        self,
        client: httpx.Client,
        deployments: dict[str, dict[str, str]],
        *,
        scale: int,
        nonce: str,
    ) -> None:
        """Run :func:`~devtools.workload.plan` ``(scale, nonce)``: deployed flows as a worker would."""
        for flow_name, index, calls in plan(scale, nonce):
            if flow_name is None:
                self._run_calls(calls, None)
                continue
            if flow_name in SUBFLOWS:  # run by its parent flow
                continue
            parameters = {"index": index, "nonce": nonce}
            deployed = deployments.get(flow_name, {})
            if deployed:
                flow_run_id = _create_flow_run(client, deployed["deployment_id"], parameters)
                state = self._run_deployed(self.flows[flow_name], flow_run_id, parameters)
            else:
                state = self.flows[flow_name](index, nonce, return_state=True)
                flow_run_id = str(state.state_details.flow_run_id)
            self.flow_runs.append(
                {
                    "flow_run_id": flow_run_id,
                    "flow_name": flow_name,
                    "index": index,
                    "final_type": state.type.value,
                    "final_name": state.name,
                    "kind": "deployed" if deployed else "direct",
                    **deployed,
                }
            )

    def _run_deployed(self, flow: Any, flow_run_id: str, parameters: dict[str, Any]) -> Any:
        """Run an existing flow run (created from a deployment) in this process; return its state.

        What a worker's subprocess does, minus loading the flow from its entrypoint:
        Prefect 3's ``flow_engine.run_flow`` takes the flow run; Prefect 2's
        ``engine.begin_flow_run`` does, on Prefect's event-loop thread.
        """
        from uuid import UUID

        from prefect.client.orchestration import get_client

        if self.major >= 3:
            from prefect.flow_engine import run_flow

            with get_client(sync_client=True) as sync_client:
                flow_run = sync_client.read_flow_run(UUID(flow_run_id))
            return run_flow(flow, flow_run=flow_run, parameters=parameters, return_type="state")

        import importlib

        concurrency = importlib.import_module("prefect._internal.concurrency.api")
        engine = importlib.import_module("prefect.engine")
        user_thread = threading.current_thread()

        async def begin() -> Any:
            async with get_client() as client:
                flow_run = await client.read_flow_run(UUID(flow_run_id))
                return await engine.begin_flow_run(
                    flow=flow,
                    flow_run=flow_run,
                    parameters=parameters,
                    client=client,
                    user_thread=user_thread,
                )

        return concurrency.from_sync.wait_for_call_in_loop_thread(concurrency.create_call(begin))

    # -- the truth ----------------------------------------------------------------

    def _observed(
        self, limits: dict[str, int]
    ) -> tuple[dict[str, TaskRunTruth], dict[str, FlowRunTruth], list[str]]:
        """The task runs and flow runs, and where an observation disagrees with the plan."""
        executions = [json.loads(line) for line in self.executions_log.read_text().splitlines()]
        by_run: dict[str, list[dict[str, Any]]] = {}
        for execution in executions:
            by_run.setdefault(execution["task_run_id"], []).append(execution)
        patterns = patterns_for(self.version)
        task_runs: dict[str, TaskRunTruth] = {}
        mismatches: list[str] = []
        for record in self.calls:
            truth, problems = task_run_truth(
                record, by_run.pop(record["task_run_id"], []), patterns, self.major
            )
            task_runs[truth.task_run_id] = truth
            mismatches += problems
        mismatches += [f"{key}: executions of a task run no call returned" for key in by_run]
        flow_runs = self._flow_run_truths(task_runs)
        mismatches += [
            f"flow run {key} ended {value.final_type}"
            for key, value in flow_runs.items()
            if value.final_type != "COMPLETED"
        ]
        mismatches += [
            f"flow run {key}: no times recorded" for key in flow_runs if key not in self.flow_times
        ]
        mismatches += [
            f"subflow run {key}: no parent task run recorded inside it"
            for key, value in flow_runs.items()
            if value.kind == "subflow" and value.parent_task_run_id is None
        ]
        mismatches += [
            f"task runs tagged {tag!r} ran {peak} at once, over their limit {limit}"
            for tag, limit in limits.items()
            if (peak := peak_running(task_runs.values(), tag)) > limit
        ]
        return task_runs, flow_runs, mismatches

    def _flow_run_truths(self, task_runs: dict[str, TaskRunTruth]) -> dict[str, FlowRunTruth]:
        """The flow runs, in the order they started, with their times and task runs."""
        flow_states = flow_run_states_for(self.version)
        return {
            fr["flow_run_id"]: flow_run_of(
                {
                    **fr,
                    **self.flow_times.get(fr["flow_run_id"], {}),
                    "states": flow_states[fr["kind"]],
                    "task_run_ids": [
                        t.task_run_id
                        for t in task_runs.values()
                        if t.flow_run_id == fr["flow_run_id"]
                    ],
                }
            )
            for fr in sorted(
                self.flow_runs,
                key=lambda fr: self.flow_times.get(fr["flow_run_id"], {}).get("started_at") or "",
            )
        }


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _utc_iso(value: Any) -> str | None:
    """A runtime datetime (stdlib, pendulum or whenever) as ISO-8601 in UTC."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value.isoformat()).replace("Z", "+00:00"))
    return parsed.astimezone(UTC).isoformat()


def _create_concurrency_limits(client: httpx.Client) -> dict[str, int]:
    """Create each :data:`CONCURRENCY_LIMITS` tag limit (an upsert on every line)."""
    for tag, limit in CONCURRENCY_LIMITS.items():
        call_api(
            client, "POST", "/concurrency_limits/", json={"tag": tag, "concurrency_limit": limit}
        )
    return dict(CONCURRENCY_LIMITS)


def _create_deployments(client: httpx.Client) -> dict[str, dict[str, str]]:
    """Create each :data:`DEPLOYMENTS` work pool and deployment through the REST API.

    Returns ``{flow name: {"deployment_id", "deployment_name", "work_pool_name"}}``.
    """
    made = {}
    for flow_name, (deployment_name, pool_name) in DEPLOYMENTS.items():
        # A 409 means the pool exists already (a second run on one server): fine.
        call_api(client, "POST", "/work_pools/", json={"name": pool_name, "type": "process"})
        flow = call_api(client, "POST", "/flows/", json={"name": flow_name})
        body = {
            "name": deployment_name,
            "flow_id": flow.json()["id"],
            "work_pool_name": pool_name,
            "entrypoint": f"_child.py:{flow_name}",
            "path": str(Path(__file__).resolve().parent),
            # No parameter schema is sent; Prefect 3 enforces one by default (409 without).
            "enforce_parameter_schema": False,
        }
        deployment = call_api(client, "POST", "/deployments/", json=body)
        made[flow_name] = {
            "deployment_id": deployment.json()["id"],
            "deployment_name": deployment_name,
            "work_pool_name": pool_name,
        }
    return made


def _create_flow_run(client: httpx.Client, deployment_id: str, parameters: dict[str, Any]) -> str:
    path = f"/deployments/{deployment_id}/create_flow_run"
    response = call_api(client, "POST", path, json={"parameters": parameters})
    return str(response.json()["id"])


def main(argv: list[str] | None = None) -> int:
    """Run the workload against ``--api-url`` and write ``--out``/ground_truth.json."""
    parser = argparse.ArgumentParser(description="Run the trs_analytics test workload.")
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if os.environ.get("PREFECT_API_URL") != args.api_url:
        parser.error("PREFECT_API_URL must equal --api-url (run_workload sets it)")

    import prefect

    workload = Workload(args.out, prefect.__version__)
    headers = auth_headers(os.environ.get("PREFECT_API_AUTH_STRING"))
    with httpx.Client(base_url=args.api_url, headers=headers, timeout=30.0) as client:
        ground = workload.run(client, scale=args.scale)
    ground.dump(args.out / "ground_truth.json")
    elapsed = ground.elapsed_seconds
    print(f"workload: {ground.n_task_runs} task runs, {ground.n_states} states, {elapsed:.1f} s")
    return 0

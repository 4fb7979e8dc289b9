"""The workload's plan: its tasks, flows and calls, and the states each call makes.

Deterministic: whether a call fails, and on which attempts, is a parameter of the
call (``fail_attempts``), never chance. :data:`PATTERNS` holds the states Prefect
3.9.1 records for each behaviour; :func:`patterns_for` and
:func:`flow_run_states_for` say where an older line records them differently.
Standard library only: the child process of an older Prefect line imports it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "ALWAYS",
    "BATCHES_PER_FLOW_RUN",
    "CONCURRENCY_LIMITS",
    "DEPLOYMENTS",
    "FLOWS",
    "FLOW_RUNS_PER_SCALE",
    "FLOW_RUN_STATES",
    "LINE_STATES",
    "PATTERNS",
    "STATE_TYPE_OF_NAME",
    "SUBFLOWS",
    "TASKS",
    "TASK_RUNS_PER_SCALE",
    "Call",
    "Pattern",
    "StateNames",
    "TaskSpec",
    "WorkloadError",
    "flow_calls",
    "flow_run_states_for",
    "patterns_for",
    "plan",
    "retry_delay",
]


class WorkloadError(RuntimeError):
    """The workload did not run as planned, or its states never became readable."""


#: The type of every state name the workload produces.
STATE_TYPE_OF_NAME: Final[Mapping[str, str]] = {
    "Pending": "PENDING",
    "Running": "RUNNING",
    "Retrying": "RUNNING",
    "AwaitingRetry": "SCHEDULED",
    "Scheduled": "SCHEDULED",
    "Completed": "COMPLETED",
    "Cached": "COMPLETED",
    "Failed": "FAILED",
}


class StateNames:
    """``n_states`` and ``state_types`` from ``states`` (state names in timestamp order).

    The one owner of "state names -> types" for :class:`Pattern`,
    :class:`TaskRunTruth` and :class:`FlowRunTruth`.
    """

    states: tuple[str, ...]

    @property
    def n_states(self) -> int:
        """How many states the server holds for this run."""
        return len(self.states)

    @property
    def state_types(self) -> tuple[str, ...]:
        """The state types, in order."""
        return tuple(STATE_TYPE_OF_NAME[name] for name in self.states)


@dataclass(frozen=True)
class Pattern(StateNames):
    """One behaviour of a task call and the states Prefect 3.9.1 records for it.

    Attributes:
        name: the pattern's id, e.g. ``"retry_once_then_succeed"``.
        states: the state names, in timestamp order.
        executions: how many times the task body runs (0 for a cache hit).
        description: what the call does.
    """

    name: str
    states: tuple[str, ...]
    executions: int
    description: str

    @property
    def attempts(self) -> int:
        """RUNNING-type states: one per attempt (a cache hit enters Running once)."""
        return self.state_types.count("RUNNING")

    @property
    def final_name(self) -> str:
        """The name of the last state."""
        return self.states[-1]

    @property
    def final_type(self) -> str:
        """The type of the last state."""
        return self.state_types[-1]


_P, _R, _C, _F = "Pending", "Running", "Completed", "Failed"

#: Every pattern in the workload, by name.
PATTERNS: Final[Mapping[str, Pattern]] = {
    p.name: p
    for p in (
        Pattern("succeed", (_P, _R, _C), 1, "returns on the first attempt"),
        Pattern("fail", (_P, _R, _F), 1, "raises, no retries configured"),
        Pattern(
            "retry_once_then_succeed",
            (_P, _R, "Retrying", _C),
            2,
            "retries=2, delay 0: raises once, then returns",
        ),
        Pattern(
            "retry_twice_then_succeed",
            (_P, _R, "Retrying", "Retrying", _C),
            3,
            "retries=2, delay 0: raises twice, then returns",
        ),
        Pattern(
            "await_retry_then_succeed",
            (_P, _R, "AwaitingRetry", "Retrying", _C),
            2,
            "retries=2, delay 0.2 s: raises once, then returns",
        ),
        Pattern(
            "retries_exhausted",
            (_P, _R, "Retrying", "Retrying", _F),
            3,
            "retries=2, delay 0: raises on all three attempts",
        ),
        Pattern(
            "await_retry_exhausted",
            (_P, _R, "AwaitingRetry", "Retrying", _F),
            2,
            "retries=1, delay 0.2 s: raises on both attempts",
        ),
        Pattern("cache_miss", (_P, _R, _C), 1, "cache_policy=INPUTS, first call: runs"),
        Pattern("cache_hit", (_P, _R, "Cached"), 0, "same inputs again: body never runs"),
        Pattern(
            "subflow_parent",
            (_P, _P, _R, _C),
            0,
            "the task run a subflow call makes in its parent flow run (mirrors the subflow)",
        ),
    )
}


@dataclass(frozen=True)
class TaskSpec:
    """How one ``@task`` of the workload is declared.

    Attributes:
        name: the task's name (and its function's name, so ``task_key`` starts with it).
        retries: ``retries=``.
        retry_delay_seconds: ``retry_delay_seconds=``.
        tags: ``tags=``.
        task_run_name: ``task_run_name=`` template, or None for Prefect's default.
        cached: ``cache_policy=INPUTS, persist_result=True``.
        hold_seconds: how long the body sleeps between recording its entry and its exit.
    """

    name: str
    retries: int = 0
    retry_delay_seconds: float = 0.0
    tags: tuple[str, ...] = ()
    task_run_name: str | None = None
    cached: bool = False
    hold_seconds: float = 0.0


#: Every task of the workload, by name.
TASKS: Final[Mapping[str, TaskSpec]] = {
    t.name: t
    for t in (
        TaskSpec("ping"),
        TaskSpec("probe"),
        TaskSpec("extract"),
        TaskSpec("transform"),
        TaskSpec("load", retries=2, tags=("db", "etl")),
        TaskSpec("lookup_region", cached=True),
        TaskSpec("render_report", tags=("reports",), task_run_name="report-{item}"),
        TaskSpec("publish", retries=2, retry_delay_seconds=0.2, tags=("external", "reports")),
        TaskSpec("vacuum"),
        TaskSpec("rotate_logs", retries=2, tags=("maintenance",)),
        TaskSpec("sync_remote", retries=1, retry_delay_seconds=0.2, tags=("maintenance",)),
        TaskSpec("check_disk"),
        TaskSpec("throttled", tags=("trs-throttled",), hold_seconds=0.2),
    )
}

#: Tag concurrency limits the workload creates (``POST /concurrency_limits/``) before
#: it runs: ``throttled`` tasks are submitted three at a time on a tag limited to 1,
#: so they queue (3.9: the client holds them in Pending; 3.2: the client is told to
#: retry (423); 2.20: the server delays the Running transition; no line records an
#: extra state for the wait).
CONCURRENCY_LIMITS: Final[Mapping[str, int]] = {"trs-throttled": 1}

#: Flows that run as subflows, by the name of the call that runs them in the parent.
SUBFLOWS: Final = ("cleanup",)

#: A call that fails on every attempt.
ALWAYS: Final = 99


@dataclass(frozen=True)
class Call:
    """One planned task call: ``TASKS[task](item, fail_attempts, return_state=True)``.

    Attributes:
        task: the task's name.
        item: the call's first parameter (a label; the cache key for cached tasks).
        fail_attempts: the body raises on attempts ``1..fail_attempts``.
        pattern: the name of the expected :class:`Pattern`.
        batch: the batch the call belongs to (two batches make one flow run).
    """

    task: str
    item: str
    fail_attempts: int
    pattern: str
    batch: int = 0


def _plan_standalone(scale: int) -> list[Call]:
    pings = [Call("ping", f"ping-{i}", 0, "succeed") for i in range(6 * scale)]
    probes = [Call("probe", f"probe-{i}", ALWAYS, "fail") for i in range(2 * scale)]
    return pings + probes


def _plan_etl(batch: int, nonce: str) -> list[Call]:
    del nonce
    extract = [Call("extract", f"b{batch}-e{i}", 0, "succeed") for i in range(8)]
    transform = [
        Call("transform", f"b{batch}-t{i}", ALWAYS, "fail")
        if i == 5
        else Call("transform", f"b{batch}-t{i}", 0, "succeed")
        for i in range(8)
    ]
    load = [
        Call("load", f"b{batch}-l0", 0, "succeed"),
        Call("load", f"b{batch}-l1", 1, "retry_once_then_succeed"),
        Call("load", f"b{batch}-l2", 2, "retry_twice_then_succeed"),
        Call("load", f"b{batch}-l3", 0, "succeed"),
    ]
    return extract + transform + load


_REGIONS: Final = ("emea", "amer", "apac")


def _plan_reports(batch: int, nonce: str) -> list[Call]:
    # The nonce keeps cache keys unique to this run, so the first call always misses.
    lookups = [
        Call("lookup_region", f"{nonce}-b{batch}-{region}", 0, kind)
        for kind in ("cache_miss", "cache_hit")
        for region in _REGIONS
    ]
    renders = [
        Call("render_report", f"{region}-b{batch}", ALWAYS, "fail")
        if region == "apac" and batch % 2 == 1
        else Call("render_report", f"{region}-b{batch}", 0, "succeed")
        for region in _REGIONS
    ]
    publishes = [
        Call("publish", f"{region}-b{batch}", 1, "await_retry_then_succeed")
        if region == "emea"
        else Call("publish", f"{region}-b{batch}", 0, "succeed")
        for region in _REGIONS
    ]
    return lookups + renders + publishes


def _plan_maintenance(batch: int, nonce: str) -> list[Call]:
    del nonce
    calls = [
        Call("vacuum", f"b{batch}-v0", 0, "succeed"),
        Call("vacuum", f"b{batch}-v1", 0, "succeed"),
        Call("rotate_logs", f"b{batch}", ALWAYS, "retries_exhausted"),
        Call("sync_remote", f"b{batch}", ALWAYS, "await_retry_exhausted"),
        Call("check_disk", f"b{batch}", ALWAYS, "fail"),
    ]
    if batch % 6 == 1:  # one subflow run per unit of scale (it costs 5-8 s of queueing)
        calls.append(Call("cleanup", f"b{batch}", 0, "subflow_parent"))
    return calls


def _plan_cleanup(batch: int, nonce: str) -> list[Call]:
    """The subflow: three ``throttled`` calls submitted at once (they queue on their tag)."""
    del nonce
    return [Call("throttled", f"b{batch}-q{i}", 0, "succeed", batch) for i in range(3)]


#: The flows, by name, and the calls each makes for one batch.
FLOWS: Final[Mapping[str, Callable[[int, str], list[Call]]]] = {
    "etl": _plan_etl,
    "reports": _plan_reports,
    "maintenance": _plan_maintenance,
    "cleanup": _plan_cleanup,
}

#: Flow runs of each flow per unit of scale.
FLOW_RUNS_PER_SCALE: Final = 3
#: Batches of calls one flow run makes (fewer, bigger flow runs: each flow run
#: costs up to 1 s on exit, joining Prefect's heartbeat thread).
BATCHES_PER_FLOW_RUN: Final = 2


def flow_calls(flow_name: str, index: int, nonce: str = "n") -> list[Call]:
    """The calls flow run ``index`` of ``flow_name`` makes, in order.

    Examples:
        >>> calls = flow_calls("maintenance", 1)
        >>> [(c.task, c.batch) for c in calls][:3]
        [('vacuum', 2), ('vacuum', 2), ('rotate_logs', 2)]
        >>> len(calls), len(flow_calls("etl", 0)), len(flow_calls("reports", 0))
        (10, 40, 24)
        >>> flow_calls("maintenance", 0)[-1].task  # the subflow, once per unit of scale
        'cleanup'
        >>> [c.item for c in flow_calls("cleanup", 3)]
        ['b3-q0', 'b3-q1', 'b3-q2']
    """
    if flow_name in SUBFLOWS:  # a subflow run is one batch of its parent's; index is it
        return FLOWS[flow_name](index, nonce)
    first = index * BATCHES_PER_FLOW_RUN
    return [
        replace(call, batch=batch)
        for batch in range(first, first + BATCHES_PER_FLOW_RUN)
        for call in FLOWS[flow_name](batch, nonce)
    ]


def plan(scale: int, nonce: str = "n") -> list[tuple[str | None, int, list[Call]]]:
    """Return the workload as ``(flow name or None, flow run index, calls)``, in run order.

    Calls outside any flow come first (flow name None), then flow runs interleave.
    A subflow's run follows its parent's, indexed by the parent's batch that calls
    it (the parent's call of the subflow is its ``subflow_parent`` task run).

    Examples:
        >>> sum(len(calls) for _, _, calls in plan(1))
        234
        >>> sum(len(calls) for _, _, calls in plan(3)) == 3 * TASK_RUNS_PER_SCALE
        True
        >>> [(flow, batch) for flow, batch, _ in plan(1)][:5]
        [(None, 0), ('etl', 0), ('reports', 0), ('maintenance', 0), ('cleanup', 1)]
    """
    runs: list[tuple[str | None, int, list[Call]]] = [(None, 0, _plan_standalone(scale))]
    for index in range(FLOW_RUNS_PER_SCALE * scale):
        for name in FLOWS:
            if name in SUBFLOWS:
                continue
            calls = flow_calls(name, index, nonce)
            runs.append((name, index, calls))
            runs.extend(
                (c.task, c.batch, flow_calls(c.task, c.batch, nonce))
                for c in calls
                if c.task in SUBFLOWS
            )
    return runs


#: Flows whose runs are created from a deployment, as ``(deployment name, work pool)``;
#: the other flows are called directly (no deployment, no work pool).
DEPLOYMENTS: Final[Mapping[str, tuple[str, str]]] = {
    "etl": ("etl-nightly", "trs-batch"),
    "reports": ("reports-daily", "trs-reports"),
}

#: Task runs the workload makes per unit of scale.
TASK_RUNS_PER_SCALE: Final = sum(len(calls) for _, _, calls in plan(1))

_AR, _RT = "AwaitingRetry", "Retrying"

#: Where a Prefect line records a pattern's states differently from 3.9.1 (measured
#: on real servers). Prefect 2.20 goes through AwaitingRetry on every retry, with a
#: delay or without, and a cache hit never enters Running (Pending, then Cached).
LINE_STATES: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    "2.20": {
        "retry_once_then_succeed": (_P, _R, _AR, _RT, _C),
        "retry_twice_then_succeed": (_P, _R, _AR, _RT, _AR, _RT, _C),
        "retries_exhausted": (_P, _R, _AR, _RT, _AR, _RT, _F),
        "cache_hit": (_P, "Cached"),
    },
}


#: The state names of a flow run by how it was started, as Prefect 3.9.1 records them:
#: from a deployment (``create_flow_run`` makes it Scheduled; run in-process as a
#: worker's subprocess would, it goes straight to Running), called directly, or as
#: a subflow. Every workload flow run completes.
FLOW_RUN_STATES: Final[Mapping[str, tuple[str, ...]]] = {
    "deployed": ("Scheduled", _R, _C),
    "direct": (_P, _R, _C),
    "subflow": (_P, _R, _C),
}

#: Where a line records flow-run states differently (measured: none does; 2.20.16 and
#: 3.2.15 record every kind as 3.9.1 does).
LINE_FLOW_RUN_STATES: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {}


def flow_run_states_for(version: str) -> Mapping[str, tuple[str, ...]]:
    """:data:`FLOW_RUN_STATES` as Prefect ``version`` records them.

    Examples:
        >>> flow_run_states_for("3.9.1")["direct"]
        ('Pending', 'Running', 'Completed')
    """
    line = ".".join(version.split(".")[:2])
    return {**FLOW_RUN_STATES, **LINE_FLOW_RUN_STATES.get(line, {})}


#: Retry delays a line needs rounded up: Prefect 3.2.15's ``TaskRunPolicy`` takes whole
#: seconds only, and a 0.2 s delay fails the flow run with a validation error.
WHOLE_SECOND_DELAYS: Final = frozenset({"3.2"})


def retry_delay(spec: TaskSpec, version: str) -> float:
    """The ``retry_delay_seconds`` the workload gives ``spec`` on Prefect ``version``.

    Examples:
        >>> spec = TASKS["publish"]
        >>> retry_delay(spec, "3.9.1"), retry_delay(spec, "3.2.15"), retry_delay(spec, "2.20.16")
        (0.2, 1, 0.2)
    """
    if ".".join(version.split(".")[:2]) in WHOLE_SECOND_DELAYS:
        return math.ceil(spec.retry_delay_seconds)
    return spec.retry_delay_seconds


def patterns_for(version: str) -> Mapping[str, Pattern]:
    """The :data:`PATTERNS` as Prefect ``version`` records them.

    Examples:
        >>> patterns_for("3.9.1") == PATTERNS
        True
    """
    line = ".".join(version.split(".")[:2])
    overrides = LINE_STATES.get(line, {})
    return {key: replace(p, states=overrides.get(key, p.states)) for key, p in PATTERNS.items()}

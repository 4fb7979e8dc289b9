"""A known Prefect workload and its ground truth, for integration tests.

:func:`run_workload` runs the flows below in a **subprocess** (this file run as a
script) against a Prefect server, so Prefect's settings and global state never
touch the calling process, then waits until the server shows every state, and
returns the :class:`GroundTruth` the subprocess wrote.

The workload is planned in advance and deterministic: whether a call fails, and
on which attempts, is a parameter of the call (``fail_attempts``), never chance.
The ground truth is also *observed*: every execution of a task body appends a
JSON line (task run id, attempt, raise/return) and every flow records the state
each call returned; the subprocess checks the observations against the plan and
:func:`run_workload` raises :class:`WorkloadError` if they disagree.

Composition at ``scale=1`` (everything is multiplied by ``scale``)::

    flow         runs  task runs per batch (two batches per flow run)        task runs
    (none)          -  ping x6 succeed, probe x2 fail                               8
    etl             3  extract x8, transform x8 (1 fails), load x4 (retries)    120
    reports         3  lookup_region x6 (3 miss + 3 cache hits),
                       render_report x3 (custom name), publish x3 (delay)        72
    maintenance     3  vacuum x2, rotate_logs, sync_remote, check_disk,
                       + once: cleanup (the task run of a subflow call)          31
    cleanup         1  a subflow of maintenance: throttled x3, submitted at
                       once on a tag limited to 1 (they queue)                    3
                                                                          total 234

etl and reports run from deployments (work pools ``trs-batch``, ``trs-reports``);
maintenance is called directly, cleanup as its subflow. Only load, render_report,
publish, rotate_logs, sync_remote and throttled carry tags: a tagged task run costs
Prefect's client a concurrency-slot request per attempt.

The state names of each pattern, as Prefect 3.9.1 records them, are in
:data:`PATTERNS`. Task runs outside a flow run first, before any flow: in 3.9.1
a task called outside a flow *after* a flow ran in the same process is recorded
by the server with that finished flow's ``flow_run_id`` (the client's events
worker attaches the stale flow run as a related resource).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import httpx

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    import polars as pl

__all__ = [
    "BATCHES_PER_FLOW_RUN",
    "CONCURRENCY_LIMITS",
    "DEPLOYMENTS",
    "FLOW_RUNS_PER_SCALE",
    "FLOW_RUN_STATES",
    "LINE_STATES",
    "PATTERNS",
    "STATE_TYPE_OF_NAME",
    "SUBFLOWS",
    "TASKS",
    "TASK_RUNS_PER_SCALE",
    "Call",
    "FlowRunTruth",
    "GroundTruth",
    "Pattern",
    "TaskRunTruth",
    "TaskSpec",
    "WorkloadError",
    "flow_calls",
    "flow_run_states_for",
    "patterns_for",
    "plan",
    "retry_delay",
    "run_workload",
    "wait_until_recorded",
]

# --------------------------------------------------------------------------- plan


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


class _StateNames:
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
class Pattern(_StateNames):
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


# --------------------------------------------------------------------------- truth


@dataclass(frozen=True)
class TaskRunTruth(_StateNames):
    """What one task run of the workload is, as planned and as observed.

    Attributes:
        task_run_id: the task run's id (from the state the call returned).
        task_name: the ``@task`` name.
        run_name: the task run's name seen by the body at run time (None for a
            cache hit, whose body never runs).
        name_pattern: a regex the server's task-run ``name`` matches.
        flow_name: the flow's name, None outside a flow.
        flow_run_id: the flow run's id, None outside a flow.
        batch: the call's batch (0 outside a flow; a flow run makes two batches).
        item: the call's ``item`` parameter.
        pattern: the :class:`Pattern` name.
        executions: task-body executions observed (0 for a cache hit).
        attempts: RUNNING-type states expected (Running + Retrying; 1 for a cache hit).
        retries: Retrying states expected (``attempts - 1``).
        max_retries: the task's configured ``retries``.
        final_type: the last state's type.
        final_name: the last state's name.
        tags: the task run's tags, sorted.
        states: the state names the server holds, in timestamp order.
        cache_hit: the run ended ``Cached`` and its body never ran.
        entered_at: UTC, taken by the body as its first execution began (client
            clock; None when the body never ran: cache hits, subflow parents).
        exited_at: UTC, taken by the body as its last execution ended.
    """

    task_run_id: str
    task_name: str
    run_name: str | None
    name_pattern: str
    flow_name: str | None
    flow_run_id: str | None
    batch: int
    item: str
    pattern: str
    executions: int
    attempts: int
    retries: int
    max_retries: int
    final_type: str
    final_name: str
    tags: tuple[str, ...]
    states: tuple[str, ...]
    cache_hit: bool = False
    entered_at: datetime | None = None
    exited_at: datetime | None = None

    @property
    def task_key_prefix(self) -> str:
        """``task_key`` is this plus 8 hex digits (the function is named like the task)."""
        return f"{self.task_name}-"


@dataclass(frozen=True)
class FlowRunTruth(_StateNames):
    """One flow run of the workload.

    Attributes:
        flow_run_id: its id.
        flow_name: the flow's name.
        index: its index among the runs of its flow.
        final_type: its final state type (the flows always complete).
        task_run_ids: its task runs, in call order.
        deployment_id: the deployment it was created from, None when the flow was
            called directly.
        deployment_name: that deployment's name (without the flow's name).
        work_pool_name: that deployment's work pool.
        started_at: UTC, taken by the flow's body as it began (client clock).
        ended_at: UTC, taken by the flow's body as it returned.
        final_name: its final state's name, as the call returned it.
        kind: ``"deployed"``, ``"direct"`` or ``"subflow"`` (see :data:`FLOW_RUN_STATES`).
        states: the state names the server holds for it, in timestamp order.
        expected_start_time: UTC, its scheduled start as its body read it
            (``prefect.runtime.flow_run.scheduled_start_time``).
        parent_task_run_id: for a subflow, the task run it stands for in its
            parent flow run (read inside the subflow), else None.
        parent_flow_run_id: for a subflow, its parent flow run, else None.
    """

    flow_run_id: str
    flow_name: str
    index: int
    final_type: str
    task_run_ids: tuple[str, ...]
    deployment_id: str | None = None
    deployment_name: str | None = None
    work_pool_name: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    final_name: str | None = None
    kind: str | None = None
    states: tuple[str, ...] = ()
    expected_start_time: datetime | None = None
    parent_task_run_id: str | None = None
    parent_flow_run_id: str | None = None


#: The datetime fields of the truth's records, written as ISO-8601 in its JSON.
_FLOW_RUN_TIMES: Final = ("started_at", "ended_at", "expected_start_time")
_TASK_RUN_TIMES: Final = ("entered_at", "exited_at")


@dataclass(frozen=True)
class GroundTruth:
    """Everything the workload did, loaded from the JSON its subprocess wrote.

    Attributes:
        scale: the ``scale`` it ran at.
        prefect_version: the client's Prefect version.
        nonce: a random label unique to this run (part of every cache key).
        started_at: UTC, just before the first task call.
        finished_at: UTC, just after the last flow returned (states may be
            persisted by the server a few seconds later).
        task_runs: every task run, by id, in call order.
        flow_runs: every flow run, by id, in run order.
        mismatches: observations that disagreed with the plan (empty when all is well).
        elapsed_seconds: wall time of the subprocess's flows, for reports.
        concurrency_limits: the tag concurrency limits it created, ``{tag: limit}``.
    """

    scale: int
    prefect_version: str
    nonce: str
    started_at: datetime
    finished_at: datetime
    task_runs: dict[str, TaskRunTruth]
    flow_runs: dict[str, FlowRunTruth]
    mismatches: tuple[str, ...] = ()
    elapsed_seconds: float = 0.0
    concurrency_limits: dict[str, int] = field(default_factory=dict)

    @property
    def n_task_runs(self) -> int:
        """How many task runs the workload made."""
        return len(self.task_runs)

    @property
    def n_states(self) -> int:
        """How many states the server holds for all of them."""
        return sum(truth.n_states for truth in self.task_runs.values())

    @property
    def n_flow_run_states(self) -> int:
        """How many states the server holds for all the flow runs."""
        return sum(truth.n_states for truth in self.flow_runs.values())

    def peak_running(self, tag: str) -> int:
        """The most task runs carrying ``tag`` whose bodies ran at one instant.

        From the entry and exit times the bodies took themselves; an exit and an
        entry at the same instant do not overlap.
        """
        return _peak(self.task_runs.values(), tag)

    def select(
        self,
        *,
        flow_name: str | None = None,
        in_flow: bool | None = None,
        pattern: str | None = None,
        task_name: str | None = None,
    ) -> list[TaskRunTruth]:
        """Task runs matching every filter that is not None, in call order.

        Args:
            flow_name: the flow's name.
            in_flow: True for task runs inside a flow run, False for those outside.
            pattern: a :data:`PATTERNS` name.
            task_name: a :data:`TASKS` name.
        """
        return [
            truth
            for truth in self.task_runs.values()
            if (flow_name is None or truth.flow_name == flow_name)
            and (in_flow is None or (truth.flow_run_id is not None) == in_flow)
            and (pattern is None or truth.pattern == pattern)
            and (task_name is None or truth.task_name == task_name)
        ]

    def to_frame(self) -> pl.DataFrame:
        """One row per task run (``states`` as a list column)."""
        import polars as pl  # not imported at the top: old lines' venvs run this file

        rows = [{**asdict(truth), "n_states": truth.n_states} for truth in self.task_runs.values()]
        return pl.DataFrame(rows, infer_schema_length=None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_json` reads it back."""
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat()
        for records, keys in (
            (data["flow_runs"], _FLOW_RUN_TIMES),
            (data["task_runs"], _TASK_RUN_TIMES),
        ):
            for record in records.values():
                for key in keys:
                    if record[key] is not None:
                        record[key] = record[key].isoformat()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GroundTruth:
        """Build a :class:`GroundTruth` from :meth:`to_json`'s dict."""
        task_runs = {
            key: TaskRunTruth(
                **{
                    **value,
                    "tags": tuple(value["tags"]),
                    "states": tuple(value["states"]),
                    **_times(value, _TASK_RUN_TIMES),
                }
            )
            for key, value in data["task_runs"].items()
        }
        flow_runs = {key: _flow_run_of(value) for key, value in data["flow_runs"].items()}
        return cls(
            scale=data["scale"],
            prefect_version=data["prefect_version"],
            nonce=data["nonce"],
            started_at=datetime.fromisoformat(data["started_at"]),
            finished_at=datetime.fromisoformat(data["finished_at"]),
            task_runs=task_runs,
            flow_runs=flow_runs,
            mismatches=tuple(data.get("mismatches", ())),
            elapsed_seconds=data.get("elapsed_seconds", 0.0),
            concurrency_limits=dict(data.get("concurrency_limits", {})),
        )

    @classmethod
    def load(cls, path: Path) -> GroundTruth:
        """Read a ground-truth JSON file."""
        return cls.from_json(json.loads(path.read_text()))

    def dump(self, path: Path, *, indent: int | None = 1) -> None:
        """Write this ground truth as JSON (``indent=None``: compact)."""
        path.write_text(json.dumps(self.to_json(), indent=indent) + "\n")


def _peak(task_runs: Iterable[TaskRunTruth], tag: str) -> int:
    edges = sorted(
        (when, step)
        for truth in task_runs
        if tag in truth.tags and truth.entered_at is not None and truth.exited_at is not None
        for when, step in ((truth.entered_at, 1), (truth.exited_at, -1))
    )
    peak = running = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def _times(value: Mapping[str, Any], keys: Iterable[str]) -> dict[str, datetime]:
    return {
        key: datetime.fromisoformat(value[key]) for key in keys if isinstance(value.get(key), str)
    }


def _flow_run_of(value: Mapping[str, Any]) -> FlowRunTruth:
    return FlowRunTruth(
        **{
            **value,
            "task_run_ids": tuple(value["task_run_ids"]),
            "states": tuple(value.get("states", ())),
            **_times(value, _FLOW_RUN_TIMES),
        }
    )


# --------------------------------------------------------------------------- running

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
            Prefect of that environment (default: this interpreter). The file
            runs as a script there, so it needs only Prefect (and its httpx).
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
    command = [str(python or sys.executable), str(Path(__file__).resolve()), "--api-url", api_url]
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
    headers = _auth_headers(auth_string)
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
    response = _call(client, "POST", "/events/filter", json=body)
    total = int(response.json().get("total", 0))
    # a subflow's parent task run is orchestrated through the API: no events (3.9.1)
    expected = sum(t.n_states for t in truth.task_runs.values() if t.pattern != "subflow_parent")
    if total >= expected:
        return None
    return f"{expected - total} of {expected} task-run state events"


#: Statuses a busy Prefect server answers while SQLite is locked; Prefect's client retries them.
RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One REST call, retried like Prefect's own client on a busy server; raises on an error."""
    for attempt in range(6):
        response = client.request(method, path, **kwargs)
        if response.status_code not in RETRY_STATUSES or attempt == 5:
            break
        time.sleep(0.25 * 2**attempt)
    if response.status_code != 409 or method != "POST" or not path.startswith("/work_pools"):
        response.raise_for_status()
    return response


def _count_missing(client: httpx.Client, kind: str, ids: list[str]) -> str | None:
    """``/{kind}/count`` of ``ids``; a description of the gap, or None when all are there."""
    if not ids:
        return None
    response = _call(client, "POST", f"/{kind}/count", json={kind: {"id": {"any_": ids}}})
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
            response = _call(
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
            response = _call(
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
        response = _call(client, "POST", "/flow_runs/filter", json=body)
        got |= {run["id"]: run["state_type"] for run in response.json()}
    wrong = [f"{key}: {got.get(key)}" for key, final in expected.items() if got.get(key) != final]
    return f"final states of {len(wrong)} flow runs ({', '.join(wrong[:3])})" if wrong else None


def _workload_env(
    api_url: str, home: Path, auth_string: str | None, base: Mapping[str, str]
) -> dict[str, str]:
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
    )
    if auth_string is not None:
        env["PREFECT_API_AUTH_STRING"] = auth_string
    return env


def _auth_headers(auth_string: str | None) -> dict[str, str]:
    if auth_string is None:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(auth_string.encode()).decode("ascii")}


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --------------------------------------------------------------------------- subprocess side
# Everything below runs only in the workload subprocess, possibly with another Prefect
# line's interpreter: it imports only the standard library, httpx (a Prefect dependency)
# and, lazily, Prefect, so that importing this module (conftest does) never loads Prefect.

_EXECUTIONS_LOG: list[Path] = []  # the JSON-lines file, set by _main
_CALLS: list[dict[str, Any]] = []
_FLOW_RUNS: list[dict[str, Any]] = []
_FLOW_TIMES: dict[str, dict[str, str | None]] = {}
_LOCK = threading.Lock()
_TASK_OBJECTS: dict[str, Any] = {}
_FLOW_OBJECTS: dict[str, Any] = {}


def _body(item: str, fail_attempts: int) -> str:
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
    with _LOCK, _EXECUTIONS_LOG[0].open("a") as log:
        log.write(json.dumps(line) + "\n")
    if outcome == "raise":
        raise WorkloadError(f"planned failure of {item!r} on attempt {attempt}")
    return item


# One module-level function per task, so each task_key starts with the task's name.
def ping(item: str, fail_attempts: int) -> str:
    """Standalone: always succeeds."""
    return _body(item, fail_attempts)


def probe(item: str, fail_attempts: int) -> str:
    """Standalone: always fails."""
    return _body(item, fail_attempts)


def extract(item: str, fail_attempts: int) -> str:
    """etl: always succeeds."""
    return _body(item, fail_attempts)


def transform(item: str, fail_attempts: int) -> str:
    """etl: one call in eight fails, no retries."""
    return _body(item, fail_attempts)


def load(item: str, fail_attempts: int) -> str:
    """etl: retried immediately (retries=2, delay 0)."""
    return _body(item, fail_attempts)


def lookup_region(item: str, fail_attempts: int) -> str:
    """reports: cached on its inputs."""
    return _body(item, fail_attempts)


def render_report(item: str, fail_attempts: int) -> str:
    """reports: custom task-run name ``report-{item}``."""
    return _body(item, fail_attempts)


def publish(item: str, fail_attempts: int) -> str:
    """reports: retried after 0.2 s (AwaitingRetry)."""
    return _body(item, fail_attempts)


def vacuum(item: str, fail_attempts: int) -> str:
    """maintenance: always succeeds."""
    return _body(item, fail_attempts)


def rotate_logs(item: str, fail_attempts: int) -> str:
    """maintenance: exhausts retries=2 with no delay."""
    return _body(item, fail_attempts)


def sync_remote(item: str, fail_attempts: int) -> str:
    """maintenance: exhausts retries=1 with a 0.2 s delay."""
    return _body(item, fail_attempts)


def check_disk(item: str, fail_attempts: int) -> str:
    """maintenance: always fails, no retries."""
    return _body(item, fail_attempts)


def throttled(item: str, fail_attempts: int) -> str:
    """cleanup (a subflow): holds 0.2 s under a tag limited to one run at a time."""
    return _body(item, fail_attempts)


def _make_tasks(version: str) -> None:
    from prefect import task

    major = int(version.split(".")[0])
    functions = {name: globals()[name] for name in TASKS}
    for name, spec in TASKS.items():
        if major >= 3:
            from prefect.cache_policies import INPUTS, NO_CACHE

            caching: dict[str, Any] = {"cache_policy": INPUTS if spec.cached else NO_CACHE}
        else:  # Prefect 2 caches by a key function
            from prefect.tasks import task_input_hash

            caching = {"cache_key_fn": task_input_hash} if spec.cached else {}
        _TASK_OBJECTS[name] = task(
            functions[name],
            name=name,
            retries=spec.retries,
            retry_delay_seconds=retry_delay(spec, version),
            tags=list(spec.tags),
            task_run_name=spec.task_run_name,
            persist_result=spec.cached,
            **caching,
        )


def _record_call(call: Call, task_run_id: str, state: Any, flow_name: str | None) -> None:
    from prefect.runtime import flow_run

    _CALLS.append(
        {
            "call": asdict(call),
            "task_run_id": task_run_id,
            "final_type": state.type.value,
            "final_name": state.name,
            "flow_name": flow_name,
            "flow_run_id": str(flow_run.id) if flow_name is not None else None,
        }
    )


def _run_calls(calls: list[Call], flow_name: str | None, nonce: str = "") -> None:
    for call in calls:
        if call.task in SUBFLOWS:
            # the subflow records its parent task run (its id is only known inside it)
            state = _FLOW_OBJECTS[call.task](call.batch, nonce, return_state=True)
            inside = _FLOW_TIMES[str(state.state_details.flow_run_id)]
            _record_call(call, str(inside["parent_task_run_id"]), state, flow_name)
            _FLOW_RUNS.append(
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
        state = _TASK_OBJECTS[call.task](call.item, call.fail_attempts, return_state=True)
        _record_call(call, str(state.state_details.task_run_id), state, flow_name)


def _run_concurrently(calls: list[Call], flow_name: str) -> None:
    """Submit every call at once (the task runner's threads), then wait for all."""
    futures = [_TASK_OBJECTS[c.task].submit(c.item, c.fail_attempts) for c in calls]
    for call, future in zip(calls, futures, strict=True):
        state = future.wait()  # Prefect 2 returns the final state
        if state is None:  # Prefect 3 returns None and holds it on the future
            state = future.state
        _record_call(call, str(state.state_details.task_run_id), state, flow_name)


def _make_flow(name: str) -> Any:
    from prefect import flow

    def flow_body(index: int, nonce: str) -> int:
        from prefect.context import FlowRunContext
        from prefect.runtime import flow_run

        started_at = datetime.now(UTC).isoformat()
        calls = flow_calls(name, index, nonce)
        if name in SUBFLOWS:
            _run_concurrently(calls, name)
        else:
            _run_calls(calls, name, nonce)
        context = FlowRunContext.get()
        run = context.flow_run if context is not None else None
        scheduled = flow_run.scheduled_start_time
        _FLOW_TIMES[str(flow_run.id)] = {
            "started_at": started_at,
            "ended_at": datetime.now(UTC).isoformat(),
            "expected_start_time": _utc_iso(scheduled),
            "parent_task_run_id": _str_or_none(getattr(run, "parent_task_run_id", None)),
            "parent_flow_run_id": _str_or_none(flow_run.parent_flow_run_id),
        }
        return index

    flow_body.__name__ = flow_body.__qualname__ = name
    return flow(name=name, log_prints=False)(flow_body)


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
        _call(client, "POST", "/concurrency_limits/", json={"tag": tag, "concurrency_limit": limit})
    return dict(CONCURRENCY_LIMITS)


def _create_deployments(client: httpx.Client) -> dict[str, dict[str, str]]:
    """Create each :data:`DEPLOYMENTS` work pool and deployment through the REST API.

    Returns ``{flow name: {"deployment_id", "deployment_name", "work_pool_name"}}``.
    """
    made = {}
    for flow_name, (deployment_name, pool_name) in DEPLOYMENTS.items():
        # A 409 means the pool exists already (a second run on one server): fine.
        _call(client, "POST", "/work_pools/", json={"name": pool_name, "type": "process"})
        flow = _call(client, "POST", "/flows/", json={"name": flow_name})
        body = {
            "name": deployment_name,
            "flow_id": flow.json()["id"],
            "work_pool_name": pool_name,
            "entrypoint": f"workload.py:{flow_name}",
            "path": str(Path(__file__).resolve().parent),
            # No parameter schema is sent; Prefect 3 enforces one by default (409 without).
            "enforce_parameter_schema": False,
        }
        deployment = _call(client, "POST", "/deployments/", json=body)
        made[flow_name] = {
            "deployment_id": deployment.json()["id"],
            "deployment_name": deployment_name,
            "work_pool_name": pool_name,
        }
    return made


def _create_flow_run(client: httpx.Client, deployment_id: str, parameters: dict[str, Any]) -> str:
    path = f"/deployments/{deployment_id}/create_flow_run"
    response = _call(client, "POST", path, json={"parameters": parameters})
    return str(response.json()["id"])


def _run_deployed(flow: Any, flow_run_id: str, parameters: dict[str, Any], major: int) -> Any:
    """Run an existing flow run (created from a deployment) in this process; return its state.

    What a worker's subprocess does, minus loading the flow from its entrypoint:
    Prefect 3's ``flow_engine.run_flow`` takes the flow run; Prefect 2's
    ``engine.begin_flow_run`` does, on Prefect's event-loop thread.
    """
    from uuid import UUID

    from prefect.client.orchestration import get_client

    if major >= 3:
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


def _name_pattern(spec: TaskSpec, call: Call, flow_name: str | None, major: int) -> str:
    """The server's name for a task run: Prefect 3 suffixes 3 hex digits in a flow and
    nothing outside one; Prefect 2 a counter in a flow and 8 hex digits outside."""
    if spec.task_run_name is not None:
        return re.escape(spec.task_run_name.format(item=call.item))
    if call.task in SUBFLOWS:  # the parent task run of a subflow call: Prefect 3 names
        # it after the flow with a counter, Prefect 2 after the subflow run (a random slug)
        return "[a-z0-9-]+" if major < 3 else re.escape(spec.name) + "-[0-9]+"
    if major < 3:
        return re.escape(spec.name) + ("-[0-9]+" if flow_name else "-[0-9a-f]{8}")
    if flow_name is None:
        return re.escape(spec.name)
    return re.escape(spec.name) + "-[0-9a-f]{3}"


def _truth_of(
    record: dict[str, Any],
    executions: list[dict[str, Any]],
    patterns: Mapping[str, Pattern],
    major: int,
) -> tuple[TaskRunTruth, list[str]]:
    call = Call(**record["call"])
    spec, pattern = TASKS.get(call.task) or TaskSpec(call.task), patterns[call.pattern]
    task_run_id = record["task_run_id"]
    problems = []
    outcomes = [e["outcome"] for e in sorted(executions, key=lambda e: e["attempt"])]
    planned = [
        "raise" if attempt <= call.fail_attempts else "return"
        for attempt in range(1, pattern.executions + 1)
    ]
    if outcomes != planned:
        problems.append(f"{task_run_id} {call}: executions {outcomes}, planned {planned}")
    if (record["final_type"], record["final_name"]) != (pattern.final_type, pattern.final_name):
        problems.append(
            f"{task_run_id} {call}: returned {record['final_type']}/{record['final_name']}, "
            f"planned {pattern.final_type}/{pattern.final_name}"
        )
    truth = TaskRunTruth(
        task_run_id=task_run_id,
        task_name=call.task,
        run_name=executions[0]["run_name"] if executions else None,
        name_pattern=_name_pattern(spec, call, record["flow_name"], major),
        flow_name=record["flow_name"],
        flow_run_id=record["flow_run_id"],
        batch=call.batch,
        item=call.item,
        pattern=call.pattern,
        executions=len(executions),
        attempts=pattern.attempts,
        retries=max(pattern.attempts - 1, 0),
        max_retries=spec.retries,
        final_type=record["final_type"],
        final_name=record["final_name"],
        tags=tuple(sorted(spec.tags)),
        states=pattern.states,
        cache_hit=record["final_name"] == "Cached" and not executions,
        entered_at=_first_time(executions, "entered_at", min),
        exited_at=_first_time(executions, "exited_at", max),
    )
    return truth, problems


def _first_time(
    executions: list[dict[str, Any]], key: str, pick: Callable[[list[str]], str]
) -> datetime | None:
    times = [e[key] for e in executions if e.get(key)]
    return datetime.fromisoformat(pick(times)) if times else None


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the trs_analytics test workload.")
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if os.environ.get("PREFECT_API_URL") != args.api_url:
        parser.error("PREFECT_API_URL must equal --api-url (run_workload sets it)")

    import prefect

    major = int(prefect.__version__.split(".")[0])
    patterns = patterns_for(prefect.__version__)
    _EXECUTIONS_LOG.append(args.out / "executions.jsonl")
    _EXECUTIONS_LOG[0].write_text("")
    _make_tasks(prefect.__version__)
    flows = {name: _make_flow(name) for name in FLOWS}
    _FLOW_OBJECTS.update(flows)
    headers = _auth_headers(os.environ.get("PREFECT_API_AUTH_STRING"))
    with httpx.Client(base_url=args.api_url, headers=headers, timeout=30.0) as client:
        deployments = _create_deployments(client)
        limits = _create_concurrency_limits(client)
        nonce = uuid.uuid4().hex[:12]
        started_at = datetime.now(UTC)
        clock = time.monotonic()
        for flow_name, index, calls in plan(args.scale, nonce):
            if flow_name is None:
                _run_calls(calls, None)
                continue
            if flow_name in SUBFLOWS:  # run by its parent flow
                continue
            parameters = {"index": index, "nonce": nonce}
            deployed = deployments.get(flow_name, {})
            if deployed:
                flow_run_id = _create_flow_run(client, deployed["deployment_id"], parameters)
                state = _run_deployed(flows[flow_name], flow_run_id, parameters, major)
            else:
                state = flows[flow_name](index, nonce, return_state=True)
                flow_run_id = str(state.state_details.flow_run_id)
            _FLOW_RUNS.append(
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
        elapsed = time.monotonic() - clock
        finished_at = datetime.now(UTC)

    executions = [json.loads(line) for line in _EXECUTIONS_LOG[0].read_text().splitlines()]
    by_run: dict[str, list[dict[str, Any]]] = {}
    for execution in executions:
        by_run.setdefault(execution["task_run_id"], []).append(execution)
    task_runs: dict[str, TaskRunTruth] = {}
    mismatches: list[str] = []
    for record in _CALLS:
        truth, problems = _truth_of(record, by_run.pop(record["task_run_id"], []), patterns, major)
        task_runs[truth.task_run_id] = truth
        mismatches += problems
    mismatches += [f"{key}: executions of a task run no call returned" for key in by_run]
    flow_states = flow_run_states_for(prefect.__version__)
    flow_runs = {
        fr["flow_run_id"]: _flow_run_of(
            {
                **fr,
                **_FLOW_TIMES.get(fr["flow_run_id"], {}),
                "states": flow_states[fr["kind"]],
                "task_run_ids": [
                    t.task_run_id for t in task_runs.values() if t.flow_run_id == fr["flow_run_id"]
                ],
            }
        )
        for fr in sorted(
            _FLOW_RUNS,
            key=lambda fr: _FLOW_TIMES.get(fr["flow_run_id"], {}).get("started_at") or "",
        )
    }
    mismatches += [
        f"flow run {key} ended {value.final_type}"
        for key, value in flow_runs.items()
        if value.final_type != "COMPLETED"
    ]
    mismatches += [
        f"flow run {key}: no times recorded" for key in flow_runs if key not in _FLOW_TIMES
    ]
    mismatches += [
        f"subflow run {key}: no parent task run recorded inside it"
        for key, value in flow_runs.items()
        if value.kind == "subflow" and value.parent_task_run_id is None
    ]
    mismatches += [
        f"task runs tagged {tag!r} ran {peak} at once, over their limit {limit}"
        for tag, limit in limits.items()
        if (peak := _peak(task_runs.values(), tag)) > limit
    ]
    ground = GroundTruth(
        scale=args.scale,
        prefect_version=prefect.__version__,
        nonce=nonce,
        started_at=started_at,
        finished_at=finished_at,
        task_runs=task_runs,
        flow_runs=flow_runs,
        mismatches=tuple(mismatches),
        elapsed_seconds=round(elapsed, 3),
        concurrency_limits=limits,
    )
    ground.dump(args.out / "ground_truth.json")
    print(f"workload: {ground.n_task_runs} task runs, {ground.n_states} states, {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(_main())

"""A known Prefect workload and its ground truth, for integration tests.

:func:`run_workload` runs the flows below in a **subprocess** (``python -m
devtools.workload``) against a Prefect server, so Prefect's settings and global state never
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

One module per idea: :mod:`~devtools.workload._plan` (the tasks, flows, calls and
the states each makes), :mod:`~devtools.workload._truth` (:class:`GroundTruth`),
:mod:`~devtools.workload._runner` (:func:`run_workload` starts the child and
waits for the server) and :mod:`~devtools.workload._child` (the child process).
"""

from __future__ import annotations

from devtools.workload._plan import (
    BATCHES_PER_FLOW_RUN,
    CONCURRENCY_LIMITS,
    DEPLOYMENTS,
    FLOW_RUN_STATES,
    FLOW_RUNS_PER_SCALE,
    LINE_STATES,
    PATTERNS,
    STATE_TYPE_OF_NAME,
    SUBFLOWS,
    TASK_RUNS_PER_SCALE,
    TASKS,
    Call,
    Pattern,
    TaskSpec,
    WorkloadError,
    flow_calls,
    flow_run_states_for,
    patterns_for,
    plan,
    retry_delay,
)
from devtools.workload._runner import run_workload, wait_until_recorded
from devtools.workload._truth import FlowRunTruth, GroundTruth, TaskRunTruth

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

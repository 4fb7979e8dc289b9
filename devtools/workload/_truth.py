"""The ground truth: what each task run and flow run of the workload is, planned and observed.

The child process builds it (:func:`task_run_truth` checks each call's observed
executions against its plan) and writes it as JSON; :meth:`GroundTruth.load`
reads it back in the tests. Standard library only at import time (Polars is
imported by :meth:`GroundTruth.to_frame` alone): older lines' child processes
import this module.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from devtools.workload._plan import SUBFLOWS, TASKS, Call, StateNames, TaskSpec

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

    import polars as pl

    from devtools.workload._plan import Pattern

__all__ = [
    "FlowRunTruth",
    "GroundTruth",
    "TaskRunTruth",
    "flow_run_of",
    "peak_running",
    "task_run_truth",
]


@dataclass(frozen=True)
class TaskRunTruth(StateNames):
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
class FlowRunTruth(StateNames):
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
        return peak_running(self.task_runs.values(), tag)

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
        flow_runs = {key: flow_run_of(value) for key, value in data["flow_runs"].items()}
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


def peak_running(task_runs: Iterable[TaskRunTruth], tag: str) -> int:
    """The most of ``task_runs`` carrying ``tag`` whose bodies ran at one instant."""
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


def flow_run_of(value: Mapping[str, Any]) -> FlowRunTruth:
    """A :class:`FlowRunTruth` from its JSON record (times as ISO-8601 strings)."""
    return FlowRunTruth(
        **{
            **value,
            "task_run_ids": tuple(value["task_run_ids"]),
            "states": tuple(value.get("states", ())),
            **_times(value, _FLOW_RUN_TIMES),
        }
    )


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


def task_run_truth(
    record: dict[str, Any],
    executions: list[dict[str, Any]],
    patterns: Mapping[str, Pattern],
    major: int,
) -> tuple[TaskRunTruth, list[str]]:
    """The truth of one call the child recorded, and where its executions disagree with the plan."""
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

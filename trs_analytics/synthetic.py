"""Synthetic task-run state histories for tests, demos and benchmarks.

:func:`generate_states` writes what a Prefect 3 server would hold after a few
days of flows: many flows and tasks, log-normal durations, per-task failure
probabilities, retries (``AwaitingRetry``/``Retrying``, or ``Retrying`` alone
when the task's retry delay is 0), cached, crashed, cancelled, late and
still-running runs. It is vectorised: every random number is a hash of a
row index and the seed, so ten million states take seconds and the same seed
gives the same frame (with the same Polars version).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import polars as pl

from trs_analytics._time import EPOCH, epoch_micros
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.schema import FLOW_RUNS, TASK_RUNS, UTC_US, RunKind, StateType

__all__ = [
    "PLANTED_KINDS",
    "TRUTH_SCHEMA",
    "WEEKDAY_FACTORS",
    "Planted",
    "generate_flow_run_states",
    "generate_planted",
    "generate_states",
]

_VERBS: Final = ("extract", "load", "transform", "validate", "score", "sync", "notify", "aggregate")
_NOUNS: Final = ("orders", "users", "events", "invoices", "metrics", "models", "files", "prices")
_FLOWS: Final = ("daily-etl", "hourly-sync", "ml-training", "reporting", "billing", "ingest")
_POOLS: Final = ("process-pool", "k8s-pool", "docker-pool")
_ADJECTIVES: Final = ("brave", "calm", "eager", "fuzzy", "jolly", "lucky", "quiet", "witty")
_ANIMALS: Final = ("otter", "falcon", "lynx", "panda", "heron", "badger", "koala", "mole")

#: Per-task retry settings, picked by task index: (retries allowed, delay in seconds).
_RETRY_POLICIES: Final = ((0, 0.0), (0, 0.0), (1, 0.0), (2, 1.0), (3, 5.0), (1, 30.0))

_TASK_RUNS_PER_FLOW_RUN: Final = 8

_MICROSECOND: Final = timedelta(microseconds=1)

#: The state type of each state name the generators write (task runs and flow runs).
_TYPE_OF_NAME: Final = {
    "Scheduled": "SCHEDULED",
    "Late": "SCHEDULED",
    "AwaitingRetry": "SCHEDULED",
    "Pending": "PENDING",
    "Running": "RUNNING",
    "Retrying": "RUNNING",
    "Completed": "COMPLETED",
    "Cached": "COMPLETED",
    "Failed": "FAILED",
    "Crashed": "CRASHED",
    "Cancelled": "CANCELLED",
}


def _uniform(key: pl.Expr, seed: int, stream: int) -> pl.Expr:
    """A uniform number in (0, 1) per row: a hash of ``key`` for this seed and stream."""
    bits = key.hash(seed=seed * 7919 + stream * 104_729 + 1) // (1 << 11)
    return (bits.cast(pl.Float64) + 0.5) / float(1 << 53)


def _normal(key: pl.Expr, seed: int, stream: int) -> pl.Expr:
    """A standard normal number per row (Box-Muller on two uniform streams)."""
    radius = (-2.0 * _uniform(key, seed, stream).log()).sqrt()
    return radius * (2 * math.pi * _uniform(key, seed, stream + 1)).cos()


def _pick(options: tuple[str, ...], index: pl.Expr) -> pl.Expr:
    """The ``index``-th (modulo length) of ``options``."""
    return pl.lit(pl.Series(options)).gather(index % len(options))


def _uuid(kind: int, seed: int, index: pl.Expr) -> pl.Expr:
    """A UUID-shaped string, unique per (seed, kind, index)."""
    head = f"{seed % 100_000_000:08d}-{kind:04d}-7000-8000-"
    return pl.concat_str(pl.lit(head), index.cast(pl.String).str.zfill(12))


def _tasks(n_tasks: int, n_flows: int, seed: int) -> pl.LazyFrame:
    i = pl.col("task_idx")
    word = i % (len(_VERBS) * len(_NOUNS))
    name = pl.concat_str(_pick(_VERBS, word), pl.lit("_"), _pick(_NOUNS, word // len(_VERBS)))
    lap = i // (len(_VERBS) * len(_NOUNS))
    policy = i % len(_RETRY_POLICIES)
    return pl.LazyFrame({"task_idx": pl.int_range(n_tasks, eager=True)}).with_columns(
        task_name=pl.when(lap > 0).then(pl.format("{}_{}", name, lap)).otherwise(name),
        flow_idx=i % n_flows,
        # median attempt duration between 50 ms and 5 min, log-uniform
        mu=math.log(0.05) + _uniform(i, seed, 1) * math.log(300 / 0.05),
        sigma=0.3 + 0.9 * _uniform(i, seed, 2),
        # per-attempt failure probability, most tasks reliable, a few flaky
        fail_p=0.003 + 0.35 * _uniform(i, seed, 3).pow(4),
        max_retries=pl.lit(pl.Series([r for r, _ in _RETRY_POLICIES])).gather(policy),
        retry_delay=pl.lit(pl.Series([d for _, d in _RETRY_POLICIES])).gather(policy),
        cache_p=pl.when(i % 7 == 3).then(0.3).otherwise(0.0),
        tags=pl.concat_list(
            pl.when(i % 2 == 0).then(pl.lit("etl")),
            pl.when(i % 3 == 0).then(pl.lit("critical")),
            pl.when(i % 5 == 1).then(pl.format("team-{}", i % 4)),
        ).list.drop_nulls(),
    )


def _runs(
    n_task_runs: int, n_tasks: int, n_flows: int, seed: int, start_us: int, span_us: int
) -> pl.LazyFrame:
    i = pl.col("run_idx")
    flow_run = i // _TASK_RUNS_PER_FLOW_RUN
    # flows are picked with a skew: low indices run more often
    flow_idx = (_uniform(flow_run, seed, 10).pow(2) * n_flows).cast(pl.Int64).clip(0, n_flows - 1)
    in_flow = (pl.lit(n_tasks) - flow_idx + n_flows - 1) // n_flows
    slot = (_uniform(i, seed, 11) * in_flow).cast(pl.Int64).clip(0, None)
    flow_start = start_us + (_uniform(flow_run, seed, 12) * span_us).cast(pl.Int64)
    position = i % _TASK_RUNS_PER_FLOW_RUN
    expected = flow_start + position * 2_000_000 + (_uniform(i, seed, 13) * 1e6).cast(pl.Int64)
    return pl.LazyFrame({"run_idx": pl.int_range(n_task_runs, eager=True)}).with_columns(
        flow_run_idx=flow_run,
        flow_idx=flow_idx,
        task_idx=flow_idx + n_flows * slot,
        position=position,
        expected_us=expected,
        u_fail=_uniform(i, seed, 14),
        u_fate=_uniform(i, seed, 15),
        u_prefix=_uniform(i, seed, 16),
    )


def _histories(runs: pl.LazyFrame) -> pl.LazyFrame:
    """Decide each run's path: prefix, attempts and how it ends."""
    failures = (pl.col("u_fail").log() / pl.col("fail_p").log()).floor().cast(pl.Int64)
    cached = pl.col("u_fate") < pl.col("cache_p")
    fate = pl.col("u_fate")
    runs = runs.with_columns(
        prefix=pl.when(pl.col("u_prefix") < 0.02)
        .then(2)
        .when(pl.col("u_prefix") < 0.06)
        .then(1)
        .otherwise(0),
        attempts=pl.when(cached).then(1).otherwise(failures.clip(0, pl.col("max_retries")) + 1),
        ending=pl.when(cached)
        .then(pl.lit("Cached"))
        .when(fate > 0.995)
        .then(pl.lit("unfinished"))
        .when(fate > 0.992)
        .then(pl.lit("Cancelled"))
        .when(fate > 0.988)
        .then(pl.lit("Crashed"))
        .when(failures > pl.col("max_retries"))
        .then(pl.lit("Failed"))
        .otherwise(pl.lit("Completed")),
        delayed=pl.col("retry_delay") > 0,
    )
    return runs.with_columns(
        n_states=pl.col("prefix")
        + 2
        + (pl.col("attempts") - 1) * (1 + pl.col("delayed").cast(pl.Int64))
        + (pl.col("ending") != "unfinished").cast(pl.Int64),
    )


def _state_rows(runs: pl.LazyFrame, seed: int) -> pl.LazyFrame:
    """One row per state, with its name, type and timestamp."""
    lf = runs.with_columns(j=pl.int_ranges(0, pl.col("n_states"))).explode("j")
    lf = lf.with_columns(state_idx=pl.int_range(pl.len()))
    seg = pl.col("j") - pl.col("prefix")
    last = pl.col("j") == pl.col("n_states") - 1
    terminal = last & (pl.col("ending") != "unfinished")
    retry_offset = seg - 2
    name = (
        pl.when(pl.col("j") < pl.col("prefix"))
        .then(pl.when(pl.col("j") == 0).then(pl.lit("Scheduled")).otherwise(pl.lit("Late")))
        .when(seg == 0)
        .then(pl.lit("Pending"))
        .when(seg == 1)
        .then(pl.lit("Running"))
        .when(terminal)
        .then(pl.col("ending"))
        .when(pl.col("delayed") & (retry_offset % 2 == 0))
        .then(pl.lit("AwaitingRetry"))
        .otherwise(pl.lit("Retrying"))
    )
    lf = lf.with_columns(name=name)
    k = pl.col("state_idx")
    lognormal = (pl.col("mu") + pl.col("sigma") * _normal(k, seed, 20)).exp()
    gap_s = (
        pl.when(pl.col("name") == "Scheduled")
        .then((0.7 + 1.2 * _normal(k, seed, 22)).exp())
        .when(pl.col("name") == "Late")
        .then((2.5 + 0.8 * _normal(k, seed, 24)).exp())
        .when(pl.col("name") == "Pending")
        .then((-1.5 + 1.0 * _normal(k, seed, 26)).exp())
        .when(pl.col("name").is_in(["Running", "Retrying"]))
        .then(pl.when(pl.col("ending") == "Cached").then(lognormal / 50).otherwise(lognormal))
        .when(pl.col("name") == "AwaitingRetry")
        .then(pl.col("retry_delay") * (1 + 0.05 * _uniform(k, seed, 28)))
        .otherwise(0.0)
    )
    lf = lf.with_columns(
        type=pl.col("name").replace_strict(_TYPE_OF_NAME, return_dtype=StateType),
        gap_us=(gap_s * 1e6).round().cast(pl.Int64).clip(1, None),
    )
    first_us = pl.col("expected_us") + pl.when(pl.col("prefix") == 0).then(
        (_uniform(pl.col("run_idx"), seed, 30) * 50_000).cast(pl.Int64)
    ).otherwise(0)
    # rows are grouped by run in order: a global running sum, restarted at each run's first row
    before = pl.col("gap_us").cum_sum() - pl.col("gap_us")
    elapsed = before - pl.when(pl.col("j") == 0).then(before).forward_fill()
    return lf.with_columns(timestamp_us=first_us + elapsed)


def generate_states(
    n_task_runs: int = 10_000,
    *,
    seed: int = 0,
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    days: float = 7.0,
    n_flows: int = 6,
    n_tasks: int = 40,
) -> pl.DataFrame:
    """Generate a realistic states frame with exactly :data:`~trs_analytics.STATES_SCHEMA`.

    Task runs belong to flow runs of 8; each flow has its own tasks. Every
    task has a log-normal attempt duration (medians from 50 ms to 5 min), a
    per-attempt failure probability (most below 1%, a few flaky ones up to
    35%), a retry policy (0 to 3 retries, delay 0, 1, 5 or 30 s) and tags.
    Histories follow Prefect 3: ``[Scheduled, [Late,]] Pending, Running,
    ([AwaitingRetry,] Retrying)*, Completed | Cached | Failed | Crashed |
    Cancelled``; about 0.5% of runs are still running (no terminal state).

    Args:
        n_task_runs: how many task runs (about 3.2 states each).
        seed: the random seed; the same seed gives the same frame.
        start: the earliest flow-run start (time-zone aware).
        days: the span over which flow runs start.
        n_flows: how many flows (at most ``n_tasks``).
        n_tasks: how many distinct tasks.

    Raises:
        ConfigurationError: a count is not positive, ``n_flows > n_tasks``,
            or ``start`` is naive.

    Examples:
        >>> import trs_analytics as ta
        >>> states = ta.generate_states(1_000, seed=7)
        >>> states.schema == ta.STATES_SCHEMA
        True
        >>> states["task_run_id"].n_unique()
        1000
        >>> states.equals(ta.generate_states(1_000, seed=7))
        True
    """
    if n_task_runs < 0 or n_flows < 1 or n_tasks < n_flows or days <= 0:
        msg = (
            f"need n_task_runs >= 0, 1 <= n_flows <= n_tasks and days > 0, got "
            f"n_task_runs={n_task_runs}, n_flows={n_flows}, n_tasks={n_tasks}, days={days}. "
            "Hint: every flow needs at least one task of its own."
        )
        raise ConfigurationError(msg)
    if start.tzinfo is None:
        msg = f"start={start!r} has no time zone. Hint: pass datetime(..., tzinfo=UTC)."
        raise ConfigurationError(msg)
    start_us = epoch_micros(start)
    runs = _runs(n_task_runs, n_tasks, n_flows, seed, start_us, int(days * 86_400e6))
    runs = _histories(runs.join(_tasks(n_tasks, n_flows, seed), on="task_idx", how="left"))
    states = _state_rows(runs.sort("run_idx"), seed)
    return states.select(_columns(seed)).collect()


def _columns(seed: int) -> list[pl.Expr]:
    ts = pl.col("timestamp_us").cast(UTC_US)
    expected = pl.col("expected_us").cast(UTC_US)
    name = pl.col("name")
    flow = pl.col("flow_idx")
    values: dict[str, pl.Expr] = {
        "id": _uuid(1, seed, pl.col("state_idx")),
        "task_run_id": _uuid(2, seed, pl.col("run_idx")),
        "flow_run_id": _uuid(3, seed, pl.col("flow_run_idx")),
        "type": pl.col("type"),
        "name": name,
        "timestamp": ts,
        "message": pl.when(name == "Failed")
        .then(pl.lit("Task run encountered an exception ValueError: bad input"))
        .when(name == "Crashed")
        .then(pl.lit("Execution was interrupted by an unexpected exception"))
        .when(name == "Completed")
        .then(pl.lit("Finished in state Completed()")),
        "details_scheduled_time": pl.when(name.is_in(["Scheduled", "Late"]))
        .then(expected)
        .when(name == "AwaitingRetry")
        .then(ts + pl.duration(microseconds=pl.col("gap_us"))),
        "details_cache_key": pl.when(name == "Cached").then(
            pl.format("{}-{}", pl.col("task_name"), pl.col("run_idx") % 97)
        ),
        "details_retriable": pl.when(name == "Failed").then(pl.lit(value=False)),
        "task_run_name": pl.format("{}-{}", pl.col("task_name"), pl.col("run_idx") % 1000),
        "task_key": pl.format("{}-{}", pl.col("task_name"), pl.col("task_idx")),
        "task_name": pl.col("task_name"),
        "dynamic_key": pl.col("position").cast(pl.String),
        "tags": pl.col("tags"),
        "run_count": pl.col("attempts").cast(pl.Int64),
        "expected_start_time": expected,
        "flow_run_name": pl.concat_str(
            _pick(_ADJECTIVES, pl.col("flow_run_idx")),
            pl.lit("-"),
            _pick(_ANIMALS, pl.col("flow_run_idx") // len(_ADJECTIVES)),
        ),
        "flow_name": pl.when(flow < len(_FLOWS))
        .then(_pick(_FLOWS, flow))
        .otherwise(pl.format("flow-{}", flow)),
        "deployment_id": _uuid(4, seed, flow),
        "work_pool_name": _pick(_POOLS, flow),
    }
    return _in_schema(values, TASK_RUNS)


def _in_schema(values: dict[str, pl.Expr], kind: RunKind) -> list[pl.Expr]:
    """``kind.schema``'s columns in order, each from ``values`` (else null), cast to its type."""
    return [
        values.get(column, pl.lit(None)).cast(dtype).alias(column)
        for column, dtype in kind.schema.items()
    ]


def generate_flow_run_states(
    n_task_runs: int = 10_000,
    *,
    seed: int = 0,
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    days: float = 7.0,
    n_flows: int = 6,
    n_tasks: int = 40,
) -> pl.DataFrame:
    """Generate the flow-run states of :func:`generate_states`' flow runs (same arguments).

    Each flow run of the task-run states gets a Prefect 3 flow-run history,
    consistent with its task runs: ``Scheduled`` (its ``expected_start_time``,
    the earliest of its task runs'), ``Pending`` and ``Running`` just before
    its first task-run state, then a terminal state just after its latest
    one: ``Failed`` when a task run ended Failed, else ``Crashed`` when one
    crashed or never finished (its flow run lost), else ``Cancelled`` when
    one was cancelled, ``Completed`` otherwise. Each flow has one
    deployment (``<flow>/<work pool>``) on the flow's work pool.

    Raises:
        ConfigurationError: as :func:`generate_states`.

    Examples:
        >>> import trs_analytics as ta
        >>> flow_runs = ta.generate_flow_run_states(800, seed=7)
        >>> flow_runs.schema == ta.FLOW_RUN_STATES_SCHEMA
        True
        >>> flow_runs["flow_run_id"].n_unique()
        100
    """
    states = generate_states(
        n_task_runs, seed=seed, start=start, days=days, n_flows=n_flows, n_tasks=n_tasks
    )
    return _flow_runs_of(states, seed)


def _flow_runs_of(states: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Flow-run states derived from the task-run states of :func:`generate_states`."""
    task_runs = states.group_by("task_run_id").agg(
        pl.col(
            "flow_run_id", "flow_run_name", "flow_name", "deployment_id", "work_pool_name"
        ).first(),
        expected=pl.col("expected_start_time").min(),
        first=pl.col("timestamp").min(),
        last=pl.col("timestamp").max(),
        final=pl.col("name").sort_by("timestamp").last(),
    )
    unfinished = ~pl.col("final").is_in(["Completed", "Cached", "Failed", "Crashed", "Cancelled"])
    runs = task_runs.group_by("flow_run_id").agg(
        pl.col("flow_run_name", "flow_name", "deployment_id", "work_pool_name").first(),
        pl.col("expected", "first").min(),
        pl.col("last").max(),
        failed=(pl.col("final") == "Failed").any(),
        crashed=((pl.col("final") == "Crashed") | unfinished).any(),
        cancelled=(pl.col("final") == "Cancelled").any(),
    )
    ending = (
        pl.when(pl.col("failed"))
        .then(pl.lit("Failed"))
        .when(pl.col("crashed"))
        .then(pl.lit("Crashed"))
        .when(pl.col("cancelled"))
        .then(pl.lit("Cancelled"))
        .otherwise(pl.lit("Completed"))
    )
    runs = runs.with_columns(ending=ending).sort("flow_run_id")
    offsets = {"Scheduled": None, "Pending": -20_000, "Running": -10_000}
    steps = [
        runs.with_columns(
            name=pl.lit(name),
            timestamp=pl.col("expected").dt.offset_by("-1s")
            if shift is None
            else pl.col("first").dt.offset_by(f"{shift}us"),
            step=pl.lit(i),
        )
        for i, (name, shift) in enumerate(offsets.items())
    ]
    ended = runs.with_columns(
        name=pl.col("ending"),
        timestamp=pl.col("last").dt.offset_by("15ms"),
        step=pl.lit(3),
    )
    rows = pl.concat([*steps, ended]).sort("flow_run_id", "step")
    return (
        rows.select(_flow_run_columns(seed))
        .with_row_index("_i")
        .with_columns(id=_uuid(5, seed, pl.col("_i").cast(pl.Int64)))
        .drop("_i")
    )


def _flow_run_columns(seed: int) -> list[pl.Expr]:
    name = pl.col("name")
    flow = pl.col("flow_name")
    values: dict[str, pl.Expr] = {
        "flow_run_id": pl.col("flow_run_id"),
        "type": name.replace_strict(_TYPE_OF_NAME, return_dtype=StateType),
        "name": name,
        "timestamp": pl.col("timestamp"),
        "message": pl.when(name == "Failed").then(
            pl.lit("Flow run encountered an exception: 1/8 states failed.")
        ),
        "details_scheduled_time": pl.when(name == "Scheduled").then(pl.col("expected")),
        "flow_run_name": pl.col("flow_run_name"),
        "flow_id": pl.col("deployment_id").str.replace("-0004-", "-0006-", literal=True),
        "flow_name": flow,
        "deployment_id": pl.col("deployment_id"),
        "deployment_name": pl.format("{}/{}", flow, pl.col("work_pool_name")),
        "work_pool_name": pl.col("work_pool_name"),
        "work_queue_name": pl.lit("default"),
        "tags": pl.lit([], dtype=pl.List(pl.String)),
        "run_count": pl.when(name.is_in(["Scheduled", "Pending"])).then(0).otherwise(1),
        "expected_start_time": pl.col("expected"),
    }
    return _in_schema(values, FLOW_RUNS)


# -- histories with planted anomalies --------------------------------------------------

#: The kinds of planted anomaly, as :attr:`Planted.truth` names them.
PLANTED_KINDS: Final = ("duration_spike", "failure_jump", "gap", "late_run", "slow_run", "stuck")

#: The columns of :attr:`Planted.truth`.
TRUTH_SCHEMA: Final = pl.Schema(
    [
        ("kind", pl.String()),
        ("task_name", pl.String()),
        ("flow_name", pl.String()),
        ("bucket", UTC_US),
        ("task_run_id", pl.String()),
        ("start", UTC_US),
        ("end", UTC_US),
        ("size", pl.Float64()),
    ]
)

#: Weekly seasonality of run times, Monday first: slow Mondays, quick weekends.
WEEKDAY_FACTORS: Final = (1.3, 1.0, 1.0, 1.0, 1.1, 0.8, 0.75)

_DAY_US: Final = 86_400_000_000


@dataclass(frozen=True)
class Planted:
    """A synthetic history and the anomalies planted in it (see :func:`generate_planted`).

    Attributes:
        states: the states, with exactly :data:`~trs_analytics.STATES_SCHEMA`.
        truth: one row per planted anomaly, :data:`TRUTH_SCHEMA`: ``kind``
            (one of :data:`PLANTED_KINDS`), ``task_name``, ``flow_name``,
            ``bucket`` (the UTC day it is in), ``task_run_id`` (for anomalies
            of one run, else null), ``start``/``end`` (the planted span) and
            ``size`` (see :func:`generate_planted`).
        tasks: one row per task: ``task_name``, ``flow_name``,
            ``median_run_time`` (seconds, before the weekly factor), ``sigma``
            (of the log run time), ``failure_probability``.
        end: the end of the history, the "now" of the stuck runs.
    """

    states: pl.DataFrame
    truth: pl.DataFrame
    tasks: pl.DataFrame
    end: datetime


@dataclass(frozen=True)
class _Plan:
    """Where each anomaly goes: task-days ``(task, day)`` and run indices."""

    spiked: list[tuple[int, int]]
    jumped: list[tuple[int, int]]
    gapped: list[tuple[int, int]]
    slow: list[int]
    late: list[int]
    stuck: list[int]


def generate_planted(
    *,
    seed: int = 0,
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC),
    days: int = 35,
    n_tasks: int = 10,
    runs_per_day: int = 24,
    warmup_days: int = 14,
    spikes: int = 4,
    spike_factor: float = 3.0,
    failure_jumps: int = 2,
    jump_probability: float = 0.5,
    stuck: int = 2,
    stuck_age: timedelta = timedelta(hours=3),
    slow_runs: int = 2,
    slow_factor: float = 20.0,
    late_runs: int = 2,
    late_by: timedelta = timedelta(minutes=30),
    gaps: int = 1,
    failure_probability: tuple[float, float] = (0.01, 0.05),
) -> Planted:
    """Generate a history of regular task runs with anomalies planted at known places.

    Each task runs ``runs_per_day`` times a day, evenly spread (expected
    start times, with jitter), through ``Scheduled, Pending, Running`` to
    ``Completed`` or ``Failed``; tasks belong to flows of 4, and each task
    run is a flow run of its own. A task's run time is log-normal, with a median
    of 1 s to 2 min and ``sigma`` 0.2 to 0.5, times a weekly factor
    (:data:`WEEKDAY_FACTORS`: Mondays 1.3x, weekends 0.75-0.8x); it fails
    with a probability of 1-5% (``failure_probability``). After ``warmup_days`` (the detection's
    training), never two in one task-day and never on the last day:

    - ``duration_spike``: every run of a task-day takes ``spike_factor``
      times longer (``size``: the factor);
    - ``failure_jump``: a task-day's runs fail with probability
      ``jump_probability`` (``size``);
    - ``gap``: a task-day without any run (an SLA on freshness; ``size``:
      86400 s);
    - ``slow_run``: one run takes ``slow_factor`` times longer (an SLA on
      run time; ``size``: its run time in seconds);
    - ``late_run``: one run starts ``late_by`` after its expected start (an
      SLA on lateness; ``size``: its lateness in seconds);

    and on the last day, ``stuck``: a run left in RUNNING (or, every other
    one, PENDING) since at least ``stuck_age`` before :attr:`Planted.end`
    (``size``: its age at the end, in seconds). No other run is unfinished.
    Set the counts to 0 for a clean history. The same arguments give the
    same frames.

    Args:
        seed: the random seed.
        start: the first day, midnight UTC (a Monday by default).
        days: how many days.
        n_tasks: how many tasks.
        runs_per_day: runs of each task per day.
        warmup_days: days left clean at the start.
        spikes: how many duration spikes.
        spike_factor: how many times slower a spiked task-day's runs are.
        failure_jumps: how many failure-rate jumps.
        jump_probability: the failure probability during a jump.
        stuck: how many stuck runs (at most ``n_tasks``).
        stuck_age: how long before the end a stuck run got stuck (under a day).
        slow_runs: how many slow runs.
        slow_factor: how many times slower a slow run is.
        late_runs: how many late runs.
        late_by: how late a late run starts.
        gaps: how many task-days without runs.
        failure_probability: the range each task's failure probability is
            drawn from, uniformly.

    Raises:
        ConfigurationError: a count is negative, ``start`` is not midnight
            UTC, or there are too few task-days for what is to be planted.

    Examples:
        >>> import trs_analytics as ta
        >>> planted = generate_planted(seed=3, days=20, n_tasks=4)
        >>> planted.states.schema == ta.STATES_SCHEMA
        True
        >>> planted.truth.group_by("kind").len().sort("kind").rows()
        [('duration_spike', 4), ('failure_jump', 2), ('gap', 1), ('late_run', 2), ('slow_run', 2), ('stuck', 2)]
        >>> planted.truth.equals(generate_planted(seed=3, days=20, n_tasks=4).truth)
        True
    """
    counts = {"spikes": spikes, "failure_jumps": failure_jumps, "gaps": gaps}
    counts |= {"slow_runs": slow_runs, "late_runs": late_runs, "stuck": stuck}
    _check_planted(start, days, n_tasks, runs_per_day, warmup_days, counts, stuck_age)
    if not 0 <= failure_probability[0] <= failure_probability[1] <= 1:
        msg = (
            f"failure_probability={failure_probability!r} is not a range (low, high) within "
            "0..1. Hint: pass (0.02, 0.03)."
        )
        raise ConfigurationError(msg)
    start_us = epoch_micros(start)
    tasks = _planted_tasks(n_tasks, seed, failure_probability)
    runs = _planted_runs(tasks, days, runs_per_day, start_us, seed)
    plan = _plan(random.Random(seed), runs, counts, days, warmup_days, stuck_age, runs_per_day)
    runs = _apply(runs, plan, spike_factor, jump_probability, slow_factor, late_by)
    timed = _planted_times(runs, seed)
    end = start + timedelta(days=days)
    return Planted(
        states=_planted_states(timed, seed),
        truth=_truth(timed, plan, start_us, end, seed),
        tasks=tasks.select(
            "task_name",
            "flow_name",
            median_run_time=pl.col("mu").exp(),
            sigma="sigma",
            failure_probability="fail_p",
        ),
        end=end,
    )


def _check_planted(
    start: datetime,
    days: int,
    n_tasks: int,
    runs_per_day: int,
    warmup_days: int,
    counts: dict[str, int],
    stuck_age: timedelta,
) -> None:
    if start.tzinfo is None or (start - EPOCH) % timedelta(days=1):
        msg = f"start={start!r} is not midnight UTC. Hint: pass datetime(2026, 1, 5, tzinfo=UTC)."
        raise ConfigurationError(msg)
    negative = {k: v for k, v in counts.items() if v < 0}
    if negative or n_tasks < 1 or runs_per_day < 1 or not 0 <= warmup_days < days - 1:
        msg = (
            f"need counts >= 0, n_tasks >= 1, runs_per_day >= 1 and 0 <= warmup_days < days - 1, "
            f"got {counts}, n_tasks={n_tasks}, runs_per_day={runs_per_day}, "
            f"warmup_days={warmup_days}, days={days}. Hint: anomalies go after the warm-up."
        )
        raise ConfigurationError(msg)
    cells = n_tasks * (days - 1 - warmup_days)
    wanted = counts["spikes"] + counts["failure_jumps"] + counts["gaps"]
    if (
        wanted > cells
        or counts["stuck"] > n_tasks
        or not timedelta(0) < stuck_age < timedelta(days=1)
    ):
        msg = (
            f"cannot plant {wanted} task-day anomalies in {cells} task-days, or {counts['stuck']} "
            f"stuck runs among {n_tasks} tasks, or a stuck_age of {stuck_age} (under a day). "
            "Hint: add days or tasks, or plant fewer."
        )
        raise ConfigurationError(msg)


def _planted_tasks(n_tasks: int, seed: int, failing: tuple[float, float]) -> pl.DataFrame:
    rng = random.Random(seed * 7919 + 1)
    low, high = failing
    spread = high - low
    names = []
    for t in range(n_tasks):
        word = f"{_VERBS[t % len(_VERBS)]}_{_NOUNS[(t // len(_VERBS)) % len(_NOUNS)]}"
        lap = t // (len(_VERBS) * len(_NOUNS))
        names.append(f"{word}_{lap}" if lap else word)
    return pl.DataFrame(
        {
            "task": list(range(n_tasks)),
            "task_name": names,
            "flow_name": [f"flow-{t // 4}" for t in range(n_tasks)],
            "mu": [math.log(1.0) + rng.random() * math.log(120.0) for _ in range(n_tasks)],
            "sigma": [0.2 + 0.3 * rng.random() for _ in range(n_tasks)],
            "fail_p": [low + spread * rng.random() for _ in range(n_tasks)],
        }
    )


def _planted_runs(
    tasks: pl.DataFrame, days: int, runs_per_day: int, start_us: int, seed: int
) -> pl.DataFrame:
    """One row per run: task, day, slot and expected start (microseconds)."""
    n_tasks = tasks.height
    spacing = _DAY_US // runs_per_day
    run = pl.col("run")
    jitter = ((_uniform(run, seed, 40) - 0.5) * spacing * 0.5).cast(pl.Int64)
    return (
        pl.DataFrame({"run": pl.int_range(n_tasks * days * runs_per_day, eager=True)})
        .with_columns(
            task=run // (days * runs_per_day),
            day=(run // runs_per_day) % days,
            slot=run % runs_per_day,
        )
        .with_columns(
            expected_us=start_us
            + pl.col("day") * _DAY_US
            + pl.col("slot") * spacing
            + spacing // 2
            + jitter
        )
        .join(tasks, on="task", how="left")
    )


def _plan(
    rng: random.Random,
    runs: pl.DataFrame,
    counts: dict[str, int],
    days: int,
    warmup_days: int,
    stuck_age: timedelta,
    runs_per_day: int,
) -> _Plan:
    n_tasks = runs["task"].n_unique()
    cells = [(t, d) for t in range(n_tasks) for d in range(warmup_days, days - 1)]
    spikes, jumps, gaps = counts["spikes"], counts["failure_jumps"], counts["gaps"]
    picked = rng.sample(cells, spikes + jumps + gaps)
    busy = pl.DataFrame(picked, schema=["task", "day"], orient="row").with_columns(
        pl.all().cast(pl.Int64)
    )
    free = (
        runs.filter(pl.col("day").is_between(warmup_days, days - 2))
        .join(busy, on=["task", "day"], how="anti")["run"]
        .to_list()
    )
    singles = rng.sample(free, counts["slow_runs"] + counts["late_runs"])
    # the latest slot whose runs all start at least stuck_age before the end
    spacing = _DAY_US // runs_per_day
    slot = max(0, ((_DAY_US - stuck_age // _MICROSECOND) * 4 // spacing - 3) // 4)
    stuck_tasks = sorted(rng.sample(range(n_tasks), counts["stuck"]))
    return _Plan(
        spiked=picked[:spikes],
        jumped=picked[spikes : spikes + jumps],
        gapped=picked[spikes + jumps :],
        slow=singles[: counts["slow_runs"]],
        late=singles[counts["slow_runs"] :],
        stuck=[(t * days + days - 1) * runs_per_day + slot for t in stuck_tasks],
    )


def _in_cells(cells: list[tuple[int, int]]) -> pl.Expr:
    """Whether a run's (task, day) is one of ``cells``."""
    keys = [t * 1_000_000 + d for t, d in cells]
    return (pl.col("task") * 1_000_000 + pl.col("day")).is_in(keys)


def _apply(
    runs: pl.DataFrame,
    plan: _Plan,
    spike_factor: float,
    jump_probability: float,
    slow_factor: float,
    late_by: timedelta,
) -> pl.DataFrame:
    """Give each run its planted factor, failure probability, delay and stuck state."""
    run = pl.col("run")
    stuck_order = pl.Series(plan.stuck, dtype=pl.Int64)
    return runs.filter(~_in_cells(plan.gapped)).with_columns(
        factor=pl.when(_in_cells(plan.spiked))
        .then(spike_factor)
        .when(run.is_in(plan.slow))
        .then(slow_factor)
        .otherwise(1.0),
        fail_p=pl.when(_in_cells(plan.jumped)).then(jump_probability).otherwise(pl.col("fail_p")),
        late_us=pl.when(run.is_in(plan.late)).then(late_by // _MICROSECOND).otherwise(0),
        stuck_in=pl.when(run.is_in(plan.stuck)).then(
            pl.when(run.is_in(stuck_order.gather_every(2, offset=1).implode()))
            .then(pl.lit("PENDING"))
            .otherwise(pl.lit("RUNNING"))
        ),
    )


def _planted_times(runs: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Each run's state timestamps (microseconds) and outcome."""
    run = pl.col("run")
    weekday = (pl.col("expected_us") // _DAY_US + 3) % 7  # 1970-01-01 was a Thursday
    weekly = pl.lit(pl.Series(WEEKDAY_FACTORS)).gather(weekday)
    seconds = (pl.col("mu") + pl.col("sigma") * _normal(run, seed, 42)).exp()
    wait = (-1.0 + 0.5 * _normal(run, seed, 44)).exp()
    return runs.with_columns(
        scheduled_us=pl.col("expected_us") - 60_000_000,
        pending_us=pl.col("expected_us") + pl.col("late_us") + (wait * 1e6).cast(pl.Int64),
        failed=_uniform(run, seed, 46) < pl.col("fail_p"),
        run_us=(seconds * weekly * pl.col("factor") * 1e6).round().cast(pl.Int64).clip(1, None),
    ).with_columns(
        running_us=pl.col("pending_us") + 100_000,
        end_us=pl.col("pending_us") + 100_000 + pl.col("run_us"),
    )


def _planted_states(timed: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Four states per run (fewer for a stuck one), with the contract's columns."""
    steps = [
        ("Scheduled", "SCHEDULED", "scheduled_us"),
        ("Pending", "PENDING", "pending_us"),
        ("Running", "RUNNING", "running_us"),
        (None, None, "end_us"),
    ]
    frames = []
    for j, (name, kind, column) in enumerate(steps):
        rows = timed.with_columns(j=pl.lit(j, pl.Int64), timestamp_us=pl.col(column))
        if name is None:
            rows = rows.filter(pl.col("stuck_in").is_null()).with_columns(
                name=pl.when(pl.col("failed"))
                .then(pl.lit("Failed"))
                .otherwise(pl.lit("Completed")),
                type=pl.when(pl.col("failed"))
                .then(pl.lit("FAILED"))
                .otherwise(pl.lit("COMPLETED")),
            )
        else:
            if kind == "RUNNING":
                rows = rows.filter(pl.col("stuck_in").fill_null("") != "PENDING")
            rows = rows.with_columns(name=pl.lit(name), type=pl.lit(kind))
        frames.append(rows)
    states = pl.concat(frames).sort("run", "j")
    ts = pl.col("timestamp_us").cast(UTC_US)
    values: dict[str, pl.Expr] = {
        "id": _uuid(5, seed, pl.col("run") * 4 + pl.col("j")),
        "task_run_id": _uuid(6, seed, pl.col("run")),
        "flow_run_id": _uuid(7, seed, pl.col("run")),
        "type": pl.col("type"),
        "name": pl.col("name"),
        "timestamp": ts,
        "message": pl.when(pl.col("name") == "Failed").then(
            pl.lit("Task run encountered an exception ValueError: planted")
        ),
        "details_scheduled_time": pl.when(pl.col("name") == "Scheduled").then(
            pl.col("expected_us").cast(UTC_US)
        ),
        "task_run_name": pl.format("{}-{}", pl.col("task_name"), pl.col("run")),
        "task_key": pl.format("{}-{}", pl.col("task_name"), pl.col("task")),
        "task_name": pl.col("task_name"),
        "dynamic_key": pl.col("slot").cast(pl.String),
        "tags": pl.lit([], dtype=pl.List(pl.String)),
        "run_count": pl.when(pl.col("j") >= 2).then(1).otherwise(0),
        "expected_start_time": pl.col("expected_us").cast(UTC_US),
        "flow_run_name": pl.format("{}-{}", pl.col("flow_name"), pl.col("run")),
        "flow_name": pl.col("flow_name"),
        "deployment_id": _uuid(8, seed, pl.col("task") // 4),
        "work_pool_name": pl.lit("process-pool"),
    }
    return states.select(_in_schema(values, TASK_RUNS))


def _truth(
    timed: pl.DataFrame, plan: _Plan, start_us: int, end: datetime, seed: int
) -> pl.DataFrame:
    """One row per planted anomaly, read back from the runs as generated."""
    end_us = epoch_micros(end)
    by_cell = timed.group_by("task", "day").agg(
        pl.col("task_name", "flow_name").first(), pl.col("factor", "fail_p").first()
    )
    tasks = timed.select("task", "task_name", "flow_name").unique("task")
    gapped = pl.DataFrame(plan.gapped or None, schema=["task", "day"], orient="row").cast(pl.Int64)
    rows = [
        _cells(by_cell, plan.spiked, "duration_spike", pl.col("factor"), start_us),
        _cells(by_cell, plan.jumped, "failure_jump", pl.col("fail_p"), start_us),
        _cells(
            gapped.join(tasks, on="task", how="left"),
            plan.gapped,
            "gap",
            pl.lit(_DAY_US / 1e6),
            start_us,
        ),
        _singles(timed, plan.slow, "slow_run", "running_us", "end_us", start_us, seed),
        _singles(timed, plan.late, "late_run", "expected_us", "running_us", start_us, seed),
        _singles(
            timed.with_columns(
                _last=pl.when(pl.col("stuck_in") == "PENDING")
                .then(pl.col("pending_us"))
                .otherwise(pl.col("running_us")),
                _end=pl.lit(end_us),
            ),
            plan.stuck,
            "stuck",
            "_last",
            "_end",
            start_us,
            seed,
        ),
    ]
    return pl.concat(rows).sort("kind", "bucket", "task_name").cast(TRUTH_SCHEMA)


def _cells(
    frame: pl.DataFrame, cells: list[tuple[int, int]], kind: str, size: pl.Expr, start_us: int
) -> pl.DataFrame:
    day = pl.col("day") * _DAY_US + start_us
    return frame.filter(_in_cells(cells)).select(
        kind=pl.lit(kind),
        task_name="task_name",
        flow_name="flow_name",
        bucket=day.cast(UTC_US),
        task_run_id=pl.lit(None, pl.String),
        start=day.cast(UTC_US),
        end=(day + _DAY_US).cast(UTC_US),
        size=size.cast(pl.Float64),
    )


def _singles(
    timed: pl.DataFrame,
    picked: list[int],
    kind: str,
    since: str,
    until: str,
    start_us: int,
    seed: int,
) -> pl.DataFrame:
    day = pl.col("day") * _DAY_US + start_us
    return timed.filter(pl.col("run").is_in(picked)).select(
        kind=pl.lit(kind),
        task_name="task_name",
        flow_name="flow_name",
        bucket=day.cast(UTC_US),
        task_run_id=_uuid(6, seed, pl.col("run")),
        start=pl.col(since).cast(UTC_US),
        end=pl.col(until).cast(UTC_US),
        size=((pl.col(until) - pl.col(since)) / 1e6).cast(pl.Float64),
    )

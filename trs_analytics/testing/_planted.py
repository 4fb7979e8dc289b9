"""Histories with anomalies planted at known places: :func:`generate_planted` and its truth."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import polars as pl

from trs_analytics._time import EPOCH, epoch_micros
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.schema import TASK_RUNS, UTC_US
from trs_analytics.testing._names import in_schema, state_type, task_name
from trs_analytics.testing._random import normal, uniform, uuid

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
_MICROSECOND: Final = timedelta(microseconds=1)


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
    return pl.DataFrame(
        {
            "task": list(range(n_tasks)),
            "task_name": pl.select(task_name(pl.int_range(n_tasks))).to_series(),
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
    jitter = ((uniform(run, seed, 40) - 0.5) * spacing * 0.5).cast(pl.Int64)
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
    seconds = (pl.col("mu") + pl.col("sigma") * normal(run, seed, 42)).exp()
    wait = (-1.0 + 0.5 * normal(run, seed, 44)).exp()
    return runs.with_columns(
        scheduled_us=pl.col("expected_us") - 60_000_000,
        pending_us=pl.col("expected_us") + pl.col("late_us") + (wait * 1e6).cast(pl.Int64),
        failed=uniform(run, seed, 46) < pl.col("fail_p"),
        run_us=(seconds * weekly * pl.col("factor") * 1e6).round().cast(pl.Int64).clip(1, None),
    ).with_columns(
        running_us=pl.col("pending_us") + 100_000,
        end_us=pl.col("pending_us") + 100_000 + pl.col("run_us"),
    )


def _planted_states(timed: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Four states per run (fewer for a stuck one), with the contract's columns."""
    # (state name, timestamp column); the last state's name is the run's outcome
    steps: list[tuple[str | None, str]] = [
        ("Scheduled", "scheduled_us"),
        ("Pending", "pending_us"),
        ("Running", "running_us"),
        (None, "end_us"),
    ]
    frames = []
    for j, (name, column) in enumerate(steps):
        rows = timed.with_columns(j=pl.lit(j, pl.Int64), timestamp_us=pl.col(column))
        if name is None:
            rows = rows.filter(pl.col("stuck_in").is_null()).with_columns(
                name=pl.when(pl.col("failed")).then(pl.lit("Failed")).otherwise(pl.lit("Completed"))
            )
        else:
            if name == "Running":
                rows = rows.filter(pl.col("stuck_in").fill_null("") != "PENDING")
            rows = rows.with_columns(name=pl.lit(name))
        frames.append(rows)
    states = pl.concat(frames).sort("run", "j")
    ts = pl.col("timestamp_us").cast(UTC_US)
    values: dict[str, pl.Expr] = {
        "id": uuid(5, seed, pl.col("run") * 4 + pl.col("j")),
        "task_run_id": uuid(6, seed, pl.col("run")),
        "flow_run_id": uuid(7, seed, pl.col("run")),
        "type": state_type(pl.col("name")),
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
        "deployment_id": uuid(8, seed, pl.col("task") // 4),
        "work_pool_name": pl.lit("process-pool"),
    }
    return states.select(in_schema(values, TASK_RUNS))


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
        task_run_id=uuid(6, seed, pl.col("run")),
        start=pl.col(since).cast(UTC_US),
        end=pl.col(until).cast(UTC_US),
        size=((pl.col(until) - pl.col(since)) / 1e6).cast(pl.Float64),
    )

"""Task-run state histories: :func:`generate_states`.

What a Prefect 3 server would hold after a few days of flows: many flows and
tasks, log-normal durations, per-task failure probabilities, retries
(``AwaitingRetry``/``Retrying``, or ``Retrying`` alone when the task's retry
delay is 0), cached, crashed, cancelled, late and still-running runs.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Final

import polars as pl

from trs_analytics._time import epoch_micros
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.schema import TASK_RUNS, UTC_US
from trs_analytics.testing._names import (
    POOLS,
    flow_name,
    flow_run_name,
    in_schema,
    state_type,
    task_name,
)
from trs_analytics.testing._random import normal, pick, uniform, uuid

#: Per-task retry settings, picked by task index: (retries allowed, delay in seconds).
_RETRY_POLICIES: Final = ((0, 0.0), (0, 0.0), (1, 0.0), (2, 1.0), (3, 5.0), (1, 30.0))

_TASK_RUNS_PER_FLOW_RUN: Final = 8


def _tasks(n_tasks: int, n_flows: int, seed: int) -> pl.LazyFrame:
    i = pl.col("task_idx")
    policy = i % len(_RETRY_POLICIES)
    return pl.LazyFrame({"task_idx": pl.int_range(n_tasks, eager=True)}).with_columns(
        task_name=task_name(i),
        flow_idx=i % n_flows,
        # median attempt duration between 50 ms and 5 min, log-uniform
        mu=math.log(0.05) + uniform(i, seed, 1) * math.log(300 / 0.05),
        sigma=0.3 + 0.9 * uniform(i, seed, 2),
        # per-attempt failure probability, most tasks reliable, a few flaky
        fail_p=0.003 + 0.35 * uniform(i, seed, 3).pow(4),
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
    flow_idx = (uniform(flow_run, seed, 10).pow(2) * n_flows).cast(pl.Int64).clip(0, n_flows - 1)
    in_flow = (pl.lit(n_tasks) - flow_idx + n_flows - 1) // n_flows
    slot = (uniform(i, seed, 11) * in_flow).cast(pl.Int64).clip(0, None)
    flow_start = start_us + (uniform(flow_run, seed, 12) * span_us).cast(pl.Int64)
    position = i % _TASK_RUNS_PER_FLOW_RUN
    expected = flow_start + position * 2_000_000 + (uniform(i, seed, 13) * 1e6).cast(pl.Int64)
    return pl.LazyFrame({"run_idx": pl.int_range(n_task_runs, eager=True)}).with_columns(
        flow_run_idx=flow_run,
        flow_idx=flow_idx,
        task_idx=flow_idx + n_flows * slot,
        position=position,
        expected_us=expected,
        u_fail=uniform(i, seed, 14),
        u_fate=uniform(i, seed, 15),
        u_prefix=uniform(i, seed, 16),
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
    lognormal = (pl.col("mu") + pl.col("sigma") * normal(k, seed, 20)).exp()
    gap_s = (
        pl.when(pl.col("name") == "Scheduled")
        .then((0.7 + 1.2 * normal(k, seed, 22)).exp())
        .when(pl.col("name") == "Late")
        .then((2.5 + 0.8 * normal(k, seed, 24)).exp())
        .when(pl.col("name") == "Pending")
        .then((-1.5 + 1.0 * normal(k, seed, 26)).exp())
        .when(pl.col("name").is_in(["Running", "Retrying"]))
        .then(pl.when(pl.col("ending") == "Cached").then(lognormal / 50).otherwise(lognormal))
        .when(pl.col("name") == "AwaitingRetry")
        .then(pl.col("retry_delay") * (1 + 0.05 * uniform(k, seed, 28)))
        .otherwise(0.0)
    )
    lf = lf.with_columns(
        type=state_type(pl.col("name")),
        gap_us=(gap_s * 1e6).round().cast(pl.Int64).clip(1, None),
    )
    first_us = pl.col("expected_us") + pl.when(pl.col("prefix") == 0).then(
        (uniform(pl.col("run_idx"), seed, 30) * 50_000).cast(pl.Int64)
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
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(1_000, seed=7)
        >>> states.schema == ta.STATES_SCHEMA
        True
        >>> states["task_run_id"].n_unique()
        1000
        >>> states.equals(generate_states(1_000, seed=7))
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
        "id": uuid(1, seed, pl.col("state_idx")),
        "task_run_id": uuid(2, seed, pl.col("run_idx")),
        "flow_run_id": uuid(3, seed, pl.col("flow_run_idx")),
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
        "flow_run_name": flow_run_name(pl.col("flow_run_idx")),
        "flow_name": flow_name(flow),
        "deployment_id": uuid(4, seed, flow),
        "work_pool_name": pick(POOLS, flow),
    }
    return in_schema(values, TASK_RUNS)

"""Flow-run state histories: :func:`generate_flow_run_states`, consistent with the task runs."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from trs_analytics.schema import FLOW_RUNS
from trs_analytics.testing._names import in_schema, state_type
from trs_analytics.testing._random import uuid
from trs_analytics.testing._task_runs import generate_states


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
        >>> from trs_analytics.testing import generate_flow_run_states
        >>> flow_runs = generate_flow_run_states(800, seed=7)
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
        .with_columns(id=uuid(5, seed, pl.col("_i").cast(pl.Int64)))
        .drop("_i")
    )


def _flow_run_columns(seed: int) -> list[pl.Expr]:
    name = pl.col("name")
    flow = pl.col("flow_name")
    values: dict[str, pl.Expr] = {
        "flow_run_id": pl.col("flow_run_id"),
        "type": state_type(name),
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
    return in_schema(values, FLOW_RUNS)

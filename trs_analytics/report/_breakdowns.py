"""The report's breakdown tables: outcomes per flow, deployment, work pool and task; error
messages; the failed and slowest runs, linked to the Prefect UI. Aggregated by
:mod:`trs_analytics.metrics._breakdowns` on the engine (one per-run pass,
``run_breakdowns``), formatted here."""

from __future__ import annotations

from typing import Any

import polars as pl

from trs_analytics._format import duration_expr, missing_label
from trs_analytics.client import task_run_url
from trs_analytics.metrics import error_messages, to_polars
from trs_analytics.metrics._frames import schema_of

__all__ = ["error_table", "outcome_table", "run_table"]


def outcome_table(counts: pl.DataFrame | None, *, by: str) -> pl.DataFrame:
    """Flow runs and task runs per ``by`` value, the task runs by how they ended
    (``outcome_counts``' rows, or ``None`` when the states have no ``by`` column); empty
    when no run has a ``by`` value.

    Examples:
        >>> import trs_analytics as ta
        >>> from trs_analytics.testing import generate_states
        >>> counts = ta.outcome_counts(generate_states(100, seed=1), by="flow_name")
        >>> outcome_table(counts, by="flow_name").columns[:3]
        ['flow_name', 'flow runs', 'task runs']
    """
    if counts is None or counts[by].null_count() == counts.height:
        return pl.DataFrame()
    return counts.with_columns(
        pl.col(by).cast(pl.String).fill_null(missing_label(by)),
        pl.format("{}%", (pl.col("failure_rate") * 100).round(1)).alias("failure_rate"),
    ).rename(
        {"failure_rate": "failed + crashed", "runs": "task runs", "flow_runs": "flow runs"},
        strict=False,
    )


def error_table(states: Any, *, top: int = 3) -> pl.DataFrame:
    """The most frequent error messages per task (numbers and quoted values folded).

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> error_table(generate_states(100, seed=1)).columns
        ['task_name', 'error', 'failures', 'task runs', 'last seen (UTC)']
    """
    if "message" not in schema_of(states).names():
        return pl.DataFrame()
    errors = to_polars(error_messages(states, top=top))
    return errors.select(
        "task_name",
        pl.col("error").str.slice(0, 160),
        "failures",
        pl.col("runs").alias("task runs"),
        pl.col("last_seen").dt.strftime("%Y-%m-%d %H:%M:%S").alias("last seen (UTC)"),
    )


def run_table(runs: pl.DataFrame, *, ui: str | None) -> pl.DataFrame:
    """The failed or slowest runs (``failed_runs``/``slowest_runs``' rows), ids linked to the
    Prefect UI when known.

    Examples:
        >>> import trs_analytics as ta
        >>> from trs_analytics.testing import generate_states
        >>> slowest = ta.slowest_runs(generate_states(100, seed=1), top=2)
        >>> table = run_table(slowest, ui="http://x")
        >>> table.columns, table["url"][0].startswith("http://x/runs/task-run/")
        (['task run', 'task', 'flow', 'ended', 'run time', 'started (UTC)', 'message', 'url'], True)
    """
    name = pl.col("task_run_name") if "task_run_name" in runs.columns else pl.col("task_run_id")
    flow = pl.col("flow_name") if "flow_name" in runs.columns else pl.lit(None, pl.String)
    url = (
        pl.col("task_run_id").map_elements(lambda i: task_run_url(ui, i), return_dtype=pl.String)
        if ui
        else pl.lit(None, pl.String)
    )
    return runs.select(
        name.fill_null(pl.col("task_run_id")).alias("task run"),
        pl.col("task_name").alias("task") if "task_name" in runs.columns else pl.lit(None),
        flow.fill_null(missing_label("flow_name")).alias("flow"),
        pl.col("final_type").alias("ended"),
        duration_expr(pl.col("run_seconds")).alias("run time"),
        pl.col("start").dt.strftime("%Y-%m-%d %H:%M:%S").alias("started (UTC)"),
        pl.col("final_message").str.slice(0, 120).alias("message"),
        url.alias("url"),
    )

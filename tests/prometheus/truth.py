"""Independent truth for the Prometheus tests: plain Polars on the dataset's Parquet files.

Nothing here calls the exporter or the metric functions: each run's final
state, attempts and run time are computed from the states directly, the way
docs/metrics.md defines them (the latest state is the final one; a run's time is
the sum of its Running-type states' spans, each lasting until the next state;
unknown while the run is still in one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import polars as pl

if TYPE_CHECKING:
    from datetime import datetime, timedelta
    from pathlib import Path

TERMINAL: Final = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def read_table(path: Path) -> pl.DataFrame:
    """Every row of the Parquet files under ``path`` (hidden folders and files skipped)."""
    files = sorted(
        f
        for f in path.rglob("*.parquet")
        if not any(p.startswith((".", "_")) for p in f.relative_to(path).parts)
    )
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")


def window_states(states: pl.DataFrame, end: datetime, span: timedelta) -> pl.DataFrame:
    """The states up to ``end`` of the task runs with a state in ``(end - span, end]``."""
    upto = states.filter(pl.col("timestamp") <= end)
    recent = upto.filter(pl.col("timestamp") > end - span)["task_run_id"].unique()
    return upto.filter(pl.col("task_run_id").is_in(recent.implode()))


def per_run(states: pl.DataFrame, run: str, keys: list[str]) -> pl.DataFrame:
    """One row per run: its keys, final type, Running-type states and run time (microseconds)."""
    ordered = states.with_columns(pl.col("type").cast(pl.String)).sort(run, "timestamp")
    nxt = pl.col("timestamp").shift(-1).over(run)
    spans = ordered.with_columns(
        _span=pl.when(pl.col("type") == "RUNNING")
        .then((nxt - pl.col("timestamp")).dt.total_microseconds())
        .otherwise(0),
    )
    return (
        spans.group_by(run)
        .agg(
            *(pl.col(k).first() for k in keys),
            final_type=pl.col("type").last(),
            attempts=(pl.col("type") == "RUNNING").sum(),
            _open=pl.col("type").last() == "RUNNING",
            _us=pl.col("_span").sum(),
        )
        .with_columns(
            run_us=pl.when((pl.col("attempts") > 0) & ~pl.col("_open")).then(pl.col("_us"))
        )
        .drop("_open", "_us")
    )


def finished_counts(runs: pl.DataFrame, keys: list[str]) -> dict[tuple[str, ...], int]:
    """Finished runs per ``keys`` and final type (labels as Prometheus shows them)."""
    done = runs.filter(pl.col("final_type").is_in(TERMINAL))
    counted = done.group_by([*keys, "final_type"]).len()
    return {
        (*("" if r[k] is None else r[k] for k in keys), r["final_type"]): r["len"]
        for r in counted.iter_rows(named=True)
    }

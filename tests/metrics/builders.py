"""Hand-written state histories for the metric tests.

A history is written as ``"Pending@0 Running@2 Completed@7.5"``: state names
with the second (after :data:`T0`) at which the run entered them. The state
type is looked up from the name, as Prefect assigns it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

import polars as pl

from trs_analytics.schema import STATES_SCHEMA

T0: Final = datetime(2026, 1, 1, tzinfo=UTC)

TYPE_OF: Final = {
    "Scheduled": "SCHEDULED",
    "Late": "SCHEDULED",
    "AwaitingRetry": "SCHEDULED",
    "Awaiting Retry": "SCHEDULED",
    "Pending": "PENDING",
    "Running": "RUNNING",
    "Retrying": "RUNNING",
    "Paused": "PAUSED",
    "Completed": "COMPLETED",
    "Cached": "COMPLETED",
    "Failed": "FAILED",
    "TimedOut": "FAILED",
    "Crashed": "CRASHED",
    "Cancelled": "CANCELLED",
}


def at(seconds: float) -> datetime:
    """The instant ``seconds`` after :data:`T0`."""
    return T0 + timedelta(seconds=seconds)


def parse(history: str) -> list[tuple[str, float]]:
    """``"Pending@0 Running@2"`` -> ``[("Pending", 0.0), ("Running", 2.0)]``.

    Names with a space (``Awaiting Retry``) are written with an underscore.
    """
    out = []
    for token in history.split():
        name, _, second = token.rpartition("@")
        out.append((name.replace("_", " "), float(second)))
    return out


def states(
    runs: dict[str, str],
    *,
    task_names: dict[str, str] | None = None,
    tags: dict[str, list[str]] | None = None,
    expected: dict[str, float] | None = None,
) -> pl.DataFrame:
    """A states frame with the contract's schema, one history per run id."""
    rows = []
    for run, history in runs.items():
        for i, (name, second) in enumerate(parse(history)):
            rows.append(
                {
                    "id": f"{run}-{i}",
                    "task_run_id": run,
                    "flow_run_id": "flow-run-1",
                    "type": TYPE_OF[name],
                    "name": name,
                    "timestamp": at(second),
                    "task_name": (task_names or {}).get(run, "task"),
                    "task_key": (task_names or {}).get(run, "task") + "-key",
                    "flow_name": "flow",
                    "tags": (tags or {}).get(run, []),
                    "expected_start_time": at((expected or {}).get(run, 0.0)),
                }
            )
    frame = pl.DataFrame(rows, schema_overrides={"type": STATES_SCHEMA["type"]})
    return frame.select(
        pl.col(c).cast(dtype) if c in frame.columns else pl.lit(None, dtype=dtype).alias(c)
        for c, dtype in STATES_SCHEMA.items()
    )


def seconds(column: pl.Series) -> list[float | None]:
    """A Duration column as float seconds (None stays None)."""
    return [None if v is None else v.total_seconds() for v in column.to_list()]

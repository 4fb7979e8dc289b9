"""What a dataset folder or a Parquet file of states holds: the ``info`` use case.

:func:`summarize_states` counts the states and runs of each table, their time
span and, for a dataset, what its markers record (cursor, filters, exports).
It reads only the columns it counts, so a large dataset is summarised in
seconds and never loaded whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from trs_analytics._time import iso
from trs_analytics.schema import FLOW_RUNS, TASK_RUNS
from trs_analytics.storage._dataset import DatasetInfo, read_dataset_info
from trs_analytics.storage._parquet import MARKER_NAME, scan_flow_run_states, scan_states

if TYPE_CHECKING:
    import os
    from datetime import datetime

    from trs_analytics.schema import RunKind

__all__ = ["StatesSummary", "TableSummary", "summarize_states"]


@dataclass(frozen=True)
class TableSummary:
    """The states of one table (task-run or flow-run states).

    Attributes:
        states: how many states.
        runs: how many distinct runs they belong to.
        first: the oldest state time (UTC), or ``None`` when there is none.
        last: the newest state time (UTC), or ``None``.
        marker: the table's marker, for a dataset (cursor, filters, exports).
    """

    states: int
    runs: int
    first: datetime | None
    last: datetime | None
    marker: DatasetInfo | None = None

    def as_dict(self, prefix: str = "") -> dict[str, Any]:
        """The facts, keys after ``prefix``; the marker's for a dataset only."""
        facts: dict[str, Any] = {
            f"{prefix}states": self.states,
            f"{prefix}first": self.first,
            f"{prefix}last": self.last,
        }
        if self.marker is not None:
            cursor = self.marker.cursor
            facts[f"{prefix}cursor"] = iso(cursor) if cursor else None
            facts[f"{prefix}filters"] = self.marker.filters
            facts[f"{prefix}exports"] = self.marker.exports
        return facts


def _table(frame: pl.LazyFrame, kind: RunKind, marker: DatasetInfo | None) -> TableSummary:
    row = frame.select(
        states=pl.len(),
        runs=pl.col(kind.id_column).n_unique(),
        first=pl.col("timestamp").min(),
        last=pl.col("timestamp").max(),
    ).collect()
    return TableSummary(**row.row(0, named=True), marker=marker)


@dataclass(frozen=True)
class StatesSummary:
    """What :func:`summarize_states` found at ``path``.

    Attributes:
        path: the dataset folder or Parquet file.
        task_runs: its task-run states.
        flow_runs: its flow-run table, for a dataset that has one; else ``None``.
    """

    path: Path
    task_runs: TableSummary
    flow_runs: TableSummary | None = None

    def as_dict(self) -> dict[str, Any]:
        """One flat, JSON-ready mapping (times stay datetimes): what ``trs-analytics info``
        prints.

        Examples:
            >>> import trs_analytics as ta
            >>> summary = summarize_states("data/sample_states.parquet")
            >>> {k: summary.as_dict()[k] for k in ("states", "task_runs")}
            {'states': 8928, 'task_runs': 2760}
        """
        task_runs = self.task_runs.as_dict()
        facts = {"path": str(self.path), "states": task_runs.pop("states")}
        facts |= {"task_runs": self.task_runs.runs, **task_runs}
        if self.flow_runs is not None:
            flow_runs = self.flow_runs.as_dict("flow_run_")
            facts |= {"flow_run_states": flow_runs.pop("flow_run_states")}
            facts |= {"flow_runs": self.flow_runs.runs, **flow_runs}
        return facts


def summarize_states(path: str | os.PathLike[str]) -> StatesSummary:
    """Summarise a dataset folder or a Parquet file of states, table by table.

    Counts each table's states and runs and its oldest and newest state time; for
    a dataset, also what its marker records, and the same for its flow-run table
    (``_flow_run_states/``) when it has one.

    Raises:
        StorageError: ``path`` does not exist, or a file is damaged or holds
            something other than states.

    Examples:
        >>> import trs_analytics as ta
        >>> summary = summarize_states("data/sample_states.parquet")
        >>> summary.task_runs.states, summary.task_runs.runs, summary.flow_runs
        (8928, 2760, None)
    """
    root = Path(path)
    is_dataset = (root / MARKER_NAME).is_file()
    marker = read_dataset_info(root) if is_dataset else None
    task_runs = _table(scan_states(root), TASK_RUNS, marker)
    table = root / FLOW_RUNS.folder
    if not (is_dataset and (table / MARKER_NAME).is_file()):
        return StatesSummary(root, task_runs)
    flow_runs = _table(scan_flow_run_states(root), FLOW_RUNS, read_dataset_info(table))
    return StatesSummary(root, task_runs, flow_runs)

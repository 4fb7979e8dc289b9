"""Fixtures for the chart tests: hand-made states frames and a million-state synthetic one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest

import trs_analytics as ta

if TYPE_CHECKING:
    from collections.abc import Callable

T0 = datetime(2026, 1, 1, tzinfo=UTC)

Row = tuple[str, str, str, float]


def _states(rows: list[Row], **columns: Any) -> pl.DataFrame:
    """States from (task_run_id, state type, state name, seconds after T0) rows.

    Every other column is a constant or a dict task_run_id -> value.
    """
    frame = pl.DataFrame(
        {
            "task_run_id": [r[0] for r in rows],
            "type": [r[1] for r in rows],
            "name": [r[2] for r in rows],
            "timestamp": [T0 + timedelta(seconds=r[3]) for r in rows],
        },
        schema_overrides={
            "type": ta.STATES_SCHEMA["type"],
            "timestamp": ta.STATES_SCHEMA["timestamp"],
        },
    )
    for name, value in columns.items():
        if isinstance(value, dict):
            frame = frame.with_columns(pl.col("task_run_id").replace_strict(value).alias(name))
        else:
            frame = frame.with_columns(pl.lit(value).alias(name))
    return frame.with_columns(id=pl.int_range(pl.len()).cast(pl.String))


@pytest.fixture
def make_states() -> Callable[..., pl.DataFrame]:
    return _states


def chart_rows(chart: Any) -> list[dict[str, Any]]:
    """The one inline dataset of a chart's spec (the aggregated rows it draws)."""
    datasets = chart.to_dict()["datasets"]
    assert len(datasets) == 1
    rows: list[dict[str, Any]] = next(iter(datasets.values()))
    return rows


@pytest.fixture
def rows_of() -> Callable[[Any], list[dict[str, Any]]]:
    return chart_rows


@pytest.fixture(scope="session")
def million_states() -> pl.DataFrame:
    """About a million states (330,000 task runs over a week)."""
    states = ta.generate_states(330_000, seed=42)
    assert states.height > 1_000_000
    return states

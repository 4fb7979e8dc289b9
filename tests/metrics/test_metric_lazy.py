"""Every metric on a lazy Parquet scan: stays lazy, and agrees with the eager result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.testing as tt

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

METRICS: dict[str, Callable[[Any], Any]] = {
    "durations": lambda s: ta.durations(s, start="PENDING", end="TERMINAL", occurrence="last"),
    "time_in_state": lambda s: ta.time_in_state(s, level="name"),
    "queue_wait": ta.queue_wait,
    "run_time": ta.run_time,
    "retry_wait": ta.retry_wait,
    "end_to_end": ta.end_to_end,
    "lateness": ta.lateness,
    "retry_counts": ta.retry_counts,
    "retry_distribution": lambda s: ta.retry_distribution(s, by=["flow_name", "task_name"]),
    "failure_rates": lambda s: ta.failure_rates(s, by="tags", every="6h"),
    "summarize": lambda s: ta.summarize(ta.end_to_end(s), by="flow_name"),
    "compare_windows": lambda s: ta.compare_windows(s, window="1d", min_runs=5),
}


@pytest.fixture(scope="module")
def eager() -> pl.DataFrame:
    return tt.generate_states(3_000, seed=21, days=2, n_flows=3, n_tasks=9)


@pytest.fixture(scope="module")
def scanned(eager: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> pl.LazyFrame:
    path: Path = tmp_path_factory.mktemp("states") / "states.parquet"
    eager.write_parquet(path)
    return pl.scan_parquet(path)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_lazy_scan_gives_lazy_result_equal_to_eager(
    name: str, eager: pl.DataFrame, scanned: pl.LazyFrame
) -> None:
    lazy = METRICS[name](scanned)
    assert isinstance(lazy, pl.LazyFrame)
    result = METRICS[name](eager)
    assert isinstance(result, pl.DataFrame)
    assert result.height > 0
    assert lazy.collect().equals(result)

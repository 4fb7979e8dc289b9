"""A million states chart quickly, and every chart carries few rows (Altair's limit is 5,000)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from tests.charts.datasets import rows_of
from trs_analytics.charts import (
    duration_chart,
    failure_rate_chart,
    retry_chart,
    timeline_chart,
    transition_chart,
    wait_chart,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import polars as pl

    from trs_analytics.charts import AnyChart

CHARTS: dict[str, Callable[..., AnyChart]] = {
    "duration": duration_chart,
    "failure_rate": failure_rate_chart,
    "retry": retry_chart,
    "timeline": timeline_chart,
    "transition": transition_chart,
    "wait": wait_chart,
}


@pytest.mark.parametrize("name", list(CHARTS))
def test_million_states_give_a_small_chart(name: str, million_states: pl.DataFrame) -> None:
    lazy = million_states.lazy()
    started = time.perf_counter()
    chart = CHARTS[name](lazy)
    rows = rows_of(chart)
    elapsed = time.perf_counter() - started
    assert 0 < len(rows) < 1_000
    assert elapsed < 20, f"{name} took {elapsed:.1f} s"

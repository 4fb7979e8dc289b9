"""A million states give charts of few rows (Altair's limit is 5,000).

How fast is a benchmark's question (benchmarks/), never a test's: a timed assertion fails on a
busy machine and passes a slow change on a quiet one. pytest's timeout bounds a hang.
"""

from __future__ import annotations

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
    rows = rows_of(CHARTS[name](million_states.lazy()))
    assert 0 < len(rows) < 1_000

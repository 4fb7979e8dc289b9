"""The flow-level metrics give the same answer on every engine for flow-run states.

The flow-run states are synthetic (:func:`trs_analytics.testing.generate_flow_run_states`):
50 flow runs of six deployments on three work pools, with failing streaks,
resolutions and overlapping runs. The metrics of ``cases.py`` run on task-run
states; these run on a frame without ``task_run_id`` and count flow runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import trs_analytics as ta
import trs_analytics.testing as tt
from tests.engines.cases import Case
from tests.engines.native import KIND_OF, assert_same, kind

if TYPE_CHECKING:
    from collections.abc import Callable

    import polars as pl

CASES = [
    Case("landing_time", ta.landing_time, ordered=True),
    Case("currently_failing", ta.currently_failing, ordered=True),
    Case("currently_failing-by-none", lambda s: ta.currently_failing(s, by=None), True),
    Case("time_to_resolution", ta.time_to_resolution, ordered=True),
    Case("time_to_resolution-by-pool", lambda s: ta.time_to_resolution(s, by="work_pool_name")),
    Case("concurrency", lambda s: ta.concurrency(s, by="deployment_name"), ordered=True),
    Case("peak_concurrency", lambda s: ta.peak_concurrency(s, by="work_pool_name", every="1h")),
]


@pytest.fixture(scope="module")
def flow_runs() -> pl.DataFrame:
    # seed 7: three deployments end on a failing streak, 20 failures, 13 resolved
    return tt.generate_flow_run_states(400, seed=7, days=0.5)


@pytest.fixture(scope="module")
def flow_runs_on_engine(flow_runs: pl.DataFrame, on_engine: Callable[[pl.DataFrame], Any]) -> Any:
    return on_engine(flow_runs)


def test_the_data_has_what_the_metrics_look_for(flow_runs: pl.DataFrame) -> None:
    assert "task_run_id" not in flow_runs.columns
    assert ta.currently_failing(flow_runs).height > 0
    resolved = ta.time_to_resolution(flow_runs)["time_to_resolution"]
    assert resolved.null_count() < resolved.len()
    assert ta.peak_concurrency(flow_runs, every="1h")["peak"].max() > 1  # type: ignore[operator]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_flow_run_states(
    case: Case, engine: str, flow_runs: pl.DataFrame, flow_runs_on_engine: Any
) -> None:
    result = case.call(flow_runs_on_engine)
    assert kind(result) == KIND_OF[engine], f"{case.id} on {engine} returned {type(result)}"
    assert_same(result, case.call(flow_runs), ordered=case.ordered)

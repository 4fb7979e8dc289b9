"""The metrics count flow runs when given flow-run states: one definition, two kinds of run.

A flow-run states frame (``FLOW_RUN_STATES_SCHEMA``) has no ``task_run_id``;
its runs are identified by ``flow_run_id`` (``trs_analytics.schema.run_id_column``).
The test turns the bundled task-run sample into a frame of that shape (each
task run becomes a "flow run") and checks that every metric gives the same
answer as on the task-run frame, with ``flow_run_id`` in place of
``task_run_id``: on Polars for every metric, on every engine for a few.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest

import trs_analytics as ta
from tests.engines.cases import Case, cases
from tests.engines.native import KIND_OF, assert_same, kind

if TYPE_CHECKING:
    from collections.abc import Callable

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_states.parquet"


def as_flow_runs(states: pl.DataFrame) -> pl.DataFrame:
    """The task-run states with each task run posing as a flow run."""
    return states.drop("flow_run_id").rename({"task_run_id": "flow_run_id"})


def as_task_runs(result: Any) -> pl.DataFrame:
    """A metric result on the flow-run frame, named as on the task-run frame."""
    frame = ta.to_polars(result)
    return frame.rename({"flow_run_id": "task_run_id"}) if "flow_run_id" in frame.columns else frame


@pytest.fixture(scope="module")
def task_states() -> pl.DataFrame:
    return pl.read_parquet(SAMPLE)


@pytest.fixture(scope="module")
def flow_states(task_states: pl.DataFrame) -> pl.DataFrame:
    return as_flow_runs(task_states)


def test_run_column_follows_the_frame(flow_states: pl.DataFrame) -> None:
    assert ta.schema.run_id_column(flow_states.columns) == "flow_run_id"
    counts = ta.retry_counts(flow_states)
    assert "flow_run_id" in counts.columns
    assert "task_run_id" not in counts.columns
    assert counts.height == flow_states["flow_run_id"].n_unique()


#: Metrics of the task runs inside a flow run: flow-run states hold none (see below).
INSIDE_FLOW_RUNS = {"critical_path", "flow_time_shares"}


@pytest.mark.parametrize(
    "case", [c for c in cases(window="5m", min_runs=5) if c.id not in INSIDE_FLOW_RUNS]
)
def test_every_metric_counts_flow_runs(
    case: Case, task_states: pl.DataFrame, flow_states: pl.DataFrame
) -> None:
    expected = ta.to_polars(case.call(task_states))
    # the task runs' flow runs (``outcome_counts``' ``flow_runs``): here the runs are flow runs
    expected = expected.drop("flow_run_id", "flow_runs", strict=False)
    assert_same(as_task_runs(case.call(flow_states)), expected, ordered=case.ordered)


FLOW_CASES = [
    Case("retry_counts", ta.retry_counts, ordered=True),
    Case("failure_rates-by-flow", lambda s: ta.failure_rates(s, by="flow_name"), ordered=True),
    Case("run_time", ta.run_time),
    Case("lateness", ta.lateness),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in FLOW_CASES])
def test_flow_runs_on_every_engine(
    case: Case, engine: str, flow_states: pl.DataFrame, on_engine: Callable[[pl.DataFrame], Any]
) -> None:
    result = case.call(on_engine(flow_states))
    assert kind(result) == KIND_OF[engine]
    assert_same(result, case.call(flow_states), ordered=case.ordered)


@pytest.mark.parametrize("metric", [ta.critical_path, ta.flow_time_shares])
def test_metrics_inside_a_flow_run_refuse_flow_run_states(
    metric: Callable[[Any], Any], flow_states: pl.DataFrame
) -> None:
    with pytest.raises(ta.SchemaError, match="'task_run_id'"):
        metric(flow_states)


def test_missing_run_column_names_task_run_id() -> None:
    frame = pl.DataFrame({"type": ["RUNNING"], "name": ["Running"]})
    with pytest.raises(ta.SchemaError, match="'task_run_id'"):
        ta.retry_counts(frame)

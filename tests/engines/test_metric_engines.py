"""Every public metric gives the same answer on Polars (eager, lazy), DuckDB and PySpark.

The reference is the metric on an eager Polars frame; each engine's result
must be that engine's kind of frame and equal the reference (see
:func:`tests.engines.native.assert_same`). Data: the bundled real-server
sample, and hypothesis-generated histories with duplicates, ties at one
instant, skewed clocks, runs with no flow and null tags; on Spark both at once
(one query per case: see :data:`SEPARATE_SAMPLE`).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import T0, history, states
from tests.engines.cases import Case, cases
from tests.engines.native import ENGINE_IDS, KIND_OF, assert_same, kind
from tests.metrics.test_metric_properties import Run, runs

if TYPE_CHECKING:
    from collections.abc import Callable

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_states.parquet"

#: Hypothesis examples per (metric, engine).
EXAMPLES = {"polars-eager": 4, "polars-lazy": 4, "duckdb": 2, "spark": 1}

#: Engines that run the sample on its own. A Spark query costs seconds whatever its
#: size (planning the deep plans a metric builds), so Spark runs each case once, on
#: the sample and a generated history together (:func:`with_sample`).
SEPARATE_SAMPLE = [e for e in ENGINE_IDS if e != "spark"]


def check(case: Case, states: pl.DataFrame, native: Any, engine: str) -> None:
    result = case.call(native)
    assert kind(result) == KIND_OF[engine], f"{case.id} on {engine} returned {type(result)}"
    assert_same(result, case.call(states), ordered=case.ordered)


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return pl.read_parquet(SAMPLE)


@pytest.fixture(scope="module")
def sample_on_engine(sample: pl.DataFrame, on_engine: Callable[[pl.DataFrame], Any]) -> Any:
    return on_engine(sample)


@pytest.mark.parametrize("engine", SEPARATE_SAMPLE, indirect=True)
@pytest.mark.parametrize("case", cases(window="5m", min_runs=5))
def test_sample(case: Case, engine: str, sample: pl.DataFrame, sample_on_engine: Any) -> None:
    check(case, sample, sample_on_engine, engine)


# -- generated histories ---------------------------------------------------------------

FLOWS = [None, ("flow-run-a", "etl"), ("flow-run-b", "etl"), ("flow-run-c", "report")]
TAGS = [None, [], ["etl"], ["etl", "critical"], ["critical", None]]
SKEWS_US = [0, 0, 0, -2_000_000, 1_500_000, -50, 7]


@st.composite
def histories(draw: st.DrawFn) -> pl.DataFrame:
    """Runs as Prefect writes them, then messed up the way real data arrives."""
    generated: list[Run] = draw(runs(max_runs=6))
    frames: list[pl.DataFrame] = []
    rows: list[int] = []  # row numbers in the runs' states, some twice
    row = 0
    for run in generated:
        flow = draw(st.sampled_from(FLOWS))
        tags = draw(st.sampled_from(TAGS))
        stamps = list(run.micros)
        for i in range(1, len(stamps)):
            if draw(st.integers(0, 9)) == 0:  # a tie: two states at one instant
                stamps[i] = stamps[i - 1]
            stamps[i] += draw(st.sampled_from(SKEWS_US))  # a worker's skewed clock
        frames.append(
            history(
                [
                    (name, T0 + timedelta(microseconds=max(us, 0)))
                    for name, us in zip(run.names, stamps, strict=True)
                ],
                task_run_id=run.run_id,
                task_name=f"task-{int(run.run_id[-1]) % 2}",
                flow_run_id=flow and flow[0],
                flow_name=flow and flow[1],
                tags=tags,
                expected_start_time=T0 + timedelta(microseconds=run.micros[0] // 2),
            )
        )
        for _ in stamps:
            rows.append(row)
            if draw(st.integers(0, 7)) == 0:  # delivered twice (export overlap)
                rows.append(row)
            row += 1
    order = draw(st.permutations(range(len(rows))))
    return states(*frames).select(pl.all().gather([rows[i] for i in order]))


def with_sample(sample: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """The sample's states and ``history``'s, the history moved to start a minute after the
    sample ends (so the cases' one-minute windows still hold it, and it ends before
    :data:`~tests.engines.cases.NOW`)."""
    shift = sample["timestamp"].max() + timedelta(minutes=1) - T0  # type: ignore[operator]
    moved = history.with_columns(pl.col(pl.Datetime) + shift)
    return pl.concat([sample, moved], how="diagonal_relaxed")


@pytest.mark.parametrize("case", cases(window="1m", min_runs=1))
def test_generated(
    case: Case, engine: str, on_engine: Callable[[pl.DataFrame], Any], sample: pl.DataFrame
) -> None:
    @settings(
        max_examples=EXAMPLES[engine],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(histories())
    def holds(states: pl.DataFrame) -> None:
        if engine not in SEPARATE_SAMPLE:
            states = with_sample(sample, states)
        check(case, states, on_engine(states), engine)

    holds()

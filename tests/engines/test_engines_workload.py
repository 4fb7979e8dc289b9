"""On states fetched from a real Prefect server, every engine's metrics equal the ground truth.

The workload's tasks record what each task run did (attempts, retries, final
state); retry counts and failure rates are checked against that truth on
each engine, and every metric is checked equal across engines.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest

import trs_analytics as ta
from tests.engines.cases import Case, cases
from tests.engines.native import assert_same, to_polars

if TYPE_CHECKING:
    from collections.abc import Callable

    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth


@pytest.fixture(scope="module")
def fetched(prefect_server: PrefectServer, workload: GroundTruth) -> pl.DataFrame:
    return ta.fetch_states(
        prefect_server.api_url,
        since=workload.started_at - timedelta(minutes=1),
        until=workload.finished_at + timedelta(minutes=1),
        # the per-run states: the workload waits until they are readable, while the
        # events behind source="auto" may still be persisting (seen once under load)
        source="states",
    )


@pytest.fixture(scope="module")
def native(fetched: pl.DataFrame, on_engine: Callable[[pl.DataFrame], Any]) -> Any:
    return on_engine(fetched)


def test_retry_counts_equal_the_ground_truth(native: Any, workload: GroundTruth) -> None:
    rows = {r["task_run_id"]: r for r in to_polars(ta.retry_counts(native)).iter_rows(named=True)}
    assert set(rows) == set(workload.task_runs)
    for run_id, truth in workload.task_runs.items():
        row = rows[run_id]
        got = (row["attempts"], row["retries"], str(row["final_type"]), row["final_name"])
        assert got == (truth.attempts, truth.retries, truth.final_type, truth.final_name), truth


def test_failure_rates_equal_the_ground_truth(native: Any, workload: GroundTruth) -> None:
    got = to_polars(ta.failure_rates(native, by="task_name")).sort("task_name")
    truth = (
        workload.to_frame()
        .group_by("task_name")
        .agg(runs=pl.len(), failed=(pl.col("final_type") == "FAILED").sum())
        .sort("task_name")
    )
    assert got.select("task_name", "runs", "failed").rows() == truth.rows()


@pytest.mark.parametrize("case", cases(window="5m", min_runs=5))
def test_every_metric_equals_polars(case: Case, native: Any, fetched: pl.DataFrame) -> None:
    assert_same(case.call(native), case.call(fetched), ordered=case.ordered)


CHECK_RULES = """
[[rule]]
name = "fast"
task = "*"
max_run_time = "50ms"

[[rule]]
name = "success"
task = "*"
min_success_rate = 0.99
window = "1m"
"""


def test_the_check_finds_the_same_on_every_engine(
    native: Any, fetched: pl.DataFrame, workload: GroundTruth
) -> None:
    from trs_analytics.check import run_check

    options: dict[str, Any] = {
        "rules": ta.parse_rules(CHECK_RULES),
        "now": workload.finished_at + timedelta(minutes=1),
        "recent": "1h",
        "every": "1m",
    }
    want = run_check(fetched, **options)
    # the workload's failing tasks break the success rate; every finished run is counted
    assert "min_success_rate" in set(want.findings.filter(kind="sla")["check"])
    assert want.runs == len(workload.task_runs)
    got = run_check(native, **options)
    assert got.findings.equals(want.findings), (got.findings, want.findings)
    assert got.runs == want.runs

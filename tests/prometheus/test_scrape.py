"""A real Prometheus scrapes ``trs-analytics serve-metrics``; its answers are checked against truth.

The truth is computed independently with plain Polars on the dataset's Parquet
files (:mod:`tests.prometheus.truth`), except where the issue defines a series
by a library function: the window quantiles are ``ta.summarize(ta.run_time(...))``
and the failure rates ``ta.failure_rates(...)`` on the window, the findings
``run_check``'s. Every PromQL expression of ``dashboards/`` runs against it.
"""

from __future__ import annotations

import bisect
import json
import re
import subprocess
from typing import TYPE_CHECKING, Any, Final

import polars as pl
import pytest
import yaml

import trs_analytics as ta
from tests.prometheus.conftest import CURSOR, DASHBOARDS, PLANTED, WINDOW
from tests.prometheus.truth import finished_counts, per_run, read_table, window_states
from trs_analytics.check import run_check

if TYPE_CHECKING:
    from tests.prometheus.conftest import Exported, Prometheus

#: The session's exporter and Prometheus start in the first test (a refresh or two on a
#: loaded machine): more than the default 600 s may pass.
pytestmark = pytest.mark.timeout(1200)

TASK: Final = ["flow_name", "task_name"]
FLOW: Final = ["flow_name", "deployment_name", "work_pool_name"]


def _label(value: Any) -> str:
    return "" if value is None else str(value)


def _key(row: dict[str, Any], keys: list[str]) -> tuple[str, ...]:
    return tuple(_label(row[k]) for k in keys)


def test_dataset_series_equal_the_files(prometheus: Prometheus, dataset: Exported) -> None:
    states = read_table(dataset.path)
    assert prometheus.values("trs_dataset_states_total") == {(): states.height}
    last = prometheus.values("trs_dataset_last_state_timestamp_seconds")[()]
    assert last == pytest.approx(states["timestamp"].max().timestamp(), abs=1e-6)  # type: ignore[union-attr]
    assert prometheus.values("trs_dataset_cursor_timestamp_seconds") == {(): CURSOR.timestamp()}
    assert prometheus.values("trs_window_end_timestamp_seconds") == {(): CURSOR.timestamp()}


def test_task_runs_total_equal_the_finished_runs(prometheus: Prometheus, dataset: Exported) -> None:
    runs = per_run(read_table(dataset.path), "task_run_id", TASK)
    served = prometheus.values("trs_task_runs_total", *TASK, "final_type")
    assert {k: int(v) for k, v in served.items() if v} == finished_counts(runs, TASK)


def test_retries_total_equal_the_finished_runs_retries(
    prometheus: Prometheus, dataset: Exported
) -> None:
    runs = per_run(read_table(dataset.path), "task_run_id", TASK)
    finished = runs.filter(
        pl.col("final_type").is_in(["COMPLETED", "FAILED", "CRASHED", "CANCELLED"])
    )
    retries = finished.group_by(TASK).agg(
        (pl.col("attempts").cast(pl.Int64) - 1).clip(lower_bound=0).sum().alias("retries")
    )
    truth = {_key(r, TASK): r["retries"] for r in retries.iter_rows(named=True)}
    served = prometheus.values("trs_task_run_retries_total", *TASK)
    assert {k: int(v) for k, v in served.items()} == truth
    assert sum(truth.values()) > 50  # the generated tasks do retry


def test_flow_runs_total_equal_the_finished_flow_runs(
    prometheus: Prometheus, dataset: Exported
) -> None:
    runs = per_run(read_table(dataset.path / "_flow_run_states"), "flow_run_id", FLOW)
    served = prometheus.values("trs_flow_runs_total", *FLOW, "final_type")
    assert {k: int(v) for k, v in served.items() if v} == finished_counts(runs, FLOW)


@pytest.mark.parametrize(
    ("family", "table", "run", "keys"),
    [
        ("trs_task_run_time_seconds", "", "task_run_id", TASK),
        ("trs_flow_run_time_seconds", "_flow_run_states", "flow_run_id", FLOW),
    ],
)
def test_histogram_counts_and_sums_equal_the_run_times(
    prometheus: Prometheus,
    dataset: Exported,
    family: str,
    table: str,
    run: str,
    keys: list[str],
) -> None:
    runs = per_run(read_table(dataset.path / table), run, keys).filter(
        pl.col("run_us").is_not_null()
    )
    served = prometheus.values(f"{family}_bucket", *keys, "le")
    bounds = sorted({float(k[-1]) for k in served if k[-1] != "+Inf"})
    assert bounds[0] == 0.001
    assert bounds[-1] >= 3600
    for row in runs.group_by(keys).agg(pl.col("run_us")).iter_rows(named=True):
        key, times = _key(row, keys), row["run_us"]
        for le in bounds:
            expected = sum(1 for us in times if us <= round(le * 1_000_000))
            assert served[(*key, str(le))] == expected, (key, le)
        assert served[(*key, "+Inf")] == len(times)
    sums = prometheus.values(f"{family}_sum", *keys)
    truth = runs.group_by(keys).agg((pl.col("run_us").sum() / 1e6).alias("s"))
    assert sums == pytest.approx(
        {_key(r, keys): r["s"] for r in truth.iter_rows(named=True)}, rel=1e-9
    )


def test_window_quantiles_equal_summarize_to_a_millisecond(
    prometheus: Prometheus, dataset: Exported
) -> None:
    window = window_states(read_table(dataset.path), CURSOR, WINDOW)
    expected = ta.summarize(ta.run_time(window), by=TASK).filter(pl.col("count") > 0)
    served = prometheus.values("trs_task_run_time_window_seconds", *TASK, "quantile")
    counts = prometheus.values("trs_task_run_time_window_seconds_count", *TASK)
    assert len(served) == 3 * expected.height
    for row in expected.iter_rows(named=True):
        key = _key(row, TASK)
        assert counts[key] == row["count"]
        for q, column in (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99")):
            assert abs(served[(*key, q)] - row[column].total_seconds()) <= 0.001, (key, q)


def test_failure_rates_equal_failure_rates_on_the_window(
    prometheus: Prometheus, dataset: Exported
) -> None:
    window = window_states(read_table(dataset.path), CURSOR, WINDOW)
    expected = ta.failure_rates(window, by=TASK).filter(pl.col("runs") > 0)
    for family, column in (
        ("trs_task_failure_rate", "failure_rate"),
        ("trs_task_failure_rate_lower", "ci_low"),
        ("trs_task_failure_rate_upper", "ci_high"),
    ):
        truth = {_key(r, TASK): r[column] for r in expected.iter_rows(named=True)}
        assert prometheus.values(family, *TASK) == pytest.approx(truth, rel=1e-9, abs=1e-12)
    planted = prometheus.values("trs_task_failure_rate", *TASK)[PLANTED]
    assert planted > 0.9  # every run of the planted task failed in the window


def test_histogram_quantile_lies_within_one_bucket_of_the_exact_p95(
    prometheus: Prometheus, dataset: Exported
) -> None:
    runs = per_run(read_table(dataset.path), "task_run_id", TASK).filter(
        pl.col("run_us").is_not_null()
    )
    exact = runs.group_by(TASK).agg(
        (pl.col("run_us").quantile(0.95, interpolation="linear") / 1e6).alias("p95")
    )
    served = prometheus.values("histogram_quantile(0.95, trs_task_run_time_seconds_bucket)", *TASK)
    les = prometheus.values("trs_task_run_time_seconds_bucket", "le")
    bounds = sorted(float(le) for (le,) in les if le != "+Inf")
    assert exact.height == len(served) > 20
    for row in exact.iter_rows(named=True):
        estimate = served[_key(row, TASK)]
        near = abs(bisect.bisect_left(bounds, estimate) - bisect.bisect_left(bounds, row["p95"]))
        assert near <= 1, (row, estimate)


def test_stuck_runs_and_findings_equal_the_check(prometheus: Prometheus, dataset: Exported) -> None:
    states = ta.scan_states(dataset.path)
    stuck = ta.stuck_runs(states, now=CURSOR).collect().group_by(TASK).len()
    truth = {_key(r, TASK): r["len"] for r in stuck.iter_rows(named=True)}
    assert truth  # the generated runs that never finished
    assert prometheus.values("trs_stuck_runs", *TASK) == truth
    counts = run_check(states, now=CURSOR, recent="1d").counts()
    assert prometheus.values("trs_check_findings", "kind") == {(k,): v for k, v in counts.items()}


# -- dashboards and alert rules --------------------------------------------------

#: What Grafana puts in place of its variables, for the tests' instant queries.
_VARIABLES: Final = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1m"}


def _grafana_expressions() -> list[tuple[str, str]]:
    """Every PromQL expression of the dashboards: panel targets and variable queries."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            found += [(f"{path.stem}: {panel['title']}", t["expr"]) for t in panel["targets"]]
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                query = var["query"]["query"]
                metric = re.fullmatch(r"label_values\((.+), *\w+\)", query)
                assert metric, query
                found.append((f"{path.stem}: variable {var['name']}", metric.group(1)))
    return found


def _substitute(expr: str) -> str:
    for name, value in _VARIABLES.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def _alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load((DASHBOARDS / "alerts.yml").read_text())["groups"][
        0
    ]["rules"]
    return rules


@pytest.mark.parametrize(("where", "expr"), _grafana_expressions(), ids=lambda v: str(v)[:60])
def test_every_dashboard_expression_returns_data(
    prometheus: Prometheus, where: str, expr: str
) -> None:
    assert prometheus.query(_substitute(expr)), f"{where}: {expr} returned no data"


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda r: str(r["alert"]))
def test_every_alert_expression_returns_data(prometheus: Prometheus, rule: dict[str, Any]) -> None:
    found = prometheus.query(rule["expr"])
    assert found, f"{rule['alert']}: {rule['expr']} returned no data"
    active = prometheus.query(f'ALERTS{{alertname="{rule["alert"]}"}}')
    assert active, f"Prometheus loaded no active {rule['alert']} from dashboards/alerts.yml"


def test_the_failure_rate_alert_names_the_planted_task(prometheus: Prometheus) -> None:
    rule = next(r for r in _alert_rules() if r["alert"] == "TaskFailureRateJump")
    assert set(prometheus.values(rule["expr"], *TASK)) == {PLANTED}


def test_promtool_accepts_the_alert_rules() -> None:
    done = subprocess.run(
        ["promtool", "check", "rules", str(DASHBOARDS / "alerts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 3 rules found" in done.stdout

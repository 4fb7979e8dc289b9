"""The check gives the same findings on Polars (eager, lazy), DuckDB and Spark, and reads less.

- ``run_check`` on each engine equals Polars eager exactly (the findings hold
  ids, kinds, times and sentences; no float is left to compare loosely), on
  the bundled sample and on a planted history with SLA rules of every check;
- ``trs-analytics check PATH --engine ...`` prints the same findings on each;
- the window the check reads (``timestamp >= check_start``) reaches the
  Parquet scan on each engine (its explain plan).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest
from click.testing import CliRunner

import trs_analytics as ta
import trs_analytics.testing as tt
from trs_analytics._time import iso
from trs_analytics.check import FINDINGS_SCHEMA, CheckResult, _window, check_start, run_check
from trs_analytics.cli import main

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import duckdb
    from pyspark.sql import SparkSession

RULES = """
[[rule]]
name = "slow"
task = "*"
max_run_time = "{run}"

[[rule]]
name = "late"
task = "*"
max_lateness = "{late}"

[[rule]]
name = "success"
task = "*"
min_success_rate = 0.99
window = "{window}"

[[rule]]
name = "fresh"
task = "{fresh_task}"
freshness = "{fresh}"
"""


class Scenario:
    """States, the check's options, and the findings Polars eager gives (the reference)."""

    def __init__(self, states: pl.DataFrame, rules: str, **options: Any) -> None:
        self.states = states
        self.rules = ta.parse_rules(rules)
        self.rules_text = rules
        self.options = options
        self.expected = self.check(states).findings

    def check(self, states: Any) -> CheckResult:
        return run_check(states, rules=self.rules, **self.options)


def _sample() -> Scenario:
    states = ta.scan_states("data/sample_states.parquet").collect()
    rules = RULES.format(run="100ms", late="1s", window="2m", fresh_task="*", fresh="20s")
    now = datetime(2026, 11, 28, 14, 23, tzinfo=UTC)
    return Scenario(states, rules, now=now, recent="6m", every="1m")


PLANTED: dict[str, Any] = {
    "seed": 7,
    "n_tasks": 3,
    "days": 20,
    "runs_per_day": 8,
    "spikes": 1,
    "failure_jumps": 1,
    "jump_probability": 0.9,  # a day of it stands out of the 6 days the check tests at once
    "stuck": 1,
    "slow_runs": 1,
    "late_runs": 1,
    "gaps": 1,
}


def _planted() -> Scenario:
    planted = tt.generate_planted(**PLANTED)
    rules = RULES.format(run="1m", late="15m", window="1d", fresh_task="load_orders", fresh="12h")
    return Scenario(planted.states, rules, now=planted.end, recent="6d")


SCENARIOS: dict[str, Callable[[], Scenario]] = {"sample": _sample, "planted": _planted}


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest) -> Scenario:
    return SCENARIOS[request.param]()


def test_the_reference_breaks_every_rule(scenario: Scenario) -> None:
    """The scenarios test something: every SLA check and anomalies are among the findings."""
    kinds = set(scenario.expected.filter(kind="sla")["check"])
    assert kinds == {"max_run_time", "max_lateness", "min_success_rate", "freshness"}
    assert "run_time" in set(scenario.expected.filter(kind="anomaly")["check"])


def test_the_planted_anomalies_and_stuck_run_are_found() -> None:
    planted = tt.generate_planted(**PLANTED)
    found = _planted().expected
    truth = planted.truth
    anomalies = set(found.filter(kind="anomaly").select("check", "subject", "at").rows())
    spikes = truth.filter(kind="duration_spike").select("task_name", "bucket").rows()
    assert {("run_time", task, day) for task, day in spikes} <= anomalies
    # the failure rate is tested over the recent period, the 6 days before now, as one window
    jumped = truth.filter(kind="failure_jump")["task_name"].to_list()
    window = planted.end - timedelta(days=6)
    assert {("failure_rate", task, window) for task in jumped} <= anomalies
    assert (
        found.filter(kind="stuck")["task_run_id"].to_list()
        == truth.filter(kind="stuck")["task_run_id"].to_list()
    )


def test_findings_equal_polars_eager(
    scenario: Scenario, on_engine: Callable[[pl.DataFrame], Any]
) -> None:
    result = scenario.check(on_engine(scenario.states))
    assert result.findings.equals(scenario.expected), (result.findings, scenario.expected)
    reference = scenario.check(scenario.states)
    assert (result.runs, result.rules) == (reference.runs, reference.rules)


def test_a_lazy_frame_checked_in_sets_finds_what_one_set_finds(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polars checks a LazyFrame a set of runs (and of tasks) at a time: the same findings."""
    import trs_analytics.check as check

    states = scenario.states.lazy()
    size = scenario.states.height
    monkeypatch.setattr(check, "CHECK_STATES_PER_PART", size // 5 + 1)
    assert check._sets(states) == 5
    result = scenario.check(states)
    assert result.findings.equals(scenario.expected), (result.findings, scenario.expected)
    assert result.runs == scenario.check(scenario.states).runs


def _cli_findings(path: Path, scenario: Scenario, rules: Path, *extra: str) -> list[dict[str, Any]]:
    options = scenario.options
    args = ["--log-format", "json", "check", str(path), "--rules", str(rules), *extra]
    args += ["--now", options["now"].isoformat(), "--recent", options["recent"]]
    args += ["--every", options.get("every", "1d")]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 1, done.output  # something is flagged
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize(
    "engine", [["--engine", "polars"], ["--engine", "duckdb", "--memory-limit", "1GB"], "spark"]
)
def test_cli_prints_the_same_findings_on_every_engine(
    engine: list[str] | str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if engine == "spark":
        request.getfixturevalue("spark")  # the session's one SparkSession, which the CLI finds
        engine = ["--engine", "spark"]
    scenario = _planted()
    path, rules = tmp_path / "states.parquet", tmp_path / "sla.toml"
    ta.write_states(scenario.states, path)
    rules.write_text(scenario.rules_text, encoding="utf-8")
    printed = _cli_findings(path, scenario, rules, *engine)
    expected = [
        {k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()}
        for row in scenario.expected.iter_rows(named=True)
    ]
    assert [{k: r[k] for k in FINDINGS_SCHEMA} for r in printed[:-1]] == expected
    assert printed[-1]["event"] == "check"
    assert printed[-1]["sla"] == scenario.expected.filter(kind="sla").height


# --------------------------------------------------------------------------- pushdown
START = datetime(2026, 11, 28, 14, 16, tzinfo=UTC)


def test_check_start_is_the_training_before_the_first_recent_bucket() -> None:
    now = datetime(2026, 3, 20, 9, 30, tzinfo=UTC)
    # recent from 03-19 09:30: its bucket starts 03-19; 14 days of training; one bucket's margin
    assert check_start(now) == datetime(2026, 3, 4, tzinfo=UTC)
    # recent from Friday 03-13: its week starts Monday 03-09; 14 days and one week before it
    assert check_start(now, recent="7d", every="1w") == datetime(2026, 2, 16, tzinfo=UTC)


def test_the_window_reaches_the_polars_parquet_scan() -> None:
    plan = _window(ta.scan_states("data/sample_states.parquet"), START).explain()
    scan = plan[plan.index("Parquet SCAN") :]
    assert 'SELECTION: col("timestamp") >= 2026-11-28 14:16:00 UTC' in scan, plan


def test_the_window_reaches_the_duckdb_parquet_scan(
    duckdb_connection: duckdb.DuckDBPyConnection,
) -> None:
    states = ta.scan_states("data/sample_states.parquet", "duckdb", connection=duckdb_connection)
    plan = _window(states, START).explain()
    scan = plan[plan.index("PARQUET_SCAN") :]
    assert "timestamp >= '2026-11-28 14:16:00+00'::TIMESTAMP WITH TIME ZONE" in scan, plan


def test_the_window_reaches_the_spark_parquet_scan(spark: SparkSession) -> None:
    states = ta.scan_states("data/sample_states.parquet", "spark", spark=spark)
    plan = _window(states, START)._jdf.queryExecution().executedPlan().toString()
    assert (
        "PushedFilters: [IsNotNull(timestamp), GreaterThanOrEqual(timestamp,2026-11-28 14:16:00.0)]"
        in plan
    ), plan


def test_the_window_keeps_the_states_from_start_on(
    on_engine: Callable[[pl.DataFrame], Any],
) -> None:
    states = ta.scan_states("data/sample_states.parquet").collect()
    kept = ta.to_polars(_window(on_engine(states), START))
    assert kept.height == states.filter(pl.col("timestamp") >= START).height
    assert kept["timestamp"].min() >= START  # type: ignore[operator]

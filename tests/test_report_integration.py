"""The report on a fresh capture from a real Prefect server: breakdowns equal the workload's
ground truth, runs link to the server's UI address, and no panel is blank in Chromium."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING

import polars as pl
import pytest

import trs_analytics as ta
from tests.chromium import open_in_chromium
from trs_analytics.metrics._breakdowns import outcome_counts, run_outcomes
from trs_analytics.report import write_report

if TYPE_CHECKING:
    from pathlib import Path

    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth


@pytest.fixture(scope="module")
def states(prefect_server: PrefectServer, workload: GroundTruth) -> pl.DataFrame:
    return ta.fetch_states(
        prefect_server.api_url,
        since=workload.started_at - timedelta(minutes=1),
        until=workload.finished_at + timedelta(minutes=1),
    )


def test_run_outcomes_equal_ground_truth(states: pl.DataFrame, workload: GroundTruth) -> None:
    runs = {r["task_run_id"]: r for r in run_outcomes(states).iter_rows(named=True)}
    assert set(runs) == set(workload.task_runs)
    for run_id, truth in workload.task_runs.items():
        assert runs[run_id]["final_type"] == truth.final_type, truth
        assert runs[run_id]["attempts"] == truth.attempts, truth
        assert runs[run_id]["flow_name"] == truth.flow_name, truth


def test_outcomes_per_flow_equal_ground_truth(states: pl.DataFrame, workload: GroundTruth) -> None:
    counts = outcome_counts(states, by="flow_name")
    got = {(r["flow_name"], "runs"): r["runs"] for r in counts.iter_rows(named=True)}
    got |= {(r["flow_name"], "failed"): r["failed"] for r in counts.iter_rows(named=True)}
    truth = Counter((t.flow_name, "runs") for t in workload.task_runs.values())
    truth |= Counter(
        (t.flow_name, "failed") for t in workload.task_runs.values() if t.final_type == "FAILED"
    )
    assert {k: v for k, v in got.items() if v} == dict(truth)


def test_report_links_runs_to_the_servers_ui(
    states: pl.DataFrame, workload: GroundTruth, prefect_server: PrefectServer, tmp_path: Path
) -> None:
    path = write_report(states, tmp_path / "r.html", api_url=prefect_server.api_url)
    text = path.read_text(encoding="utf-8")
    ui = prefect_server.api_url.removesuffix("/api")
    linked = re.findall(rf'href="{re.escape(ui)}/runs/task-run/([0-9a-f-]+)"', text)
    failed = {i for i, t in workload.task_runs.items() if t.final_type == "FAILED"}
    assert linked
    assert set(linked) & failed
    assert set(linked) <= set(workload.task_runs)
    # the harness runs the server with its UI off, so the page itself is not loaded here;
    # Prefect 3.9.1's UI router serves runs/task-run/:taskRunId (see docs/charts.md)


def test_real_capture_has_no_blank_panel(states: pl.DataFrame, tmp_path: Path) -> None:
    path = write_report(states, tmp_path / "r.html")
    result = open_in_chromium(path, tmp_path / "r.png")
    assert result["errors"] == [], "\n".join(result["errors"])
    for chart in result["charts"]:
        assert chart["panels"], chart
        assert all(n > 0 for n in chart["panels"]), f"a blank panel: {chart}"


def test_flow_runs_without_a_deployment_are_drawn_per_flow(
    prefect_server: PrefectServer, workload: GroundTruth, states: pl.DataFrame, tmp_path: Path
) -> None:
    """Issue 26.1 and 26.2 on a real capture: the workload calls most flows directly (no
    deployment); every flow-run chart draws, in Chromium without a Vega warning, and each
    flow run is grouped under its deployment, or its flow when it has none."""
    flow_runs = ta.fetch_flow_run_states(
        prefect_server.api_url,
        since=workload.started_at - timedelta(minutes=1),
        until=workload.finished_at + timedelta(minutes=1),
    )
    mine = flow_runs.filter(pl.col("flow_run_id").is_in(list(workload.flow_runs)))
    grouped = (
        ta.deployment_or_flow(mine).group_by("flow_run_id").agg(pl.col("deployment_name").first())
    )
    truth = {
        run_id: run.deployment_name if run.deployment_id else f"{run.flow_name} (no deployment)"
        for run_id, run in workload.flow_runs.items()
    }
    assert any(run.deployment_id is None for run in workload.flow_runs.values())
    assert dict(grouped.iter_rows()) == truth
    path = write_report(states, tmp_path / "r.html", flow_run_states=flow_runs)
    result = open_in_chromium(path, tmp_path / "r.png")
    assert result["errors"] == [], "\n".join(result["errors"])
    text = path.read_text(encoding="utf-8")
    assert "Flow runs: landing times" in text
    assert "No flow run failed: the rate over all finished flow runs" in text  # none failed
    for chart in result["charts"]:
        assert chart["panels"], chart
        assert all(n > 0 for n in chart["panels"]), f"a blank panel: {chart}"

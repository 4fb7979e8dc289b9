"""Flow-level metrics on a real Prefect server equal what the workload recorded itself.

The workload (``devtools/workload/``) records, inside its flows and tasks, each
flow run's final state and scheduled start and when its body returned, each
task run's cache hit, and when each task body entered and exited. The states
are fetched from the session's server (Prefect 3.9.1) and every check here
compares a metric with those records, never with our own output.
"""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl
import pytest

import trs_analytics as ta

if TYPE_CHECKING:
    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth

#: How long after a flow's body returns the server may write its terminal state.
SETTLE = timedelta(seconds=30)


@pytest.fixture(scope="module")
def window(workload: GroundTruth) -> tuple[datetime, datetime]:
    return workload.started_at - timedelta(minutes=1), datetime.now(UTC) + timedelta(minutes=1)


@pytest.fixture(scope="module")
def states(
    prefect_server: PrefectServer, workload: GroundTruth, window: tuple[datetime, datetime]
) -> pl.DataFrame:
    since, until = window
    return ta.fetch_states(prefect_server.api_url, since=since, until=until)


@pytest.fixture(scope="module")
def flow_runs(
    prefect_server: PrefectServer, workload: GroundTruth, window: tuple[datetime, datetime]
) -> pl.DataFrame:
    since, until = window
    frame = ta.fetch_flow_run_states(prefect_server.api_url, since=since, until=until)
    return frame.filter(pl.col("flow_run_id").is_in(list(workload.flow_runs)))


def test_flow_run_counts_and_final_states(flow_runs: pl.DataFrame, workload: GroundTruth) -> None:
    counts = ta.retry_counts(flow_runs)
    rows = {r["flow_run_id"]: r for r in counts.iter_rows(named=True)}
    assert set(rows) == set(workload.flow_runs)
    for run_id, truth in workload.flow_runs.items():
        assert rows[run_id]["final_type"] == truth.final_type, truth
        assert rows[run_id]["final_name"] == truth.final_name, truth
    per_flow = ta.outcome_counts(flow_runs, by="flow_name")
    expected = Counter(t.flow_name for t in workload.flow_runs.values())
    assert dict(zip(per_flow["flow_name"], per_flow["runs"], strict=True)) == expected


def test_landing_times_enclose_what_the_flows_recorded(
    flow_runs: pl.DataFrame, workload: GroundTruth
) -> None:
    landed = {r["flow_run_id"]: r for r in ta.landing_time(flow_runs).iter_rows(named=True)}
    assert set(landed) == set(workload.flow_runs)
    for run_id, truth in workload.flow_runs.items():
        row = landed[run_id]
        assert truth.expected_start_time is not None, truth
        assert truth.ended_at is not None, truth
        assert row["scheduled_time"] == truth.expected_start_time, truth
        # the terminal state is written after the body returned, and soon after
        assert truth.ended_at <= row["end_time"] <= truth.ended_at + SETTLE, (row, truth)
        recorded = truth.ended_at - truth.expected_start_time
        assert recorded <= row["landing_time"] <= recorded + SETTLE, (row, truth)


def test_no_deployment_is_failing_when_every_flow_run_completed(
    flow_runs: pl.DataFrame, workload: GroundTruth
) -> None:
    assert {t.final_type for t in workload.flow_runs.values()} == {"COMPLETED"}
    assert ta.currently_failing(flow_runs, by="flow_name").is_empty()
    assert ta.time_to_resolution(flow_runs, by="flow_name").is_empty()


def test_cache_hits_per_task(states: pl.DataFrame, workload: GroundTruth) -> None:
    hits = ta.cache_hits(states, by="task_name")
    got = {r["task_name"]: r for r in hits.iter_rows(named=True)}
    truth = workload.to_frame()
    cached = Counter(t.task_name for t in workload.task_runs.values() if t.cache_hit)
    assert cached, "the workload makes cache hits"
    for task_name, group in truth.group_by("task_name"):
        row = got[str(task_name[0])]
        assert row["runs"] == group.filter(pl.col("final_type").is_not_null()).height
        assert row["cached"] == cached.get(str(task_name[0]), 0), row
    # time saved: cached runs x the median Running time of the task's fresh runs, which
    # encloses the median of the bodies' own entry-to-exit times
    fresh = [
        t.exited_at - t.entered_at
        for t in workload.task_runs.values()
        if t.task_name == "lookup_region"
        and not t.cache_hit
        and t.final_type == "COMPLETED"
        and t.entered_at is not None
        and t.exited_at is not None
    ]
    lookup = got["lookup_region"]
    assert lookup["fresh"] == len(fresh)
    body_median = timedelta(seconds=statistics.median(f.total_seconds() for f in fresh))
    assert lookup["median_run_time"] >= body_median - timedelta(microseconds=1)
    assert lookup["time_saved"] == lookup["median_run_time"] * lookup["cached"]


def test_peak_concurrency_per_tag(states: pl.DataFrame, workload: GroundTruth) -> None:
    series = ta.concurrency(states, by="tags")
    peaks = dict(series.group_by("tags").agg(pl.col("running").max()).iter_rows())
    tags = {tag for t in workload.task_runs.values() for tag in t.tags}
    for tag in tags:
        # a RUNNING state encloses its body: never fewer running than bodies at once
        assert peaks[tag] >= workload.peak_running(tag), tag
    # the limit holds: one throttled run at a time, as the bodies recorded
    for tag, limit in workload.concurrency_limits.items():
        assert workload.peak_running(tag) == limit
        assert peaks[tag] == limit, tag
        per_bucket = ta.peak_concurrency(states, by="tags", every="1m")
        assert per_bucket.filter(pl.col("tags") == tag)["peak"].max() == limit

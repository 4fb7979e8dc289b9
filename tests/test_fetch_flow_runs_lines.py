"""Flow-run states and concurrency limits on every Prefect line, against the workload's truth.

The ``prefect_line`` fixture (tests/conftest.py) gives each line's server with the
workload run by that line's own client: flow runs from deployments (work pools),
called directly, and a subflow whose three tasks queue on a tag concurrency
limit. The truth is what the flows and tasks recorded from inside.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl
import pytest

import trs_analytics as ta
from trs_analytics.exceptions import NotFoundError

if TYPE_CHECKING:
    from devtools.workload import GroundTruth
    from tests.conftest import ServerLine


def _window(truth: GroundTruth) -> tuple[datetime, datetime]:
    return truth.started_at - timedelta(minutes=1), datetime.now(UTC) + timedelta(minutes=1)


def _has_events(line: ServerLine) -> bool:
    return not line.truth.prefect_version.startswith("2.")


@pytest.fixture(scope="module")
def flow_fetched(prefect_line: ServerLine) -> dict[str, pl.DataFrame]:
    since, until = _window(prefect_line.truth)
    sources = ["states", "auto", "events"] if _has_events(prefect_line) else ["states", "auto"]
    with ta.PrefectClient(prefect_line.server.api_url) as client:
        return {
            source: ta.fetch_flow_run_states(
                client=client,
                since=since,
                until=until,
                source=source,  # type: ignore[arg-type]
                progress=False,
            )
            for source in sources
        }


def test_flow_run_states_give_the_ground_truth(
    prefect_line: ServerLine, flow_fetched: dict[str, pl.DataFrame]
) -> None:
    truth = prefect_line.truth
    states = flow_fetched["states"].filter(pl.col("flow_run_id").is_in(list(truth.flow_runs)))
    assert states.schema == ta.FLOW_RUN_STATES_SCHEMA
    assert set(states["flow_run_id"]) == set(truth.flow_runs)
    assert states.height == truth.n_flow_run_states
    assert states["id"].is_unique().all()
    per_run = (
        states.sort("timestamp", "id")
        .group_by("flow_run_id", maintain_order=True)
        .agg(
            pl.col("name"),
            pl.col("type").cast(pl.String),
            pl.col("timestamp"),
            *(
                pl.col(c).first()
                for c in (
                    "flow_name",
                    "deployment_id",
                    "deployment_name",
                    "work_pool_name",
                    "parent_task_run_id",
                    "expected_start_time",
                )
            ),
        )
    )
    for row in per_run.iter_rows(named=True):
        run = truth.flow_runs[row["flow_run_id"]]
        assert tuple(row["name"]) == run.states, run
        assert tuple(row["type"]) == run.state_types, run
        assert row["name"][-1] == run.final_name
        assert row["flow_name"] == run.flow_name
        assert row["deployment_id"] == run.deployment_id
        assert row["deployment_name"] == run.deployment_name
        assert row["work_pool_name"] == run.work_pool_name
        assert row["parent_task_run_id"] == run.parent_task_run_id
        assert row["expected_start_time"] == run.expected_start_time
        # the body's own clock: it began after Running was entered, ended before the end
        (running,) = [
            t for t, n in zip(row["timestamp"], row["name"], strict=True) if n == "Running"
        ]
        assert running <= run.started_at
        assert run.ended_at <= row["timestamp"][-1]
    kinds = {run.kind for run in truth.flow_runs.values()}
    assert kinds == {"deployed", "direct", "subflow"}


def test_the_subflows_parent_task_run_is_a_task_run_of_its_parent(
    prefect_line: ServerLine,
) -> None:
    truth = prefect_line.truth
    subflows = [run for run in truth.flow_runs.values() if run.kind == "subflow"]
    assert subflows
    for run in subflows:
        parent = truth.task_runs[run.parent_task_run_id or ""]
        assert parent.pattern == "subflow_parent"
        assert truth.flow_runs[parent.flow_run_id or ""].flow_name == "maintenance"
        assert run.parent_flow_run_id == parent.flow_run_id


def test_every_source_gives_the_same_rows(
    prefect_line: ServerLine, flow_fetched: dict[str, pl.DataFrame]
) -> None:
    assert flow_fetched["auto"].equals(flow_fetched["states"])
    if _has_events(prefect_line):
        assert flow_fetched["events"].equals(flow_fetched["states"])
        return
    since, until = _window(prefect_line.truth)
    with pytest.raises(NotFoundError, match="404"):
        ta.fetch_flow_run_states(
            prefect_line.server.api_url, since=since, until=until, source="events", progress=False
        )


def test_deployment_filter_keeps_its_flow_runs(prefect_line: ServerLine) -> None:
    truth = prefect_line.truth
    since, until = _window(truth)
    name = "etl-nightly"
    expected = {r.flow_run_id for r in truth.flow_runs.values() if r.deployment_name == name}
    assert expected
    for source in ("states", "auto"):
        frame = ta.fetch_flow_run_states(
            prefect_line.server.api_url,
            since=since,
            until=until,
            source=source,  # type: ignore[arg-type]
            deployments=name,
            progress=False,
        )
        assert set(frame["flow_run_id"]) == expected, source
        assert frame.height == sum(truth.flow_runs[i].n_states for i in expected)


def test_concurrency_limits_and_the_queued_tasks(prefect_line: ServerLine) -> None:
    truth = prefect_line.truth
    limits = ta.fetch_concurrency_limits(prefect_line.server.api_url)
    tags = limits.filter(pl.col("kind") == "tag")
    assert dict(zip(tags["tag"], tags["limit"], strict=True)) == truth.concurrency_limits
    assert tags["active_slots"].to_list() == [0] * tags.height  # all finished
    for tag, limit in truth.concurrency_limits.items():
        queued = [t for t in truth.task_runs.values() if tag in t.tags]
        assert len(queued) == 3
        # the three were submitted together; their bodies never overlapped
        assert truth.peak_running(tag) == limit == 1

"""fetch_states against a real Prefect server, checked against the workload's ground truth.

The workload (devtools/workload/) makes 230 task runs (past the 200-row page cap) and
~900 states (past the 50-event page), recording what each task did as it ran.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import polars as pl
import pytest

import trs_analytics as ta
from devtools.prefect_harness import PREFECT_AUTH_STRING

if TYPE_CHECKING:
    from pathlib import Path

    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth
    from tests.conftest import ServerFactory
    from trs_analytics.fetch import Source

SOURCES: list[Source] = ["states", "events"]


def _window(workload: GroundTruth) -> dict[str, Any]:
    return {
        "since": workload.started_at - timedelta(minutes=1),
        "until": workload.finished_at + timedelta(minutes=1),
    }


@pytest.fixture(scope="module")
def fetched(prefect_server: PrefectServer, workload: GroundTruth) -> dict[str, pl.DataFrame]:
    frames: dict[str, pl.DataFrame] = {}
    for source in SOURCES:
        with ta.PrefectClient(prefect_server.api_url) as client:
            frames[source] = ta.fetch_states(client=client, source=source, **_window(workload))
    return frames


@pytest.mark.parametrize("source", SOURCES)
def test_every_task_run_and_state_of_the_workload(
    fetched: dict[str, pl.DataFrame], workload: GroundTruth, source: Source
) -> None:
    states = fetched[source]
    ta.validate_states(states)
    assert workload.n_task_runs > 200
    assert set(states["task_run_id"].unique()) == set(workload.task_runs)
    assert states.height == workload.n_states
    assert states["id"].n_unique() == states.height

    per_run = (
        states.sort("timestamp", "id")
        .group_by("task_run_id", maintain_order=True)
        .agg(
            pl.col("name"),
            pl.col("type").cast(pl.String),
            pl.col("task_name").first(),
            pl.col("flow_name").first(),
            pl.col("flow_run_id").first(),
            pl.col("tags").first(),
        )
    )
    for row in per_run.iter_rows(named=True):
        truth = workload.task_runs[row["task_run_id"]]
        assert tuple(row["name"]) == truth.states, truth
        assert tuple(row["type"]) == truth.state_types, truth
        assert row["type"].count("RUNNING") == truth.attempts, truth
        assert (row["type"][-1], row["name"][-1]) == (truth.final_type, truth.final_name)
        assert row["task_name"] == truth.task_name
        assert row["flow_name"] == truth.flow_name
        assert row["flow_run_id"] == truth.flow_run_id
        assert sorted(row["tags"]) == sorted(truth.tags)


def test_both_sources_give_the_same_rows(fetched: dict[str, pl.DataFrame]) -> None:
    assert fetched["states"].equals(fetched["events"])


def test_events_need_far_fewer_requests(
    prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    requests = {}
    for source in SOURCES:
        with ta.PrefectClient(prefect_server.api_url) as client:
            frame = ta.fetch_states(client=client, source=source, **_window(workload))
            requests[source] = client.stats.requests
    assert frame.height == workload.n_states
    assert requests["states"] >= workload.n_task_runs  # one GET per task run
    assert requests["events"] * 5 < requests["states"]
    assert requests["events"] <= workload.n_states / 50 + 15  # 50 a page + a few lookups


@pytest.mark.parametrize("source", SOURCES)
def test_a_window_cut_mid_workload(
    prefect_server: PrefectServer,
    workload: GroundTruth,
    fetched: dict[str, pl.DataFrame],
    source: Source,
) -> None:
    everything = fetched["states"]
    stamps = everything["timestamp"].sort()
    since, until = stamps[len(stamps) // 3], stamps[2 * len(stamps) // 3]
    expected = everything.filter(pl.col("timestamp") >= since, pl.col("timestamp") < until)
    got = ta.fetch_states(prefect_server.api_url, since=since, until=until, source=source)
    assert got.equals(expected)
    # runs that started before `since` and ended inside the window are included
    assert got["task_run_id"].n_unique() > 0


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        ({"flow_names": "etl"}, lambda t: t.flow_name == "etl"),
        ({"task_names": ["load", "publish"]}, lambda t: t.task_name in ("load", "publish")),
        ({"state_types": "FAILED"}, lambda t: t.final_type == "FAILED"),
        ({"tags": "reports"}, None),
    ],
    ids=["flow", "tasks", "failed", "tag"],
)
def test_filters(
    prefect_server: PrefectServer,
    workload: GroundTruth,
    fetched: dict[str, pl.DataFrame],
    source: Source,
    filters: dict[str, Any],
    keep: object,
) -> None:
    got = ta.fetch_states(prefect_server.api_url, source=source, **_window(workload), **filters)
    if keep is None:  # tags: compare with the unfiltered frame
        tag = filters["tags"]
        expected_ids = set(
            fetched["states"].filter(pl.col("tags").list.contains(tag))["task_run_id"]
        )
    else:
        expected_ids = {i for i, t in workload.task_runs.items() if keep(t)}  # type: ignore[operator]
    assert expected_ids
    assert set(got["task_run_id"]) == expected_ids
    full = fetched["states"].filter(pl.col("task_run_id").is_in(list(expected_ids)))
    assert got.equals(full)


def test_streaming_batches_add_up(prefect_server: PrefectServer, workload: GroundTruth) -> None:
    batches = list(
        ta.iter_states(prefect_server.api_url, source="events", batch_size=100, **_window(workload))
    )
    assert len(batches) > 5
    assert all(b.schema == ta.STATES_SCHEMA for b in batches)
    total = pl.concat(batches)
    assert total.height == workload.n_states
    assert total["id"].n_unique() == total.height


def test_auth_server_right_and_wrong_credentials(prefect_server_auth: PrefectServer) -> None:
    since = datetime.now(UTC) - timedelta(hours=1)
    frame = ta.fetch_states(
        client=ta.PrefectClient(prefect_server_auth.api_url, auth_string=PREFECT_AUTH_STRING),
        since=since,
        source="events",
    )
    assert frame.height == 0
    for source in SOURCES:
        client = ta.PrefectClient(prefect_server_auth.api_url, auth_string="trs:wrong")
        with pytest.raises(ta.AuthenticationError, match=r"401.*PREFECT_API_AUTH_STRING") as err:
            ta.fetch_states(client=client, since=since, source=source)
        assert "wrong" not in str(err.value)
    with pytest.raises(ta.AuthenticationError):
        ta.fetch_states(prefect_server_auth.api_url, since=since, source="states")


def _create_runs_at_one_instant(
    server: PrefectServer, n: int, when: str, auth: str | None
) -> list[str]:
    ids = []
    with ta.PrefectClient(server.api_url, auth_string=auth) as client:
        for i in range(n):
            run = client.post(
                "/task_runs/",
                json_body={
                    "task_key": "same-instant-0a1b2c3d",
                    "dynamic_key": f"{i:04d}",
                    "name": f"same-instant-{i:04d}",
                    "state": {
                        "type": "SCHEDULED",
                        "name": "Scheduled",
                        "state_details": {"scheduled_time": when},
                    },
                },
            )
            ids.append(run["id"])
    return ids


def test_csrf_server_and_410_runs_sharing_one_expected_start_time(
    prefect_server_csrf: PrefectServer,
) -> None:
    """Keyset paging must drain a timestamp that more than two pages of runs share.

    Runs are created over the API (through CSRF protection) with one scheduled
    time, so every one of them has the same ``expected_start_time``.
    """
    since = datetime.now(UTC) - timedelta(seconds=5)
    ids = _create_runs_at_one_instant(prefect_server_csrf, 410, "2026-01-01T00:00:00Z", None)
    until = datetime.now(UTC) + timedelta(seconds=5)
    frames = {}
    for source in SOURCES:
        with ta.PrefectClient(prefect_server_csrf.api_url) as client:
            frames[source] = ta.fetch_states(client=client, since=since, until=until, source=source)
    states = frames["states"]
    assert sorted(states["task_run_id"]) == sorted(ids)
    assert states["name"].unique().to_list() == ["Scheduled"]
    assert (states["expected_start_time"] == datetime(2026, 1, 1, tzinfo=UTC)).all()
    assert states["task_name"].unique().to_list() == ["same-instant"]
    if frames["events"].height:  # server-side transitions emit events too
        assert frames["events"].equals(states)


def test_unreachable_and_wrong_urls(prefect_server: PrefectServer) -> None:
    with pytest.raises(ta.NotFoundError, match="/api"):
        ta.fetch_states(prefect_server.url, since="1h", source="states")
    client = ta.PrefectClient("http://127.0.0.1:9/api", max_attempts=2, sleep=lambda _: None)
    with pytest.raises(ta.TransportError, match="Gave up after 2 attempts"):
        ta.fetch_states(client=client, since="1h")
    assert isinstance(httpx.URL(prefect_server.api_url).port, int)


def test_auto_reads_every_state_right_after_a_workload(
    prefect_server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Issue 26.17: the event store lags the per-run states by seconds (739 of 744 states
    had their events right after a run), so ``since="1h"`` read from events alone missed
    the last states. On a server of its own, the workload returns as soon as every state
    is readable per run, without waiting for the events, and the fetch follows at once."""
    from devtools.workload import run_workload

    server = prefect_server_factory()
    truth = run_workload(server.api_url, out_dir=tmp_path / "workload", wait_for_events=False)
    states = ta.fetch_states(server.api_url, since="1h")
    per_run = states.group_by("task_run_id").agg(pl.len())
    got = dict(per_run.iter_rows())
    assert got == {run_id: run.n_states for run_id, run in truth.task_runs.items()}

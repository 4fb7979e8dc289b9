"""Every supported Prefect line, on a real server, against the workload's ground truth.

One server per line (2.20.16, 3.2.15, 3.9.1), started once per session by the
``prefect_line`` fixture (tests/conftest.py), each with the workload run by that
line's own client: flows in and out of deployments and work pools, retries, cache
hits, failures. The ground truth is what the workload's tasks recorded as they ran.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl
import pytest

import trs_analytics as ta
from trs_analytics.exceptions import NotFoundError
from trs_analytics.fetch import StateFilters, plan_sources, stream_states

if TYPE_CHECKING:
    from devtools.prefect_lines import ServerLine
    from devtools.workload import GroundTruth
    from trs_analytics.fetch import Source


def _window(truth: GroundTruth) -> tuple[datetime, datetime]:
    return truth.started_at - timedelta(minutes=1), truth.finished_at + timedelta(minutes=1)


def _has_events(line: ServerLine) -> bool:
    return not line.truth.prefect_version.startswith("2.")


@pytest.fixture(scope="module")
def fetched(prefect_line: ServerLine) -> dict[str, pl.DataFrame]:
    since, until = _window(prefect_line.truth)
    sources = ["states", "auto", "events"] if _has_events(prefect_line) else ["states", "auto"]
    frames = {}
    for source in sources:
        with ta.PrefectClient(prefect_line.server.api_url) as client:
            frames[source] = ta.fetch_states(
                client=client,
                since=since,
                until=until,
                source=source,  # type: ignore[arg-type]
            )
    return frames


def test_states_source_gives_the_ground_truth(
    prefect_line: ServerLine, fetched: dict[str, pl.DataFrame]
) -> None:
    truth = prefect_line.truth
    states = fetched["states"]
    ta.validate_states(states)
    assert set(states["task_run_id"].unique()) == set(truth.task_runs)
    assert states.height == truth.n_states
    assert states["id"].is_unique().all()
    per_run = (
        states.sort("timestamp", "id")
        .group_by("task_run_id", maintain_order=True)
        .agg(pl.col("name"), pl.col("type").cast(pl.String), pl.col("flow_run_id").first())
    )
    for row in per_run.iter_rows(named=True):
        run = truth.task_runs[row["task_run_id"]]
        assert tuple(row["name"]) == run.states, run
        assert tuple(row["type"]) == run.state_types, run
        assert row["flow_run_id"] == run.flow_run_id, run


def test_auto_gives_the_states_sources_rows_row_for_row(
    fetched: dict[str, pl.DataFrame],
) -> None:
    assert fetched["auto"].equals(fetched["states"])


def test_events_where_the_line_has_them(
    prefect_line: ServerLine, fetched: dict[str, pl.DataFrame]
) -> None:
    if _has_events(prefect_line):
        assert fetched["events"].equals(fetched["states"])
        return
    since, until = _window(prefect_line.truth)
    with pytest.raises(NotFoundError, match="404"):
        ta.fetch_states(prefect_line.server.api_url, since=since, until=until, source="events")


def test_a_window_split_at_the_oldest_event_equals_the_states_source(
    prefect_line: ServerLine, fetched: dict[str, pl.DataFrame]
) -> None:
    # as if the window reached back past event retention: states before the oldest
    # event, events after it (Prefect 2: states throughout)
    since, until = _window(prefect_line.truth)
    with ta.PrefectClient(prefect_line.server.api_url) as client:
        plan = plan_sources(client, since, until, now=until + timedelta(days=30))
        assert plan.label == ("states+events" if _has_events(prefect_line) else "states")
        frames = list(stream_states(client, StateFilters(), since, until, source=plan))
    joined = pl.concat(frames).sort("timestamp", "id")
    assert joined["id"].is_unique().all()
    assert joined.equals(fetched["states"])


@pytest.mark.parametrize("source", ["states", "auto"])
def test_deployment_and_work_pool_filters(prefect_line: ServerLine, source: Source) -> None:
    truth = prefect_line.truth
    since, until = _window(truth)
    deployed = [f for f in truth.flow_runs.values() if f.deployment_name]
    assert deployed, "the workload runs flows from deployments"
    for key, attribute in (("deployments", "deployment_name"), ("work_pools", "work_pool_name")):
        for name in sorted({getattr(f, attribute) for f in deployed}):
            expected = {
                run_id
                for f in truth.flow_runs.values()
                if getattr(f, attribute) == name
                for run_id in f.task_run_ids
            }
            frame = ta.fetch_states(
                prefect_line.server.api_url,
                since=since,
                until=until,
                source=source,
                **{key: name},
            )
            assert expected
            assert set(frame["task_run_id"].unique()) == expected, (key, name)
            assert frame.height == sum(truth.task_runs[i].n_states for i in expected)

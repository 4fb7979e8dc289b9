"""Flow-run states and concurrency limits from recorded Prefect 3.9.1 answers (no server).

The recordings (tests/recordings, written by record.py's ``save`` against a 3.9.1
server that ran the workload) are one flow run created from a deployment, its
three states, its deployment and flow, and both concurrency-limit endpoints.
A :class:`FlowRunServer` serves 450 copies of that flow run (new ids, expected
starts one second apart, 250 of them at one instant) through
``/flow_runs/filter`` the way the server filters and pages them, to cover
listing past the 200-row cap, including a page that is all one timestamp.
"""

from __future__ import annotations

import copy
import inspect
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.testing as tt
from tests.recorded import recorded_body
from trs_analytics._progress import Progress, describe
from trs_analytics.exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

API = "http://test/api"
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
N_RUNS = 450
SAME_INSTANT = 250  # runs 100..349 share one expected start


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class FlowRunServer:
    """Answers like a 3.9.1 server holding ``N_RUNS`` copies of the recorded flow run."""

    def __init__(self) -> None:
        template = recorded_body("flow_run_deployed")[0]
        self.states = recorded_body("flow_run_states_deployed")
        self.runs: list[dict[str, Any]] = []
        for i in range(N_RUNS):
            run = copy.deepcopy(template)
            offset = 100 if 100 <= i < 100 + SAME_INSTANT else i
            start = T0 + timedelta(seconds=offset)
            run["id"] = str(uuid.UUID(int=i + 1))
            run["expected_start_time"] = _iso(start)
            run["end_time"] = _iso(start + timedelta(seconds=3))
            self.runs.append(run)
        self.calls: list[str] = []

    def _states_of(self, flow_run_id: str) -> list[dict[str, Any]]:
        run = next(r for r in self.runs if r["id"] == flow_run_id)
        shift = _parse(run["expected_start_time"]) - _parse(self.states[0]["timestamp"])
        states: list[dict[str, Any]] = copy.deepcopy(self.states)
        for index, state in enumerate(states):
            state["id"] = f"{flow_run_id}-{index}"
            state["timestamp"] = _iso(_parse(state["timestamp"]) + shift)
            state["state_details"]["flow_run_id"] = flow_run_id
            if state["state_details"].get("scheduled_time"):
                state["state_details"]["scheduled_time"] = run["expected_start_time"]
        return states

    def _filter(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        where = body.get("flow_runs") or {}
        runs = self.runs
        if ids := (where.get("id") or {}).get("any_"):
            runs = [r for r in runs if r["id"] in ids]
        for field in ("expected_start_time", "end_time"):
            bounds = where.get(field) or {}
            if "after_" in bounds:
                runs = [r for r in runs if _parse(r[field]) >= _parse(bounds["after_"])]
            if "before_" in bounds:
                runs = [r for r in runs if _parse(r[field]) <= _parse(bounds["before_"])]
        if types := ((where.get("state") or {}).get("type") or {}).get("any_"):
            runs = [r for r in runs if r["state_type"] in types]
        if body.get("sort") == "EXPECTED_START_TIME_ASC":
            runs = sorted(runs, key=lambda r: _parse(r["expected_start_time"]))
        else:
            runs = sorted(runs, key=lambda r: r["id"], reverse=True)
        offset, limit = body.get("offset", 0), body.get("limit", 200)
        assert limit <= 200, "the server refuses limit > 200 (422)"
        return runs[offset : offset + limit]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api")
        self.calls.append(f"{request.method} {path}")
        if path == "/admin/version":
            return httpx.Response(200, json="3.9.1")
        if path == "/flow_runs/filter":
            return httpx.Response(200, json=self._filter(json.loads(request.content)))
        if path == "/flow_run_states/":
            (flow_run_id,) = parse_qs(urlsplit(str(request.url)).query)["flow_run_id"]
            return httpx.Response(200, json=self._states_of(flow_run_id))
        if path == "/deployments/filter":
            return httpx.Response(200, json=recorded_body("deployments_filter"))
        if path == "/flows/filter":
            return httpx.Response(200, json=recorded_body("flows_filter_etl"))
        return httpx.Response(404, json={"detail": "Not Found"})


@pytest.fixture
def server() -> FlowRunServer:
    return FlowRunServer()


def _fetch(server: FlowRunServer, **kwargs: Any) -> pl.DataFrame:
    with ta.PrefectClient(API, transport=httpx.MockTransport(server)) as client:
        return ta.fetch_flow_run_states(
            client=client,
            since=T0 - timedelta(minutes=1),
            until=T0 + timedelta(hours=1),
            source="states",
            progress=False,
            **kwargs,
        )


def test_every_flow_run_past_the_200_cap_with_its_states(server: FlowRunServer) -> None:
    frame = _fetch(server)
    assert frame.schema == ta.FLOW_RUN_STATES_SCHEMA
    assert frame["flow_run_id"].n_unique() == N_RUNS
    assert frame.height == N_RUNS * len(server.states) == frame["id"].n_unique()
    pages = server.calls.count("POST /flow_runs/filter")
    assert pages >= 4  # 450 runs, one instant holding 250 of them: drained by id
    per_run = frame.group_by("flow_run_id").agg(pl.col("name").sort_by("timestamp"))
    assert set(map(tuple, per_run["name"].to_list())) == {("Scheduled", "Running", "Completed")}


def test_look_ups_fill_flow_deployment_and_pool(server: FlowRunServer) -> None:
    frame = _fetch(server)
    deployment = recorded_body("deployments_filter")[0]
    flow = recorded_body("flows_filter_etl")[0]
    run = recorded_body("flow_run_deployed")[0]
    columns = ["flow_name", "deployment_id", "deployment_name", "work_pool_name", "work_queue_name"]
    assert frame.select(columns).unique().rows() == [
        (
            flow["name"],
            deployment["id"],
            deployment["name"],
            run["work_pool_name"],
            run["work_queue_name"],
        )
    ]
    scheduled = frame.filter(pl.col("name") == "Scheduled")
    assert (scheduled["details_scheduled_time"] == scheduled["expected_start_time"]).all()
    assert frame["parent_task_run_id"].null_count() == frame.height


def test_a_window_keeps_only_its_states(server: FlowRunServer) -> None:
    with ta.PrefectClient(API, transport=httpx.MockTransport(server)) as client:
        frame = ta.fetch_flow_run_states(
            client=client,
            since=T0 + timedelta(seconds=400),
            until=T0 + timedelta(seconds=410),
            source="states",
            progress=False,
        )
    assert frame["timestamp"].min() >= T0 + timedelta(seconds=400)  # type: ignore[operator]
    assert frame["timestamp"].max() < T0 + timedelta(seconds=410)  # type: ignore[operator]
    assert frame["flow_run_id"].n_unique() >= 10


def test_task_names_do_not_apply_to_flow_runs() -> None:
    with pytest.raises(ConfigurationError, match="task_names does not apply to flow runs"):
        ta.fetch_flow_run_states(API, since="1d", task_names="load")


def test_concurrency_limits_from_both_endpoints_listed_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/concurrency_limits/filter":
            return httpx.Response(200, json=recorded_body("concurrency_limits_filter"))
        return httpx.Response(200, json=recorded_body("v2_concurrency_limits_filter"))

    with ta.PrefectClient(API, transport=httpx.MockTransport(handler)) as client:
        limits = ta.fetch_concurrency_limits(client=client)
    assert limits.schema == ta.CONCURRENCY_LIMITS_SCHEMA
    # 3.9.1 keeps the tag limit as the global limit "tag:trs-throttled", same id
    assert limits.select("kind", "name", "tag", "limit", "active_slots").rows() == [
        ("tag", "tag:trs-throttled", "trs-throttled", 1, 0)
    ]


# -- one path for both kinds (issue 23) ----------------------------------------------------

TWINS = [
    (ta.fetch_states, ta.fetch_flow_run_states),
    (ta.iter_states, ta.iter_flow_run_states),
    (ta.scan_states, ta.scan_flow_run_states),
    (tt.generate_states, tt.generate_flow_run_states),
    (ta.write_states, ta.storage.write_flow_run_states),
]


@pytest.mark.parametrize(
    ("task_runs", "flow_runs"), TWINS, ids=[task.__name__ for task, _ in TWINS]
)
def test_each_twin_takes_the_same_arguments(
    task_runs: Callable[..., Any], flow_runs: Callable[..., Any]
) -> None:
    assert inspect.signature(flow_runs) == inspect.signature(task_runs)


def _stream(
    handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any
) -> list[pl.DataFrame]:
    """Every batch of ``iter_flow_run_states`` over the served runs' window."""
    since, until = T0 - timedelta(minutes=1), T0 + timedelta(hours=1)
    with ta.PrefectClient(API, transport=httpx.MockTransport(handler)) as client:
        return list(ta.iter_flow_run_states(client=client, since=since, until=until, **kwargs))


def test_batch_size_and_progress_count_flow_runs(server: FlowRunServer) -> None:
    seen: list[Progress] = []
    frames = _stream(server, source="states", batch_size=1, on_progress=seen.append)
    assert len(seen) == len(frames) >= 3  # one frame per page of up to 200 runs
    last = seen[-1]
    assert (last.runs, last.runs_label, last.source) == (N_RUNS, "flow runs", "states")
    assert last.states == N_RUNS * len(server.states)
    assert describe(last, elapsed=1.0).startswith(f"{N_RUNS} flow runs, ")


def test_batch_size_is_checked_for_flow_runs_too() -> None:
    with pytest.raises(ConfigurationError, match="batch_size must be at least 1, got 0"):
        ta.iter_flow_run_states(API, since="1d", batch_size=0)


@pytest.mark.parametrize(("batch_size", "runs_per_batch"), [(2, [3, 2]), (100, [5])])
def test_events_name_the_runs_and_batch_size_cuts_their_batches(
    batch_size: int, runs_per_batch: list[int]
) -> None:
    """The events source of a kind whose events carry no whole state: the
    ``prefect.flow-run.*`` events name the runs, whose states are read per run; a
    batch is cut once ``batch_size`` state changes were read."""
    server = FlowRunServer()
    runs = server.runs[:5]
    events = [
        {
            "id": f"e{i}",
            "occurred": run["expected_start_time"],
            "event": "prefect.flow-run.Running",
            "resource": {"prefect.resource.id": f"prefect.flow-run.{run['id']}"},
            "payload": {"validated_state": {"type": "RUNNING", "name": "Running"}},
        }
        for i, run in enumerate(runs)
    ]
    heartbeat = {**events[0], "id": "hb", "payload": {}}
    next_page = f"{API}/events/filter/next?page-token=two"
    pages: dict[str, dict[str, Any]] = {
        "/api/events/filter": {"events": [heartbeat, *events[:3]], "next_page": next_page},
        "/api/events/filter/next": {"events": events[3:], "next_page": None},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/events/filter":
            assert json.loads(request.content)["filter"]["event"]["prefix"] == ["prefect.flow-run."]
        if (page := pages.get(request.url.path)) is not None:
            return httpx.Response(200, json={**page, "total": 6})
        return server(request)

    frames = _stream(handler, source="events", batch_size=batch_size)
    assert [f["flow_run_id"].n_unique() for f in frames] == runs_per_batch
    fetched = pl.concat(frames)
    assert set(fetched["flow_run_id"]) == {r["id"] for r in runs}
    assert fetched.height == len(runs) * len(server.states)

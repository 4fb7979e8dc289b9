"""iter_states as a stream: sliced event paging, early close, failure mid-stream, the budget.

A synthetic server built from the recorded 3.9.1 events: the recorded workload's
13 events repeated ``cycles`` times, one second apart, each copy with fresh ids.
It filters events by ``occurred`` (inclusive, like Prefect), pages them 50 at a
time with ``next_page`` tokens, and answers ``total`` as Prefect does.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import polars as pl
import pytest

import trs_analytics.fetch._sources as sources
from tests.recorded import Router
from trs_analytics.client import PrefectClient
from trs_analytics.exceptions import AuthenticationError, ConfigurationError
from trs_analytics.fetch import iter_states

if TYPE_CHECKING:
    from collections.abc import Callable

API = "http://test/api"


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


class ManyEvents:
    """A MockTransport handler serving ``cycles`` copies of the recorded workload's events."""

    def __init__(
        self,
        cycles: int,
        *,
        fail_on: Callable[[httpx.Request], bool] | None = None,
        histogram: bool = True,
    ):
        recorded = Router()
        template = [e for n in (1, 2, 3) for e in recorded.data[f"events_filter_page{n}"]["events"]]
        runs = {r["id"]: r for r in recorded.data["task_runs_filter"]}
        self.flow_runs = recorded.data["flow_runs_filter"]
        self.flows = recorded.data["flows_filter"]
        self.events: list[dict[str, Any]] = []
        self.task_runs: dict[str, dict[str, Any]] = {}
        for k in range(cycles):
            shift = timedelta(seconds=k)
            ids = {rid: str(uuid.uuid5(uuid.NAMESPACE_URL, f"{k}/{rid}")) for rid in runs}
            for rid, new in ids.items():
                self.task_runs[new] = {**copy.deepcopy(runs[rid]), "id": new}
            for event in template:
                copied = copy.deepcopy(event)
                old = copied["resource"]["prefect.resource.id"].removeprefix("prefect.task-run.")
                copied["resource"]["prefect.resource.id"] = f"prefect.task-run.{ids[old]}"
                copied["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{k}/{event['id']}"))
                copied["occurred"] = _iso(_time(event["occurred"]) + shift)
                self.events.append(copied)
        self.events.sort(key=lambda e: e["occurred"])
        self.since = _time(self.events[0]["occurred"])
        self.until = _time(self.events[-1]["occurred"]) + timedelta(seconds=1)
        self.fail_on = fail_on
        self.histogram = histogram
        self.requests: list[tuple[float, httpx.Request]] = []
        self._lock = threading.Lock()
        self._queries: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append((time.monotonic(), request))
        if self.fail_on is not None and self.fail_on(request):
            return httpx.Response(401, json={"detail": "Unauthorized"})
        path = request.url.path
        body = json.loads(request.content) if request.content else {}
        if path == "/api/events/filter":
            if not _task_run_query(request):  # every event here is a task-run one
                return httpx.Response(200, json={"events": [], "total": 0, "next_page": None})
            occurred = body["filter"]["occurred"]
            since, until = _time(occurred["since"]), _time(occurred["until"])
            found = [e for e in self.events if since <= _time(e["occurred"]) <= until]
            token = str(uuid.uuid4())
            with self._lock:
                self._queries[token] = found
            return self._page(token, 0, body["limit"])
        if path == "/api/events/count-by/time" and self.histogram:
            return self._histogram(body)
        if path == "/api/events/filter/next":
            token, offset, limit = request.url.params["page-token"].split(":")
            return self._page(token, int(offset), int(limit))
        if path == "/api/task_runs/filter":
            wanted = body["task_runs"]["id"]["any_"]
            return httpx.Response(200, json=[self.task_runs[i] for i in wanted])
        if path == "/api/flow_runs/filter":
            return httpx.Response(200, json=self.flow_runs)
        if path == "/api/flows/filter":
            return httpx.Response(200, json=self.flows)
        if path == "/api/admin/version":
            return httpx.Response(200, json="3.9.1")
        return httpx.Response(404, json={"detail": "Not Found"})

    def _histogram(self, body: dict[str, Any]) -> httpx.Response:
        """Counts per bucket of ``time_interval`` seconds, aligned like Prefect's."""
        occurred = body["filter"]["occurred"]
        since, until = _time(occurred["since"]), _time(occurred["until"])
        step = timedelta(seconds=body["time_interval"])
        epoch = datetime(1970, 1, 1, tzinfo=since.tzinfo)
        at = epoch + ((since - epoch) // step) * step
        buckets = []
        while at <= until:
            count = sum(1 for e in self.events if at <= _time(e["occurred"]) < at + step)
            buckets.append({"start_time": _iso(at), "end_time": _iso(at + step), "count": count})
            at += step
        return httpx.Response(200, json=buckets)

    def _page(self, token: str, offset: int, limit: int) -> httpx.Response:
        found = self._queries[token]
        end = offset + limit
        next_page = (
            f"http://elsewhere:4200/api/events/filter/next?page-token={token}:{end}:{limit}"
            if end < len(found)
            else None
        )
        page = {"events": found[offset:end], "total": len(found), "next_page": next_page}
        return httpx.Response(200, json=page)

    def count(self, method: str, path: str) -> int:
        """Requests to ``path``; for ``/events/filter`` only the task-run queries (a read
        from events also asks flow-run events once, for subflows' parent task runs)."""
        return sum(
            1
            for _, r in self.requests
            if r.method == method
            and r.url.path == path
            and (path != "/api/events/filter" or _task_run_query(r))
        )


def _task_run_query(request: httpx.Request) -> bool:
    body = json.loads(request.content) if request.content else {}
    prefixes = body.get("filter", {}).get("event", {}).get("prefix", [])
    return any(p.startswith("prefect.task-run.") for p in prefixes)


def _client(server: ManyEvents, **kwargs: Any) -> PrefectClient:
    return PrefectClient(API, transport=httpx.MockTransport(server), **kwargs)


def _fetch(server: ManyEvents, **kwargs: Any) -> pl.DataFrame:
    with _client(server, **kwargs) as client:
        frames = list(
            iter_states(since=server.since, until=server.until, source="events", client=client)
        )
    return pl.concat(frames)


def _no_threads_left() -> bool:
    time.sleep(0.05)
    return not any(t.name.startswith("trs") and t.is_alive() for t in threading.enumerate())


def test_sliced_paging_gives_every_event_once_and_the_same_rows_as_one_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = ManyEvents(cycles=60)  # 780 events
    one_chain = _fetch(server, concurrency=1)
    assert server.count("POST", "/api/events/filter") == 1
    monkeypatch.setattr(sources, "SLICE_EVENTS", 100)
    sliced_server = ManyEvents(cycles=60, histogram=False)  # equal-time slices
    sliced = _fetch(sliced_server, concurrency=4)
    # one request for the total, then one first page per slice (8 slices of ~100 events)
    assert sliced_server.count("POST", "/api/events/filter") == 1 + 8
    assert sliced.height == len(server.events) == 780
    assert sliced["id"].is_unique().all()
    assert set(sliced["id"]) == {e["id"] for e in server.events}
    assert sliced.sort("timestamp", "id").equals(one_chain.sort("timestamp", "id"))
    assert sliced["timestamp"].is_sorted()  # slices come back in time order


def test_a_small_window_is_one_next_page_chain() -> None:
    server = ManyEvents(cycles=3)
    frame = _fetch(server, concurrency=4)
    assert frame.height == 39
    assert server.count("POST", "/api/events/filter") == 1


def test_closing_iter_states_early_stops_paging_and_leaves_no_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sources, "SLICE_EVENTS", 100)
    server = ManyEvents(cycles=200)  # 2,600 events in 26 slices
    with _client(server, concurrency=2) as client:
        batches = iter_states(
            since=server.since, until=server.until, source="events", client=client, batch_size=50
        )
        first = next(batches)
        assert first.height >= 50
        began = time.monotonic()
        batches.close()  # type: ignore[attr-defined]
        assert time.monotonic() - began < 5
        sent = len(server.requests)
    assert _no_threads_left()
    time.sleep(0.2)
    assert len(server.requests) == sent  # nothing is sent after the close
    assert server.count("GET", "/api/events/filter/next") < 2_600 // 50


@pytest.mark.parametrize("sliced", [False, True])
def test_a_failure_mid_stream_raises_after_the_batches_before_it(
    sliced: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sliced:
        monkeypatch.setattr(sources, "SLICE_EVENTS", 100)
    seen = {"next": 0}

    def tenth_next_page(request: httpx.Request) -> bool:
        if request.url.path.endswith("/next"):
            seen["next"] += 1
            return seen["next"] == 10
        return False

    server = ManyEvents(cycles=100, fail_on=tenth_next_page)
    got: list[int] = []

    def drain(client: PrefectClient) -> None:
        for batch in iter_states(
            since=server.since, until=server.until, source="events", client=client, batch_size=50
        ):
            got.append(batch.height)

    with _client(server, concurrency=2) as client, pytest.raises(AuthenticationError):
        drain(client)
    assert 0 < sum(got) < len(server.events)  # the rows before the failure came, then the error
    assert _no_threads_left()


def test_iter_states_checks_its_arguments_at_the_call() -> None:
    server = ManyEvents(cycles=1)
    with _client(server) as client:
        for bad in (
            {"source": "cache"},
            {"since": "2026-01-01T00:00:00"},
            {"since": "2026-01-02", "until": "2026-01-01"},
            {"state_types": "DONE"},
            {"batch_size": 0},
        ):
            kwargs: dict[str, Any] = {"since": "1h", "client": client, **bad}
            with pytest.raises(ConfigurationError):
                iter_states(**kwargs)  # no next(): the call itself raises
    assert server.requests == []


def test_requests_per_minute_holds_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    # 600 a minute: a burst of 60, then one request every 0.1 s, across slices on 4 threads
    monkeypatch.setattr(sources, "SLICE_EVENTS", 100)
    server = ManyEvents(cycles=200)
    frame = _fetch(server, concurrency=4, requests_per_minute=600)
    assert frame.height == len(server.events)
    times = sorted(t for t, _ in server.requests)
    assert len(times) > 70
    for i, when in enumerate(times):
        allowed = max(0, i + 1 - 60) / 10.0  # seconds the budget needs for request i
        assert when - times[0] >= allowed - 0.15


@pytest.mark.parametrize("histogram", [True, False])
def test_events_bunched_at_the_end_of_a_long_window_come_once_each(
    histogram: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a day-long window whose events all fall in its last minute. With the server's
    # histogram the cuts fall among the events, so the slices share them out; without
    # it (equal times) the last slice holds them all and streams them through its
    # bounded queue.
    monkeypatch.setattr(sources, "SLICE_EVENTS", 100)
    server = ManyEvents(cycles=60, histogram=histogram)
    with _client(server, concurrency=4) as client:
        frames = list(
            iter_states(
                since=server.since - timedelta(days=1),
                until=server.until,
                source="events",
                client=client,
            )
        )
    frame = pl.concat(frames)
    assert frame.height == len(server.events)
    assert frame["id"].is_unique().all()
    assert frame["timestamp"].is_sorted()
    assert server.count("POST", "/api/events/count-by/time") == 1
    # the total, then one first page per slice
    firsts = [
        _time(json.loads(r.content)["filter"]["occurred"]["since"])
        for _, r in server.requests
        if r.url.path == "/api/events/filter" and _task_run_query(r)
    ][1:]
    if histogram:  # ~8 slices of ~100 events, every one but the first starting among them
        assert 6 <= len(firsts) <= 9
        assert all(since >= server.since - timedelta(seconds=1) for since in firsts[1:])
    else:
        assert len(firsts) == 8

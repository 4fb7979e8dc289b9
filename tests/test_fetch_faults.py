"""fetch_states end to end over the recorded server, clean and with faults injected.

The real client talks to :class:`recorded.Router` through ``httpx.MockTransport``:
both sources must give the same 13 states of the recorded workload, retried
faults must not change a single row, and a broken page must raise rather than
return fewer rows.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import polars as pl
import pytest

from tests.recorded import (
    CACHED_HIT,
    CACHED_MISS,
    EXTRACT,
    FLAKY,
    SINCE,
    UNTIL,
    Router,
    recorded_body,
    response,
)
from trs_analytics.client import PrefectClient
from trs_analytics.exceptions import (
    AuthenticationError,
    PrefectAPIError,
    ResponseFormatError,
    ServerError,
)
from trs_analytics.fetch import (
    StateFilters,
    fetch_states,
    plan_sources,
    stream_states,
    window,
)
from trs_analytics.fetch._sources import FRESH_SPAN
from trs_analytics.schema import STATES_SCHEMA

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: An hour after the recorded workload ran: the clock of the tests that need it recent (the
#: others run at tests.clock.DISTANT, like every test without a server).
RECORDED_NOW = "2026-11-28T14:00:00Z"

API = "http://test/api"
SOURCES = ["states", "events"]
NAMES = {
    FLAKY: ["Pending", "Running", "Retrying", "Completed"],
    EXTRACT: ["Pending", "Running", "Completed"],
    CACHED_MISS: ["Pending", "Running", "Completed"],
    CACHED_HIT: ["Pending", "Running", "Cached"],
}
TASK_NAMES = {FLAKY: "flaky", EXTRACT: "extract", CACHED_MISS: "cached", CACHED_HIT: "cached"}


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def connect(sleeps: list[float]) -> Iterator[Callable[..., PrefectClient]]:
    """Make clients on a router; close them after the test."""
    clients: list[PrefectClient] = []

    def make(router: Router, url: str = API, **kwargs: Any) -> PrefectClient:
        client = PrefectClient(
            url, transport=httpx.MockTransport(router), sleep=sleeps.append, **kwargs
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def fetch(
    client: PrefectClient, source: str, since: str = SINCE, until: str = UNTIL
) -> pl.DataFrame:
    return fetch_states(client=client, since=since, until=until, source=source)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def clean() -> pl.DataFrame:
    """The frame from a clean run of the events source (the states source must equal it)."""
    with PrefectClient(
        API, transport=httpx.MockTransport(Router()), sleep=lambda _: None
    ) as client:
        return fetch(client, "events")


# -- clean runs ---------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_both_sources_give_the_recorded_workload(
    source: str, connect: Callable[..., PrefectClient], clean: pl.DataFrame, sleeps: list[float]
) -> None:
    router = Router()
    frame = fetch(connect(router), source)
    assert frame.schema == STATES_SCHEMA
    assert frame.height == 13
    assert frame["id"].n_unique() == 13
    assert frame["timestamp"].is_sorted()
    names = frame.group_by("task_run_id", maintain_order=True).agg("name", "task_name")
    assert {r["task_run_id"]: r["name"] for r in names.iter_rows(named=True)} == NAMES
    assert {r["task_run_id"]: r["task_name"] for r in names.iter_rows(named=True)} == {
        k: [v] * len(NAMES[k]) for k, v in TASK_NAMES.items()
    }
    assert frame["flow_name"].unique().to_list() == ["demo"]
    assert frame["flow_run_name"].unique().to_list() == ["papaya-pegasus"]
    terminal = frame["type"].cast(pl.String) == "COMPLETED"
    assert frame["details_untrackable_result"].to_list() == terminal.to_list()
    assert terminal.sum() == 4
    runs = frame.unique("task_run_id").sort("task_run_id")
    assert runs["run_count"].to_list() == [2, 1, 1, 1]  # flaky was retried once
    assert frame.equals(clean)
    assert sleeps == []


@pytest.mark.parametrize(
    ("source", "requests"),
    [
        (
            "states",
            # the server is probed once per client: its version and filter fields
            ["GET /api/admin/version", "GET /api/openapi.json"]
            + ["POST /api/task_runs/filter", "POST /api/flow_runs/filter", "POST /api/flows/filter"]
            + ["GET /api/task_run_states/"] * 4
            + ["POST /api/task_runs/filter"] * 2,
        ),
        (
            "events",
            ["POST /api/events/filter"]
            + ["GET /api/events/filter/next"] * 2
            + [
                "POST /api/task_runs/filter",
                "POST /api/flow_runs/filter",
                "POST /api/flows/filter",
            ]
            # flow-run events name the task runs that stand for subflow calls
            + ["POST /api/events/filter"],
        ),
    ],
)
def test_each_source_sends_the_requests_it_should(
    source: str, requests: list[str], connect: Callable[..., PrefectClient]
) -> None:
    router = Router()
    fetch(connect(router), source)
    assert router.paths() == requests


# -- windows ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        pytest.param(
            "2026-11-28T13:35:53.205Z",
            "2026-11-28T13:35:53.214Z",
            [(FLAKY, "Completed")]
            + [(EXTRACT, n) for n in NAMES[EXTRACT]]
            + [(CACHED_MISS, "Pending"), (CACHED_MISS, "Running")],
            id="runs-straddling-both-ends",
        ),
        pytest.param(
            "2026-11-28T13:35:53.191266Z",
            "2026-11-28T13:35:53.200833Z",
            [(FLAKY, "Pending")],
            id="since-inclusive-until-exclusive",
        ),
        pytest.param(
            "2026-11-28T13:35:53.220261Z",
            UNTIL,
            [(CACHED_HIT, "Cached")],
            id="only-the-last-state",
        ),
        pytest.param("2026-11-28T13:36:00Z", UNTIL, [], id="empty"),
    ],
)
@pytest.mark.parametrize("source", SOURCES)
def test_a_window_keeps_the_states_whose_timestamp_is_inside(
    source: str,
    since: str,
    until: str,
    expected: list[tuple[str, str]],
    connect: Callable[..., PrefectClient],
) -> None:
    frame = fetch(connect(Router()), source, since=since, until=until)
    assert frame.schema == STATES_SCHEMA
    assert list(zip(frame["task_run_id"], frame["name"], strict=True)) == expected


# -- faults that clear -------------------------------------------------------------------


class OneInThree:
    """Answer every third distinct request with a fault once; its retry goes through."""

    def __init__(self) -> None:
        self.count = itertools.count()
        self.faulted: set[tuple[str, str, bytes]] = set()
        self.kinds = itertools.cycle(["connect", "429", "503"])
        self.injected: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response | None:
        key = (request.method, str(request.url), request.content)
        with self.lock:
            if key in self.faulted or next(self.count) % 3:
                return None
            self.faulted.add(key)
            kind = next(self.kinds)
            self.injected.append(kind)
        if kind == "connect":
            raise httpx.ConnectError("connection reset by peer", request=request)
        if kind == "429":
            return httpx.Response(429, headers={"Retry-After": "2"}, json={"detail": "slow down"})
        return httpx.Response(503, text="Service Unavailable")


@pytest.mark.parametrize("source", SOURCES)
def test_faults_that_clear_change_no_row(
    source: str, connect: Callable[..., PrefectClient], clean: pl.DataFrame, sleeps: list[float]
) -> None:
    faults = OneInThree()
    router = Router(fault=faults)
    client = connect(router)
    frame = fetch(client, source)
    assert frame.equals(clean)
    assert len(faults.injected) >= 2
    assert client.stats.retries == len(faults.injected) == len(sleeps)
    assert len(router.requests) == client.stats.requests
    # the 429s asked for 2 s and got at least that
    assert sum(s >= 2 for s in sleeps) >= faults.injected.count("429")


# -- faults that do not clear, and broken pages ---------------------------------------------


def test_a_401_on_one_task_run_raises_instead_of_dropping_it(
    connect: Callable[..., PrefectClient], sleeps: list[float]
) -> None:
    def refuse_extract(request: httpx.Request) -> httpx.Response | None:
        if request.url.params.get("task_run_id") == EXTRACT:
            return response("error_401_wrong_auth")
        return None

    router = Router(fault=refuse_extract)
    with pytest.raises(AuthenticationError, match="refused with 401"):
        fetch(connect(router), "states")
    assert sleeps == []


def test_an_event_page_that_keeps_failing_raises_server_error(
    connect: Callable[..., PrefectClient], sleeps: list[float]
) -> None:
    def fail_next_pages(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/next"):
            return httpx.Response(502, text="Bad Gateway")
        return None

    router = Router(fault=fail_next_pages)
    with pytest.raises(ServerError, match="Gave up after 3 attempts"):
        fetch(connect(router, max_attempts=3), "events")
    assert router.paths().count("GET /api/events/filter/next") == 3
    assert len(sleeps) == 2


def _break(data: dict[str, Any], recording: str, index: int, path: str, value: Any) -> None:
    record = (
        data[recording]["events"][index]
        if recording.startswith("events")
        else data[recording][index]
    )
    *parents, leaf = path.split(".")
    for key in parents:
        record = record[key]
    if value is None:
        del record[leaf]
    else:
        record[leaf] = value


@pytest.mark.parametrize(
    ("source", "recording", "index", "path", "value", "message"),
    [
        ("states", f"task_run_states_{CACHED_HIT}", 2, "timestamp", None, "has no 'timestamp'"),
        ("states", f"task_run_states_{EXTRACT}", 0, "type", None, "has no 'type'"),
        ("states", f"task_run_states_{EXTRACT}", 1, "id", None, "has no 'id'"),
        ("states", f"task_run_states_{FLAKY}", 2, "type", "EXPLODED", "['EXPLODED']"),
        ("states", f"task_run_states_{FLAKY}", 0, "timestamp", "2026-11-28 13:35", "not ISO-8601"),
        ("states", "task_runs_filter", 3, "task_key", None, "has no 'task_key'"),
        (
            "states",
            "task_runs_filter",
            1,
            "expected_start_time",
            None,
            "without 'id' or 'expected_start_time'",
        ),
        (
            "events",
            "events_filter_page2",
            3,
            "payload.validated_state.type",
            None,
            "has no 'payload.validated_state.type'",
        ),
        ("events", "events_filter_page3", 2, "occurred", None, "has no 'occurred'"),
        (
            "events",
            "events_filter_page1",
            0,
            "payload.validated_state.type",
            "EXPLODED",
            "['EXPLODED']",
        ),
        ("events", "events_filter_page2", 0, "occurred", "13:35:53 yesterday", "not ISO-8601"),
        ("events", "task_runs_filter", 0, "task_key", None, "has no 'task_key'"),
    ],
)
def test_a_page_with_a_broken_record_raises_instead_of_returning_fewer_rows(
    source: str,
    recording: str,
    index: int,
    path: str,
    value: Any,
    message: str,
    connect: Callable[..., PrefectClient],
) -> None:
    router = Router()
    _break(router.data, recording, index, path, value)
    with pytest.raises(ResponseFormatError) as info:
        fetch(connect(router), source)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("recording", "body"),
    [
        ("events_filter_page2", {"detail": "not events"}),
        ("events_filter_page2", {"events": None}),
        ("task_runs_filter", {"detail": "not a list"}),
        ("flow_runs_filter", {"unexpected": "object"}),
    ],
)
def test_a_page_of_the_wrong_shape_raises(
    recording: str, body: dict[str, Any], connect: Callable[..., PrefectClient]
) -> None:
    router = Router()
    router.data[recording] = body
    source = "events" if recording.startswith("events") else "states"
    with pytest.raises(ResponseFormatError):
        fetch(connect(router), source)


# -- next_page is re-based onto the client's URL -------------------------------------------


@pytest.mark.parametrize(
    ("api_url", "path"),
    [
        (API, "/api/events/filter/next"),
        ("http://proxy.internal:8080/prefect/api", "/prefect/api/events/filter/next"),
    ],
)
def test_next_page_goes_to_the_clients_host_not_the_recorded_one(
    api_url: str, path: str, connect: Callable[..., PrefectClient], clean: pl.DataFrame
) -> None:
    router = Router()
    frame = fetch(connect(router, api_url), "events")
    assert frame.equals(clean)
    recorded_next = [recorded_body(f"events_filter_page{n}")["next_page"] for n in (1, 2)]
    assert all(url.startswith("http://127.0.0.1:4299/api/") for url in recorded_next)
    pages = [r for r in router.requests if r.url.path.endswith("/next")]
    origin = httpx.URL(api_url)
    assert [(r.url.scheme, r.url.host, r.url.port, r.url.path) for r in pages] == [
        (origin.scheme, origin.host, origin.port, path)
    ] * 2
    assert [r.url.params["page-token"] for r in pages] == [
        httpx.URL(url).params["page-token"] for url in recorded_next
    ]
    assert all(r.url.host != "127.0.0.1" for r in router.requests)


def test_next_page_that_is_not_an_events_link_raises(connect: Callable[..., PrefectClient]) -> None:
    router = Router()
    router.data["events_filter_page1"]["next_page"] = "http://127.0.0.1:4299/api/admin/settings"
    with pytest.raises(ResponseFormatError, match="does not point at /events/filter"):
        fetch(connect(router), "events")


# -- source="auto" ---------------------------------------------------------------------------


def _events_probe(request: httpx.Request) -> bool:
    return request.url.path.endswith("/events/filter") and json.loads(request.content)["limit"] == 1


@pytest.mark.clock(RECORDED_NOW)
def test_auto_picks_events_for_a_recent_window(
    connect: Callable[..., PrefectClient], clean: pl.DataFrame
) -> None:
    # the window ended an hour ago: events alone serve it, no question about older ones
    router = Router(fault=lambda r: response("events_filter_page1") if _events_probe(r) else None)
    frame = fetch(connect(router), "auto")
    assert frame.equals(clean)
    assert "GET /api/task_run_states/" not in router.paths()
    assert "GET /api/events/filter/next" in router.paths()
    assert not [r for r in router.requests if _events_probe(r)]


@pytest.mark.clock(UNTIL)  # the recorded window ends now
def test_the_freshest_states_are_read_per_run_while_events_lag(
    connect: Callable[..., PrefectClient], clean: pl.DataFrame
) -> None:
    """Issue 26.17: the event store lags the per-run states by seconds, so a window that
    ends now, read from events, missed its last states. Here the events of the window's
    last states are not stored yet; the per-run states hold every state."""
    lag = "2026-11-28T13:35:53.215"  # events from here on are not in the event store yet
    router = Router()
    for name in ("events_filter_page1", "events_filter_page2", "events_filter_page3"):
        page = router.data[name]
        page["events"] = [e for e in page["events"] if e["occurred"] < lag]
    late = clean.filter(pl.col("timestamp") >= datetime.fromisoformat(lag + "+00:00"))
    assert late.height == 4  # what reading events alone would miss
    frame = fetch(connect(router), "auto")
    assert frame.equals(clean)
    assert "GET /api/task_run_states/" in router.paths()


NOW = datetime.fromisoformat(RECORDED_NOW)


def _oldest_at(when: datetime) -> httpx.Response:
    """An events page whose first (oldest) event occurred at ``when``."""
    page = recorded_body("events_filter_page1")
    page["events"][0]["occurred"] = when.isoformat().replace("+00:00", "Z")
    return httpx.Response(200, json=page)


@pytest.mark.parametrize(
    ("age", "probe", "plan", "events_requests"),
    [
        # every window here ends now: its last FRESH_SPAN is read from states (events lag)
        pytest.param(timedelta(hours=1), None, ["events", "states"], 0, id="recent"),
        pytest.param(timedelta(days=6), None, ["events", "states"], 0, id="inside-retention"),
        pytest.param(
            timedelta(days=30), "older", ["events", "states"], 1, id="server-keeps-older-events"
        ),
        pytest.param(
            timedelta(days=30),
            "2026-11-21T15:00:00Z",
            ["states", "events", "states"],
            1,
            id="crosses",
        ),
        pytest.param(timedelta(days=30), "empty", ["states"], 1, id="no-events-at-all"),
        pytest.param(
            timedelta(days=30),
            "error_422_limit",
            ["states", "events", "states"],
            1,
            id="cloud-limit",
        ),
        pytest.param(timedelta(days=30), "error_404_no_api_prefix", ["states"], 1, id="refused"),
        pytest.param(timedelta(minutes=1), None, ["states"], 0, id="all-fresh"),
    ],
)
def test_plan_sources(
    age: timedelta,
    probe: str | None,
    plan: list[str],
    events_requests: int,
    connect: Callable[..., PrefectClient],
) -> None:
    def answer(request: httpx.Request) -> httpx.Response | None:
        if not request.url.path.endswith("/events/filter"):
            return None
        assert _events_probe(request)
        if probe == "empty":
            return httpx.Response(200, json={"events": [], "total": 0, "next_page": None})
        if probe == "older":
            return _oldest_at(NOW - timedelta(days=40))
        if probe and probe[0].isdigit():
            return _oldest_at(datetime.fromisoformat(probe.replace("Z", "+00:00")))
        return response(probe or "error_404_no_api_prefix")

    router = Router(fault=answer)
    client = connect(router)
    chosen = plan_sources(client, NOW - age, NOW, now=NOW)
    assert [s.source for s in chosen.segments] == plan
    assert chosen.segments[0].start == NOW - age
    assert chosen.segments[-1].end == NOW
    for before, after in itertools.pairwise(chosen.segments):
        assert before.end == after.start  # joined at one instant: no gap, no overlap
    if probe and probe[0].isdigit():
        assert chosen.segments[1].start == datetime.fromisoformat(probe.replace("Z", "+00:00"))
    if probe == "error_422_limit":  # split where retention ends
        assert chosen.segments[1].start == NOW - timedelta(days=7) + timedelta(hours=1)
    # the plan needs no server probe: the events request itself tells
    assert router.paths() == ["POST /api/events/filter"] * events_requests
    if (plan[-1] == "states" and plan != ["states"]) or age <= FRESH_SPAN:
        assert chosen.segments[-1].start == NOW - min(age, FRESH_SPAN)  # issue 26.17


def test_plan_sources_does_not_hide_other_errors(connect: Callable[..., PrefectClient]) -> None:
    router = Router(
        fault=lambda r: response("error_401_wrong_auth") if "events" in r.url.path else None
    )
    with pytest.raises(PrefectAPIError, match="401"):
        plan_sources(connect(router), NOW - timedelta(days=30), NOW, now=NOW)


def test_a_window_split_at_the_oldest_event_gives_the_same_rows_without_duplicates(
    connect: Callable[..., PrefectClient], clean: pl.DataFrame
) -> None:
    # events survive from the middle of the recorded window on: the older part is
    # read per run, the newer from events, and together they are the clean frame
    cut = datetime(2026, 11, 28, 13, 35, 53, 214000, tzinfo=UTC)
    router = Router(fault=lambda r: _oldest_at(cut) if _events_probe(r) else None)
    client = connect(router)
    start, end = window(SINCE, UNTIL)
    plan = plan_sources(client, start, end, now=end + timedelta(days=30))
    assert plan.label == "states+events"
    frames = list(stream_states(client, StateFilters(), start, end, source=plan))
    joined = pl.concat(frames).sort("timestamp", "id")
    assert joined["id"].is_unique().all()
    assert joined.equals(clean)
    assert "GET /api/task_run_states/" in router.paths()
    assert "GET /api/events/filter/next" in router.paths()


def test_a_server_without_the_end_time_filter_walks_end_time_desc(
    connect: Callable[..., PrefectClient], clean: pl.DataFrame
) -> None:
    # Prefect 3.2.15: expected_start_time, but no end_time filter (422). Runs expected
    # before the window that end inside it are found by walking END_TIME_DESC.
    router = Router(server="3.2.15")
    since = "2026-11-28T13:35:53.205Z"  # flaky (expected earlier) completes inside
    frame = fetch(connect(router), "states", since=since)
    assert frame.equals(clean.filter(pl.col("timestamp") >= datetime.fromisoformat(since)))
    assert FLAKY in frame["task_run_id"].to_list()
    bodies = [
        json.loads(r.content) for r in router.requests if r.url.path.endswith("/task_runs/filter")
    ]
    assert "END_TIME_DESC" in [b.get("sort") for b in bodies]
    assert not any("end_time" in b.get("task_runs", {}) for b in bodies)


@pytest.mark.parametrize("source", ["states", "auto"])
def test_a_prefect_2_server_gives_the_same_rows_by_start_time(
    source: str, connect: Callable[..., PrefectClient], clean: pl.DataFrame
) -> None:
    # Prefect 2.20.16: no expected_start_time / end_time filters (422), no events (404)
    router = Router(server="2.20.16")
    frame = fetch(connect(router), source)
    assert frame.equals(clean)
    bodies = [
        json.loads(r.content) for r in router.requests if r.url.path.endswith("/task_runs/filter")
    ]
    fields = {f for b in bodies for f in b.get("task_runs", {})}
    assert "expected_start_time" not in fields
    assert "end_time" not in fields
    assert {"start_time"} <= fields
    # auto asks the events endpoint once (404 on Prefect 2), then reads states
    events = [p for p in router.paths() if "/events/" in p]
    assert events == (["POST /api/events/filter"] if source == "auto" else [])


@pytest.mark.clock(RECORDED_NOW)
def test_events_refused_under_auto_falls_back_to_states_with_an_info_line(
    connect: Callable[..., PrefectClient],
    clean: pl.DataFrame,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a 3.x server whose events endpoint answers 404 (disabled, or a proxy blocks it)
    router = Router(
        fault=lambda r: response("error_404_no_api_prefix") if "/events/" in r.url.path else None
    )
    with caplog.at_level(logging.INFO, logger="trs_analytics.fetch"):
        frame = fetch(connect(router), "auto")
    assert frame.equals(clean)
    assert any("events endpoint refused (404)" in r.getMessage() for r in caplog.records)

"""Fault paths of the client, the pager and the record parsers, over recorded answers.

The real client talks to :class:`recorded.Router` (the recorded Prefect 3.9.1
server) through ``httpx.MockTransport``; each test breaks one thing the way a
misbehaving server or proxy does and checks the one rule that catches it:

* only a 2xx is data (a redirect is an error naming it, never followed);
* every request has an overall deadline, every retry wait is bounded and said;
* every paging loop is bounded (a token seen twice, more events than ``total``,
  a cursor or offset the server ignores);
* every record is checked field by field against the contract;
* no credential appears in any message.
"""

from __future__ import annotations

import copy
import gzip
import logging
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.clock import DISTANT
from tests.recorded import (
    CACHED_HIT,
    EXTRACT,
    FLAKY,
    SINCE,
    UNTIL,
    Router,
    recorded_body,
)
from trs_analytics.client import PrefectClient
from trs_analytics.exceptions import (
    ConfigurationError,
    PrefectAPIError,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from trs_analytics.fetch import fetch_states
from trs_analytics.fetch._pages import iter_offset_pages, iter_run_pages, read_by_ids

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import polars as pl

pytestmark = pytest.mark.clock(DISTANT)

API = "http://test/api"
KEY = "pnu_faultsuiteSECRETkey0123456789"


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def connect(sleeps: list[float]) -> Iterator[Callable[..., PrefectClient]]:
    clients: list[PrefectClient] = []

    def make(
        handler: Callable[[httpx.Request], httpx.Response], url: str = API, **kwargs: Any
    ) -> PrefectClient:
        client = PrefectClient(
            url, transport=httpx.MockTransport(handler), sleep=sleeps.append, **kwargs
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def fetch(client: PrefectClient, source: str) -> pl.DataFrame:
    return fetch_states(client=client, since=SINCE, until=UNTIL, source=source)  # type: ignore[arg-type]


# -- only a 2xx is data ----------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_error_that_names_it_and_is_never_followed(
    status: int, connect: Callable[..., PrefectClient]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "evil.example":
            raise AssertionError("the redirect was followed")
        # an empty event page in the body: what once moved the cursor
        body = {"events": [], "total": 0, "next_page": None}
        location = "http://me:pw@evil.example/api/events/filter?token=abc123"
        return httpx.Response(status, headers={"Location": location}, json=body)

    router = Router(fault=handler)
    with pytest.raises(PrefectAPIError) as caught:
        fetch(connect(router), "events")
    message = str(caught.value)
    assert f"answered {status}, a redirect to" in message
    assert "evil.example" in message
    assert "pw@" not in message
    assert "abc123" not in message
    assert caught.value.status_code == status
    assert len(router.requests) == 1


def test_a_204_is_a_success_with_no_body(connect: Callable[..., PrefectClient]) -> None:
    client = connect(lambda _: httpx.Response(204))
    assert client.post_events([{"event": "x"}]) == 1


# -- deadlines and retry waits ------------------------------------------------------------


class Trickle(httpx.SyncByteStream):
    """A body sent a few bytes at a time, ``pause`` seconds apart."""

    def __init__(self, chunks: int, pause: float) -> None:
        self.chunks, self.pause = chunks, pause

    def __iter__(self) -> Iterator[bytes]:
        yield b"["
        for _ in range(self.chunks):
            time.sleep(self.pause)
            yield b"1,"
        yield b"1]"


def test_a_body_sent_slowly_hits_the_overall_deadline(
    connect: Callable[..., PrefectClient],
) -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Trickle(100, 0.05))

    client = connect(handler, timeout=5.0, deadline=0.5, max_attempts=2)
    started = time.monotonic()
    with pytest.raises(TransportError, match=r"0\.5 s deadline"):
        client.get("/health")
    assert time.monotonic() - started < 2.5  # 2 attempts of 0.5 s, not 100 x 0.05 x 2
    assert client.stats.requests == 2


def test_a_quick_body_is_not_cut_by_the_deadline(connect: Callable[..., PrefectClient]) -> None:
    client = connect(lambda _: httpx.Response(200, stream=Trickle(5, 0.01)), deadline=5.0)
    assert client.get("/x") == [1] * 6


def test_the_default_deadline_is_ten_timeouts(connect: Callable[..., PrefectClient]) -> None:
    # each chunk comes well within the 0.05 s per-read timeout; the whole body does not
    client = connect(lambda _: httpx.Response(200, stream=Trickle(100, 0.02)), timeout=0.05)
    with pytest.raises(TransportError, match=r"0\.5 s deadline"):
        client.get("/x")


def test_a_huge_retry_after_gives_up_at_once_within_the_budget(
    connect: Callable[..., PrefectClient], sleeps: list[float]
) -> None:
    answer = httpx.Response(429, headers={"Retry-After": "1000000000"}, json={"detail": "x"})
    client = connect(lambda _: answer, max_retry_wait=5)
    with pytest.raises(ServerError, match="retry budget") as caught:
        client.get("/x")
    assert sleeps == []  # 300 s (capped Retry-After) > 5 s: no wait at all
    assert "Gave up after 1 attempts" in str(caught.value)
    assert "the next wait would be 300.0 s (Retry-After 1e+09 s)" in str(caught.value)


def test_retry_waits_add_up_to_at_most_the_budget_and_each_says_how_long(
    connect: Callable[..., PrefectClient], sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    answer = httpx.Response(503, headers={"Retry-After": "2"}, json={"detail": "x"})
    client = connect(lambda _: answer, max_retry_wait=5, max_attempts=10)
    with caplog.at_level(logging.WARNING, "trs_analytics.client"), pytest.raises(ServerError):
        client.get("/x")
    assert sleeps == [2.0, 2.0]
    waits = [r.getMessage() for r in caplog.records]
    assert waits[0].startswith("waiting 2.0 s before attempt 2 of 10, after: GET")
    assert len(waits) == 2


# -- bodies that cannot be read ---------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "content", "message"),
    [
        ({"Content-Encoding": "gzip"}, b"not gzip at all", "cannot be decoded"),
        (
            {"Content-Encoding": "gzip"},
            gzip.compress(b"[1]")[:10] + b"\xff" * 20,
            "cannot be decoded",
        ),
        ({}, b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        ({}, b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
    ],
    ids=["bad-gzip", "gzip-header-then-garbage", "deep-list", "deep-object"],
)
def test_an_unreadable_body_is_a_server_error(
    headers: dict[str, str], content: bytes, message: str, connect: Callable[..., PrefectClient]
) -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"Content-Type": "application/json", **headers}, content=content
        )

    with pytest.raises(ServerError, match=message):
        connect(handler).get("/x")


def test_an_html_login_page_under_api_gets_its_own_hint(
    connect: Callable[..., PrefectClient],
) -> None:
    page = httpx.Response(200, headers={"Content-Type": "text/html"}, text="<form>login</form>")
    with pytest.raises(ResponseFormatError, match="login page") as caught:
        connect(lambda _: page).get("/flows/filter")
    assert "the API lives under /api" not in str(caught.value)


# -- the client's arguments ------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": -1},
        {"timeout": 0},
        {"timeout": "30"},
        {"timeout": float("nan")},
        {"deadline": -5},
        {"max_retry_wait": -1},
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"concurrency": True},
        {"requests_per_minute": 0},
        {"api_key": 123},
    ],
    ids=str,
)
def test_a_bad_client_argument_fails_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        PrefectClient(API, **kwargs)


@pytest.mark.parametrize("url", ["http://[::1/api", "http://[::1]:port/api", 123])
def test_an_invalid_url_is_a_configuration_error(url: Any) -> None:
    with pytest.raises(ConfigurationError):
        PrefectClient(url)


def test_a_tls_failure_is_a_configuration_error_not_try_again_later(
    connect: Callable[..., PrefectClient], sleeps: list[float]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("handshake", request=request) from ssl.SSLError("WRONG_VERSION")

    with pytest.raises(ConfigurationError, match="TLS handshake"):
        connect(handler, "https://test/api").get("/x")
    assert sleeps == []


def test_a_host_name_that_does_not_resolve_fails_at_once_with_a_hint(
    connect: Callable[..., PrefectClient], sleeps: list[float]
) -> None:
    """Issue 26.12: a DNS typo was retried 6 times over 15 s and called transient.

    The error is the one httpx raised for ``http://no-such-host.invalid:4310/api``
    (recorded here: the resolver of this machine is not on loopback).
    """
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        cause = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request) from cause

    with pytest.raises(ConfigurationError) as caught:
        connect(handler, "http://locahost:4310/api").get("/health")
    assert str(caught.value) == (
        "GET http://locahost:4310/api/health failed: the host name 'locahost' does not "
        "resolve ([Errno -2] Name or service not known). Hint: check the host name in the "
        "API URL for a typo (such as locahost for localhost)."
    )
    assert (len(sent), sleeps) == (1, [])


def test_a_resolver_that_cannot_be_reached_is_retried_as_transient(
    connect: Callable[..., PrefectClient], sleeps: list[float]
) -> None:
    """EAI_AGAIN says the resolver did not answer, not that the name is unknown."""

    def handler(request: httpx.Request) -> httpx.Response:
        cause = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        raise httpx.ConnectError("[Errno -3] Temporary failure", request=request) from cause

    with pytest.raises(TransportError, match="Gave up after 3 attempts"):
        connect(handler, max_attempts=3).get("/health")
    assert len(sleeps) == 2


# -- no credential in any message -----------------------------------------------------


def echo_headers(status: int) -> Callable[[httpx.Request], httpx.Response]:
    """A server that echoes the request's headers and URL into its error body."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = {"detail": {"url": str(request.url), "headers": dict(request.headers)}}
        return httpx.Response(status, json=body)

    return handler


@pytest.mark.parametrize("status", [400, 404, 409, 422, 500, 503])
@pytest.mark.parametrize("auth", ["api_key", "auth_string", "userinfo", "query"])
def test_a_server_echoing_the_credentials_never_gets_them_into_a_message(
    status: int,
    auth: str,
    connect: Callable[..., PrefectClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kwargs: dict[str, Any] = {"max_attempts": 2}
    url = API
    if auth == "api_key":
        kwargs["api_key"] = KEY
    elif auth == "auth_string":
        kwargs["auth_string"] = f"admin:{KEY}"
    elif auth == "userinfo":
        url = f"http://admin:{KEY}@test/api"
    else:
        url = f"http://test/api?token={KEY}"
    client = connect(echo_headers(status), url, **kwargs)
    with caplog.at_level(logging.DEBUG), pytest.raises(PrefectAPIError) as caught:
        client.post("/flows/filter", json_body={})
    shown = [str(caught.value), caught.value.url, repr(client), client.api_url, caplog.text]
    for text in shown:
        assert KEY not in text
        assert "YWRtaW46" not in text  # the start of base64("admin:")
    if status != 404:  # a 404 shows no body: nothing to redact
        assert "***" in str(caught.value)


def test_a_token_in_the_url_query_is_sent_with_every_request_and_kept_out_of_urls(
    connect: Callable[..., PrefectClient],
) -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json=[])

    client = connect(handler, f"{API}/?token={KEY}")
    client.get("/task_run_states/", params={"task_run_id": "t1"})
    client.post("/flows/filter", json_body={})
    client.get(f"{API}/events/filter/next?page-token=p1")  # a next_page link keeps its token
    assert client.api_url == API
    assert [u.params.get("token") for u in seen] == [KEY, KEY, KEY]
    assert seen[0].params["task_run_id"] == "t1"
    assert seen[0].path == "/api/task_run_states/"
    assert seen[2].params["page-token"] == "p1"


# -- bounded paging -----------------------------------------------------------------------


def test_a_next_page_that_points_to_itself_stops_at_once(
    connect: Callable[..., PrefectClient],
) -> None:
    page2 = recorded_body("events_filter_page2")

    def loop(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/next"):
            return httpx.Response(200, json={**page2, "next_page": str(request.url)})
        return None

    router = Router(fault=loop)
    with pytest.raises(ResponseFormatError, match="next_page link it had sent before"):
        fetch(connect(router), "events")
    assert router.paths().count("GET /api/events/filter/next") <= 3


def test_a_next_page_cycle_of_two_stops_too(connect: Callable[..., PrefectClient]) -> None:
    first = recorded_body("events_filter_page1")
    page2 = recorded_body("events_filter_page2")

    def cycle(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/next"):
            # page 2 points back at page 2's own link: the chain 1 -> 2 -> 2
            return httpx.Response(200, json={**page2, "next_page": first["next_page"]})
        return None

    with pytest.raises(ResponseFormatError, match="sent before"):
        fetch(connect(Router(fault=cycle)), "events")


def test_an_endless_stream_of_pages_stops_at_what_total_allows(
    connect: Callable[..., PrefectClient],
) -> None:
    page2 = recorded_body("events_filter_page2")
    made_up = iter(range(10**9))

    def endless(request: httpx.Request) -> httpx.Response | None:
        if not request.url.path.endswith("/next"):
            return None
        n = next(made_up)
        events = []
        for i, event in enumerate(page2["events"]):
            fresh = copy.deepcopy(event)
            fresh["id"] = f"made-up-{n}-{i}"
            events.append(fresh)
        token = f"http://test/api/events/filter/next?page-token=t{n}"
        return httpx.Response(200, json={**page2, "events": events, "next_page": token})

    router = Router(fault=endless)
    with pytest.raises(ResponseFormatError, match="counted 13 \\(total\\)"):
        fetch(connect(router), "events")
    # 13 events said, 2 x 13 + 10 pages of 50 allowed: about 100 pages of 5
    assert router.paths().count("GET /api/events/filter/next") <= (2 * 13 + 500) // 5 + 2


def _runs(count: int, expected: str) -> list[dict[str, Any]]:
    run = recorded_body("task_runs_filter")[0]
    return [{**run, "id": f"run-{i}", "expected_start_time": expected} for i in range(count)]


def test_a_task_run_filter_that_ignores_the_cursor_stops(
    connect: Callable[..., PrefectClient],
) -> None:
    runs = recorded_body("task_runs_filter")[:2]  # two runs, two expected times

    def ignore(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=runs)

    client = connect(ignore)
    pages = iter_run_pages(client, {}, page_size=2)
    assert [r["id"] for r in next(pages)] == [r["id"] for r in runs]
    with pytest.raises(ResponseFormatError, match="before the cursor"):
        list(pages)


def test_a_task_run_filter_that_ignores_the_offset_at_one_timestamp_stops(
    connect: Callable[..., PrefectClient],
) -> None:
    same = _runs(2, "2026-11-28T13:35:53.191266Z")
    client = connect(lambda _: httpx.Response(200, json=same))
    with pytest.raises(ResponseFormatError, match="answered offset 0 with runs read before"):
        list(iter_run_pages(client, {}, page_size=2))
    assert client.stats.requests == 3


@pytest.mark.parametrize("sort", ["EXPECTED_START_TIME_ASC", "END_TIME_DESC"])
def test_an_offset_walk_on_a_server_that_ignores_the_offset_stops(
    sort: str, connect: Callable[..., PrefectClient]
) -> None:
    same = _runs(2, "2026-11-28T13:35:53.191266Z")
    client = connect(lambda _: httpx.Response(200, json=same))
    with pytest.raises(ResponseFormatError, match="runs read before"):
        list(iter_offset_pages(client, {}, sort=sort, page_size=2))
    assert client.stats.requests == 2


# -- records checked field by field -----------------------------------------------------


def _set(data: dict[str, Any], recording: str, index: int | None, path: str, value: Any) -> None:
    target: Any = data[recording]
    if recording.startswith("events"):
        target = target["events"]
    if index is None:
        data[recording] = value if not recording.startswith("events") else target
        return
    if not path:
        target[index] = value
        return
    record = target[index]
    *parents, leaf = path.split(".")
    for key in parents:
        record = record[key]
    record[leaf] = value


BROKEN = [
    # (source, recording, index, path, value, field named)
    ("states", "task_runs_filter", 0, "tags", "alpha,beta", "'tags' = \"alpha,beta\""),
    ("events", "task_runs_filter", 0, "tags", "alpha,beta", "'tags' = \"alpha,beta\""),
    ("states", "task_runs_filter", 1, "tags", ["a", 1], "a list of strings"),
    ("states", "task_runs_filter", 2, "run_count", "2", "'run_count' = \"2\""),
    ("events", "task_runs_filter", 2, "run_count", True, "'run_count' = true"),
    ("states", "task_runs_filter", 2, "run_count", 2**70, "expected a 64-bit integer"),
    ("states", "task_runs_filter", 0, "name", {"x": 1}, "'name' = {\"x\": 1}"),
    ("events", "task_runs_filter", 1, "expected_start_time", None, "'expected_start_time'"),
    ("states", "flows_filter", 0, "name", ["demo"], "'name' = [\"demo\"]"),
    ("events", "flow_runs_filter", 0, "name", 7, "'name' = 7"),
    (
        "states",
        f"task_run_states_{FLAKY}",
        1,
        "state_details.retriable",
        "yes",
        "'state_details.retriable' = \"yes\"",
    ),
    ("states", f"task_run_states_{EXTRACT}", 0, "state_details", [], "'state_details' = []"),
    ("states", f"task_run_states_{EXTRACT}", 0, "", "Pending", "'state' = \"Pending\""),
    ("states", f"task_run_states_{CACHED_HIT}", 0, "name", 3, "'name' = 3"),
    ("states", f"task_run_states_{CACHED_HIT}", 1, "message", {"m": 1}, "'message'"),
    ("events", "events_filter_page1", 0, "", None, "an event that is 'None'"),
    ("events", "events_filter_page1", 1, "", "event", "an event that is 'event'"),
    ("events", "events_filter_page2", 0, "payload", "x", "'payload' is 'x'"),
    ("events", "events_filter_page2", 1, "related", {"a": 1}, "'related' is"),
    ("events", "events_filter_page2", 1, "related", ["x"], "'related' holds"),
    (
        "events",
        "events_filter_page2",
        2,
        "payload.validated_state",
        "COMPLETED",
        "'payload.validated_state' = \"COMPLETED\"",
    ),
    (
        "events",
        "events_filter_page2",
        2,
        "payload.validated_state.state_details",
        [1],
        "'payload.validated_state.state_details' = [1]",
    ),
    (
        "events",
        "events_filter_page3",
        0,
        "payload.validated_state.name",
        {"n": 1},
        "'payload.validated_state.name'",
    ),
    ("events", "events_filter_page3", 1, "id", 42, "'id' = 42"),
    ("events", "events_filter_page3", 1, "occurred", 1700000000, "'occurred' = 1700000000"),
]


@pytest.mark.parametrize(
    ("source", "recording", "index", "path", "value", "field"),
    BROKEN,
    ids=[f"{b[0]}-{b[1][:20]}-{b[2]}-{b[3] or 'record'}" for b in BROKEN],
)
def test_a_record_of_the_wrong_type_is_refused_naming_the_field(
    source: str,
    recording: str,
    index: int,
    path: str,
    value: Any,
    field: str,
    connect: Callable[..., PrefectClient],
) -> None:
    router = Router()
    _set(router.data, recording, index, path, value)
    with pytest.raises(ResponseFormatError) as caught:
        fetch(connect(router), source)
    assert field in str(caught.value)


@pytest.mark.parametrize("record", ["demo", None, {"id": 5}, {"name": "no id"}, [1]])
def test_a_record_read_by_id_must_be_an_object_with_a_string_id(
    record: Any, connect: Callable[..., PrefectClient]
) -> None:
    client = connect(lambda _: httpx.Response(200, json=[record]))
    with pytest.raises(ResponseFormatError, match="expected an object with a string 'id'"):
        list(read_by_ids(client, "flows", ["f1"]))


def test_the_url_query_token_goes_with_the_csrf_token_request_too(
    connect: Callable[..., PrefectClient],
) -> None:
    seen: list[httpx.URL] = []

    def csrf_server(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        if request.url.path.endswith("/csrf-token"):
            return httpx.Response(200, json={"token": "t0k"})
        if request.headers.get("Prefect-Csrf-Token") != "t0k":
            return httpx.Response(403, json={"detail": "Missing CSRF token."})
        return httpx.Response(200, json=[])

    client = connect(csrf_server, f"{API}?token={KEY}")
    assert client.post("/flows/filter", json_body={}) == []
    assert [u.path for u in seen] == ["/api/flows/filter", "/api/csrf-token", "/api/flows/filter"]
    assert all(u.params.get("token") == KEY for u in seen)
    assert seen[1].params["client"]

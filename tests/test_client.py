"""PrefectClient: retries, typed errors, CSRF, secrets and the request budget.

Every test drives the real client through ``httpx.MockTransport``; the error
bodies are the ones a Prefect 3.9.1 server sent (``tests/recordings``). Waits go
to an injected ``sleep``, so nothing here sleeps.
"""

from __future__ import annotations

import base64
import email.utils
import itertools
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.recorded import recorded_body, response
from trs_analytics.client import RETRY_STATUSES, PrefectClient, RequestBudget, parse_retry_after
from trs_analytics.exceptions import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PrefectAPIError,
    RequestRejectedError,
    ResponseFormatError,
    ServerError,
    TransportError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

API = "http://test/api"
OK = {"ok": True}
KEY = "pnu_s3cretKEY0123456789"
AUTH = "admin:pa55-w0rd"


class Script:
    """A handler that answers requests from a list, then ``OK`` for ever after."""

    def __init__(self, answers: Iterable[httpx.Response | Exception]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.answers:
            return httpx.Response(200, json=OK)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def make_client(
    handler: Callable[[httpx.Request], httpx.Response],
    sleeps: list[float],
    url: str = API,
    **kwargs: Any,
) -> PrefectClient:
    return PrefectClient(url, transport=httpx.MockTransport(handler), sleep=sleeps.append, **kwargs)


# -- retries ---------------------------------------------------------------


def test_429_with_retry_after_seconds_waits_that_long_then_succeeds() -> None:
    script = Script([httpx.Response(429, headers={"Retry-After": "3"}, json={"detail": "slow"})])
    sleeps: list[float] = []
    with make_client(script, sleeps) as client:
        assert client.get("/health") == OK
        assert (client.stats.requests, client.stats.retries) == (2, 1)
    assert len(script.requests) == 2
    # the jittered backoff (<= 0.5 s on the first retry) is below what the server asked
    assert sleeps == [3.0]


def test_retry_after_as_http_date_is_honoured() -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    header = email.utils.format_datetime(when.replace(microsecond=0), usegmt=True)
    script = Script([httpx.Response(429, headers={"Retry-After": header})])
    sleeps: list[float] = []
    with make_client(script, sleeps) as client:
        assert client.get("/health") == OK
    assert len(sleeps) == 1
    assert 110 <= sleeps[0] <= 120


def test_retry_after_longer_than_max_retry_after_is_capped() -> None:
    script = Script([httpx.Response(503, headers={"Retry-After": "86400"})])
    sleeps: list[float] = []
    with make_client(script, sleeps, max_retry_after=60) as client:
        assert client.get("/health") == OK
    assert sleeps == [60.0]


def test_503_twice_then_200_backs_off_within_the_growing_ceiling() -> None:
    script = Script([httpx.Response(503, text="busy"), httpx.Response(503, text="busy")])
    sleeps: list[float] = []
    with make_client(script, sleeps, backoff_initial=1.0) as client:
        assert client.post("/task_runs/filter", json_body={}) == OK
        assert (client.stats.requests, client.stats.retries) == (3, 2)
    assert len(script.requests) == 3
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1.0
    assert 0 <= sleeps[1] <= 2.0


@pytest.mark.parametrize("status", sorted(RETRY_STATUSES))
def test_each_retryable_status_is_retried_once_then_succeeds(status: int) -> None:
    script = Script([httpx.Response(status, json={"detail": "later"})])
    sleeps: list[float] = []
    with make_client(script, sleeps) as client:
        assert client.get("/health") == OK
    assert len(script.requests) == 2
    assert len(sleeps) == 1


def test_500_forever_gives_up_after_exactly_max_attempts() -> None:
    script = Script([httpx.Response(500, json={"detail": "boom"}) for _ in range(10)])
    sleeps: list[float] = []
    with make_client(script, sleeps, max_attempts=4) as client, pytest.raises(ServerError) as info:
        client.get("/task_run_states/", params={"task_run_id": "x"})
    assert len(script.requests) == 4
    assert len(sleeps) == 3
    assert info.value.status_code == 500
    assert info.value.url.startswith(f"{API}/task_run_states/")
    message = str(info.value)
    assert "kept failing with 500" in message
    assert '"boom"' in message
    assert message.endswith("Gave up after 4 attempts.")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (httpx.ConnectError("connection refused"), "failed"),
        (httpx.ReadTimeout("read timed out"), "timed out"),
        (httpx.RemoteProtocolError("server disconnected"), "failed"),
    ],
)
def test_transport_errors_are_retried_then_raised_as_transport_error(
    error: httpx.TransportError, kind: str
) -> None:
    script = Script([error] * 10)
    sleeps: list[float] = []
    with (
        make_client(script, sleeps, max_attempts=3) as client,
        pytest.raises(TransportError) as info,
    ):
        client.get("/health")
    assert len(script.requests) == 3
    assert len(sleeps) == 2
    assert isinstance(info.value.__cause__, type(error))
    message = str(info.value)
    assert message.startswith(f"GET {API}/health {kind}: {error}.")
    assert "Hint: is the Prefect server running" in message
    assert message.endswith("Gave up after 3 attempts.")


def test_a_connection_error_that_clears_is_invisible() -> None:
    script = Script([httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
    sleeps: list[float] = []
    with make_client(script, sleeps) as client:
        assert client.post("/flows/filter", json_body={"limit": 1}) == OK
    assert len(script.requests) == 3
    assert [r.content for r in script.requests] == [b'{"limit":1}'] * 3


# -- typed errors, not retried ----------------------------------------------


@pytest.mark.parametrize(
    ("answer", "url", "error", "fragments"),
    [
        pytest.param(
            response("error_401_wrong_auth"),
            API,
            AuthenticationError,
            ["refused with 401", "Unauthorized", "PREFECT_API_AUTH_STRING"],
            id="401",
        ),
        pytest.param(
            httpx.Response(403, json={"detail": "Forbidden: not a member of this workspace"}),
            API,
            AuthenticationError,
            ["refused with 403", "not a member of this workspace", "PREFECT_API_KEY"],
            id="403-not-csrf",
        ),
        pytest.param(
            response("error_404_no_api_prefix"),
            "http://test:4200",
            NotFoundError,
            ["answered 404 Not Found", "ends in /api", "http://127.0.0.1:4200/api"],
            id="404-without-api",
        ),
        pytest.param(
            response("error_404_no_api_prefix"),
            API,
            NotFoundError,
            ["answered 404 Not Found", "Prefect version"],
            id="404-with-api",
        ),
        pytest.param(
            response("error_422_limit"),
            API,
            RequestRejectedError,
            ["rejected with 422", "Invalid limit: must be less than or equal to 200."],
            id="422",
        ),
        pytest.param(
            httpx.Response(400, json={"detail": "bad request"}),
            API,
            PrefectAPIError,
            ["answered 400", "bad request"],
            id="400",
        ),
    ],
)
def test_client_errors_raise_a_typed_error_after_one_request(
    answer: httpx.Response, url: str, error: type[PrefectAPIError], fragments: list[str]
) -> None:
    script = Script([answer])
    sleeps: list[float] = []
    with make_client(script, sleeps, url=url) as client, pytest.raises(error) as info:
        client.post("/task_runs/filter", json_body={"limit": 500})
    assert type(info.value) is error
    assert len(script.requests) == 1
    assert sleeps == []
    assert info.value.status_code == answer.status_code
    assert info.value.url == f"{url}/task_runs/filter"
    for fragment in fragments:
        assert fragment in str(info.value)


def test_a_truncated_json_body_raises_response_format_error() -> None:
    page = response("task_runs_filter")
    script = Script([response("task_runs_filter", body=page.text[: len(page.text) // 2])])
    sleeps: list[float] = []
    with make_client(script, sleeps) as client, pytest.raises(ResponseFormatError) as info:
        client.post("/task_runs/filter", json_body={})
    assert len(script.requests) == 1
    assert info.value.status_code == 200
    assert "not valid JSON" in str(info.value)
    assert repr(page.text[:80]) in str(info.value)


def test_the_ui_html_page_raises_response_format_error_with_the_api_hint() -> None:
    html = "<!doctype html><html><head><title>Prefect Server</title></head></html>"
    script = Script([httpx.Response(200, html=html)])
    sleeps: list[float] = []
    client = make_client(script, sleeps, url="http://127.0.0.1:4200")
    with client, pytest.raises(ResponseFormatError) as info:
        client.get("/task_run_states/")
    assert "HTML page, not JSON" in str(info.value)
    assert "the API lives under /api" in str(info.value)
    assert len(script.requests) == 1


def test_recorded_success_body_is_decoded() -> None:
    script = Script([response("flows_filter")])
    with make_client(script, []) as client:
        assert client.post("/flows/filter", json_body={}) == recorded_body("flows_filter")


# -- CSRF --------------------------------------------------------------------


class CsrfServer:
    """A server with CSRF protection: POSTs need a token issued to their client id."""

    def __init__(self) -> None:
        self.issued: list[tuple[str, str]] = []  # (client id, token)
        self.requests: list[httpx.Request] = []

    def revoke(self) -> None:
        """Expire every token issued so far (the server's tokens last one hour)."""
        self.issued = [(client, "revoked") for client, _ in self.issued]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/api/csrf-token":
            body = recorded_body("csrf_token")
            client = request.url.params["client"]
            token = body["token"] + (f"-{len(self.issued)}" if self.issued else "")
            self.issued.append((client, token))
            return httpx.Response(200, json={**body, "token": token, "client": client})
        if request.method == "GET":
            return httpx.Response(200, json=OK)
        sent = request.headers.get("Prefect-Csrf-Token")
        if sent is None:
            return response("error_403_csrf_missing")
        if (request.headers.get("Prefect-Csrf-Client"), sent) not in self.issued:
            return httpx.Response(403, json={"detail": "Invalid CSRF token or client identifier."})
        return httpx.Response(200, json=OK)

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]


def test_csrf_token_is_fetched_on_the_first_post_and_reused() -> None:
    server = CsrfServer()
    with make_client(server, []) as client:
        assert client.get("/health") == OK
        assert client.post("/task_runs/filter", json_body={}) == OK
        assert client.post("/flows/filter", json_body={}) == OK
    assert server.paths() == [
        "GET /api/health",
        "POST /api/task_runs/filter",
        "GET /api/csrf-token",
        "POST /api/task_runs/filter",
        "POST /api/flows/filter",
    ]
    token = recorded_body("csrf_token")["token"]
    assert [r.headers.get("Prefect-Csrf-Token") for r in server.requests] == [
        None,
        None,
        None,
        token,
        token,
    ]
    client_id = server.requests[2].url.params["client"]
    assert server.requests[3].headers["Prefect-Csrf-Client"] == client_id
    assert server.requests[4].headers["Prefect-Csrf-Client"] == client_id


def test_an_invalid_csrf_token_is_refreshed_once() -> None:
    server = CsrfServer()
    with make_client(server, []) as client:
        assert client.post("/task_runs/filter", json_body={}) == OK
        server.revoke()
        assert client.post("/task_runs/filter", json_body={}) == OK
    assert server.paths()[3:] == [
        "POST /api/task_runs/filter",
        "GET /api/csrf-token",
        "POST /api/task_runs/filter",
    ]
    assert server.requests[3].headers["Prefect-Csrf-Token"] == recorded_body("csrf_token")["token"]
    assert server.requests[5].headers["Prefect-Csrf-Token"] == server.issued[-1][1]
    assert server.issued[-1][1].endswith("-1")


def test_a_server_that_rejects_every_csrf_token_raises_without_looping() -> None:
    server = CsrfServer()

    def reject(request: httpx.Request) -> httpx.Response:  # every token expires at once
        answer = server(request)
        server.revoke()
        return answer

    sleeps: list[float] = []
    with make_client(reject, sleeps) as client, pytest.raises(AuthenticationError) as info:
        client.post("/task_runs/filter", json_body={})
    assert server.paths() == [
        "POST /api/task_runs/filter",
        "GET /api/csrf-token",
        "POST /api/task_runs/filter",
    ]
    assert sleeps == []
    assert info.value.status_code == 403
    assert "Invalid CSRF token" in str(info.value)


# -- secrets -----------------------------------------------------------------


BASIC = "Basic " + base64.b64encode(AUTH.encode()).decode()


@pytest.mark.parametrize(
    ("api_key", "auth_string", "authorization"),
    [
        (KEY, None, f"Bearer {KEY}"),
        (None, AUTH, BASIC),
        (KEY, AUTH, f"Bearer {KEY}"),  # an API key wins over basic auth
        (None, None, None),
    ],
)
def test_authorization_header_is_sent_exactly(
    api_key: str | None, auth_string: str | None, authorization: str | None
) -> None:
    script = Script([])
    with make_client(script, [], api_key=api_key, auth_string=auth_string) as client:
        client.get("/health")
        client.post("/flows/filter", json_body={})
    assert [r.headers.get("Authorization") for r in script.requests] == [authorization] * 2


def test_credentials_in_the_url_are_sent_as_basic_auth_and_dropped_from_the_url() -> None:
    script = Script([])
    with make_client(script, [], url="http://admin:pa55-w0rd@test/api") as client:
        assert client.settings.api_url == API
        client.get("/health")
    assert script.requests[0].headers["Authorization"] == BASIC
    assert str(script.requests[0].url) == f"{API}/health"


@pytest.mark.parametrize(
    ("kwargs", "secret", "auth"),
    [
        ({"api_key": KEY}, KEY, "api_key"),
        ({"auth_string": AUTH}, AUTH.split(":")[1], "basic"),
        ({"url": "http://admin:pa55-w0rd@test/api"}, "pa55-w0rd", "basic"),
    ],
)
@pytest.mark.parametrize(
    "answers",
    [
        pytest.param([response("error_401_wrong_auth")], id="401"),
        pytest.param([httpx.Response(502, text="bad gateway")] * 3, id="502"),
        pytest.param([httpx.ConnectError("connection refused")] * 3, id="connect"),
        pytest.param([httpx.Response(200, text='{"trunc')], id="bad-json"),
    ],
)
def test_secrets_stay_out_of_reprs_errors_and_logs(
    kwargs: dict[str, str],
    secret: str,
    auth: str,
    answers: list[httpx.Response | Exception],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sleeps: list[float] = []
    with make_client(Script(answers), sleeps, max_attempts=3, **kwargs) as client:
        assert repr(client) == f"<PrefectClient {client.api_url} auth={auth}>"
        with pytest.raises((PrefectAPIError, TransportError)) as info:
            client.post("/task_runs/filter", json_body={})
        exposed = [
            repr(client),
            repr(client.settings),
            client.api_url,
            str(info.value),
            repr(info.value),
            getattr(info.value, "url", ""),
            *(record.getMessage() for record in caplog.records),
        ]
    assert caplog.records or len(answers) == 1  # retried failures were logged
    for text in exposed:
        assert secret not in text
        assert base64.b64encode(AUTH.encode()).decode() not in text


# -- parse_retry_after ---------------------------------------------------------

NOW = datetime(2015, 10, 21, 7, 28, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 3 ", 3.0),
        ("0.5", 0.5),
        ("0", 0.0),
        ("-4", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past
        ("Wed, 21 Oct 2015 07:28:30", 30.0),  # no zone: read as UTC
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


# -- request budget ----------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_budget_of_120_a_minute_spaces_requests_half_a_second_after_the_burst() -> None:
    clock = FakeClock()
    budget = RequestBudget(120, clock=clock, sleep=clock.sleep)
    sent_at = []
    for _ in range(32):
        budget.acquire()
        sent_at.append(clock.now)
    assert budget.capacity == 12
    assert sent_at[:12] == [0.0] * 12  # the burst goes out at once
    gaps = [b - a for a, b in itertools.pairwise(sent_at[12:])]
    assert sent_at[12] == pytest.approx(0.5)
    assert gaps == pytest.approx([0.5] * 19)
    assert sent_at[-1] == pytest.approx(10.0)  # 32 requests: 12 at once, then 20 at 2 a second


def test_budget_refills_while_idle_but_never_above_the_burst() -> None:
    clock = FakeClock()
    budget = RequestBudget(60, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        budget.acquire()
    assert clock.sleeps == []
    clock.now += 3600  # an hour idle refills 3 tokens, not 3,600
    for _ in range(4):
        budget.acquire()
    assert clock.sleeps == pytest.approx([1.0])


@pytest.mark.parametrize("per_minute", [0, -1])
def test_budget_refuses_a_rate_that_is_not_positive(per_minute: float) -> None:
    with pytest.raises(ConfigurationError, match="must be positive"):
        RequestBudget(per_minute)


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"concurrency": 0}], ids=["attempts", "concurrency"]
)
def test_client_refuses_fewer_than_one_attempt_or_worker(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="at least 1"):
        PrefectClient(API, **kwargs)


# -- map ------------------------------------------------------------------------


def test_map_keeps_order_and_raises_the_first_error() -> None:
    with make_client(Script([]), [], concurrency=3) as client:
        assert list(client.map(lambda i: i * 2, range(50))) == list(range(0, 100, 2))

        def fail_on_7(i: int) -> int:
            if i == 7:
                raise ValueError("seven")
            return i

        results = client.map(fail_on_7, range(50))
        assert [next(results) for _ in range(7)] == list(range(7))
        with pytest.raises(ValueError, match="seven"):
            next(results)


def test_map_sends_requests_concurrently_through_the_client() -> None:
    script = Script([])
    with make_client(script, [], concurrency=4) as client:
        got = list(client.map(lambda i: client.get("/health", params={"i": i}), range(20)))
        assert client.stats.requests == 20
    assert got == [OK] * 20
    assert sorted(int(r.url.params["i"]) for r in script.requests) == list(range(20))


# -- CSRF token requests go through the retries (issue 13.5) ---------------------


def test_a_503_on_the_csrf_token_request_is_retried_with_the_whole_send() -> None:
    server = CsrfServer()
    failed = {"done": False}

    def flaky_token(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/csrf-token" and not failed["done"]:
            failed["done"] = True
            server.requests.append(request)
            return httpx.Response(503, text="busy")
        return server(request)

    sleeps: list[float] = []
    with make_client(flaky_token, sleeps) as client:
        assert client.post("/task_runs/filter", json_body={}) == OK
        assert client.stats.retries == 1
    assert server.paths() == [
        "POST /api/task_runs/filter",
        "GET /api/csrf-token",  # 503: the whole send is retried
        "POST /api/task_runs/filter",
        "GET /api/csrf-token",
        "POST /api/task_runs/filter",
    ]
    assert len(sleeps) == 1
    assert server.requests[-1].headers["Prefect-Csrf-Token"] == server.issued[-1][1]


def test_a_csrf_token_request_that_keeps_failing_names_the_token_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/csrf-token":
            return httpx.Response(503, text="busy")
        return response("error_403_csrf_missing")

    with make_client(handler, [], max_attempts=2) as client, pytest.raises(ServerError) as info:
        client.post("/task_runs/filter", json_body={})
    assert str(info.value).startswith(f"GET {API}/csrf-token?client=")
    assert str(info.value).endswith("Gave up after 2 attempts.")


def test_the_csrf_token_request_carries_the_authorization_header() -> None:
    server = CsrfServer()
    with make_client(server, [], auth_string=AUTH) as client:
        client.post("/task_runs/filter", json_body={})
    assert [r.headers.get("Authorization") for r in server.requests] == [BASIC] * 3


def test_the_user_agent_names_the_installed_version() -> None:
    import importlib.metadata

    script = Script([])
    with make_client(script, []) as client:
        client.get("/health")
    version = importlib.metadata.version("trs-analytics")
    assert script.requests[0].headers["User-Agent"] == f"trs-analytics/{version}"


# -- TLS against a plain-http server (issue 13.5) -----------------------------------


def test_https_against_a_plain_http_server_fails_at_once_with_a_scheme_hint() -> None:
    import http.server
    import threading

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sleeps: list[float] = []
    url = f"https://127.0.0.1:{server.server_address[1]}/api"
    try:
        with (
            PrefectClient(url, sleep=sleeps.append, timeout=10) as client,
            pytest.raises(ConfigurationError) as info,
        ):
            client.get("/health")
    finally:
        server.shutdown()
        server.server_close()
    assert sleeps == []  # not retried
    assert client.stats.requests == 1
    assert "TLS handshake" in str(info.value)
    assert "Hint: check the URL's scheme" in str(info.value)

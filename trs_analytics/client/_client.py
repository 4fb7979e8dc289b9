"""The HTTP client: one ``httpx.Client`` with auth, CSRF, retries and a budget.

The send path is built from small layers::

    PrefectClient.get/post  -> JSON decoding and typed errors
      _request              -> retries (tenacity: capped exponential backoff,
                               full jitter, Retry-After honoured)
        _send_once          -> request budget, CSRF token, one request
          httpx.Client      -> transport (injectable: httpx.MockTransport in tests)
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from trs_analytics.client._budget import RequestBudget
from trs_analytics.client._config import ClientSettings, redact_url, resolve_settings
from trs_analytics.exceptions import (
    AuthenticationError,
    NotFoundError,
    PrefectAPIError,
    RequestRejectedError,
    ResponseFormatError,
    ServerError,
    TransportError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from types import TracebackType

__all__ = ["RETRY_STATUSES", "ClientStats", "PrefectClient"]

logger = logging.getLogger("trs_analytics.client")

#: Statuses that are retried with backoff: they clear up by themselves.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class ClientStats:
    """Counters of what a client has sent, for summaries and benchmarks."""

    requests: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, requests: int = 0, retries: int = 0) -> None:
        """Add to the counters (thread-safe)."""
        with self._lock:
            self.requests += requests
            self.retries += retries


class _RetryableError(Exception):
    """Raised inside the retry loop for a failure worth another try."""

    def __init__(
        self,
        final: PrefectAPIError | TransportError,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(str(final))
        self.final = final
        self.retry_after = retry_after


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Examples:
        >>> parse_retry_after("7")
        7.0
        >>> parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT",
        ...                   now=datetime(2015, 10, 21, 7, 28, tzinfo=UTC))
        30.0
        >>> parse_retry_after("soon") is None
        True
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip()
    if isinstance(body, dict):
        for key in ("exception_detail", "detail", "exception_message"):
            if body.get(key):
                return json.dumps(body[key])[:500]
    return json.dumps(body)[:300]


def _status_error(response: httpx.Response, url: str) -> PrefectAPIError:
    status = response.status_code
    where = f"{response.request.method} {url}"
    if status in (401, 403):
        msg = (
            f"{where} was refused with {status} ({_detail(response)}). Hint: set "
            "PREFECT_API_KEY for Prefect Cloud, or PREFECT_API_AUTH_STRING ('user:password') "
            "for a self-hosted server started with PREFECT_SERVER_API_AUTH_STRING."
        )
        return AuthenticationError(msg, status_code=status, url=url)
    if status == 404:
        hint = (
            "check that the API URL ends in /api (the UI address, such as "
            "http://127.0.0.1:4200, is not the API: use http://127.0.0.1:4200/api)"
            if "/api" not in httpx.URL(url).path
            else "check the server's Prefect version: this endpoint may not exist there"
        )
        msg = f"{where} answered 404 Not Found. Hint: {hint}."
        return NotFoundError(msg, status_code=status, url=url)
    if status == 422:
        msg = (
            f"{where} was rejected with 422: {_detail(response)}. Hint: an older Prefect "
            "server may not know a filter field (end_time needs >= 3.6.22); upgrade it or "
            "drop that filter."
        )
        return RequestRejectedError(msg, status_code=status, url=url)
    if status in RETRY_STATUSES or status >= 500:
        msg = f"{where} kept failing with {status} ({_detail(response)})."
        return ServerError(msg, status_code=status, url=url)
    msg = f"{where} answered {status}: {_detail(response)}."
    return PrefectAPIError(msg, status_code=status, url=url)


class PrefectClient:
    """A synchronous, thread-safe client for the Prefect REST API.

    Settings are resolved when the client is made: explicit arguments, then
    ``PREFECT_API_URL`` / ``PREFECT_API_KEY`` / ``PREFECT_API_AUTH_STRING``, then
    the active Prefect profile. It retries connection errors, timeouts and
    408/429/500/502/503/504 up to ``max_attempts`` times with capped exponential
    backoff and full jitter, waiting at least what ``Retry-After`` asks. It raises
    typed errors (:mod:`trs_analytics.exceptions`) for everything else.

    Args:
        api_url: API base URL, such as ``http://127.0.0.1:4200/api`` or
            ``https://api.prefect.cloud/api/accounts/A/workspaces/W``.
        api_key: Prefect Cloud API key (sent as a Bearer token).
        auth_string: ``user:password`` for a server with basic auth.
        timeout: seconds for connect, read and write of one request.
        max_attempts: attempts per request, the first included.
        backoff_initial: the first backoff ceiling in seconds (doubles each retry).
        backoff_max: the largest backoff ceiling in seconds.
        max_retry_after: the longest ``Retry-After`` honoured, in seconds.
        concurrency: requests in flight at once in :meth:`map`.
        requests_per_minute: an optional budget for every request this client sends.
        transport: an ``httpx`` transport (``httpx.MockTransport`` in tests).
        sleep: the function used to wait between retries.

    Examples:
        >>> def handler(request):
        ...     return httpx.Response(200, json=True)
        >>> with PrefectClient("http://127.0.0.1:4200/api",
        ...                    transport=httpx.MockTransport(handler)) as client:
        ...     client.get("/health")
        True
    """

    def __init__(
        self,
        api_url: str | None = None,
        *,
        api_key: str | None = None,
        auth_string: str | None = None,
        timeout: float = 30.0,
        max_attempts: int = 6,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 300.0,
        concurrency: int = 8,
        requests_per_minute: float | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings: ClientSettings = resolve_settings(
            api_url, api_key=api_key, auth_string=auth_string
        )
        if max_attempts < 1 or concurrency < 1:
            msg = "max_attempts and concurrency must be at least 1."
            raise ValueError(msg)
        self.concurrency = concurrency
        self.stats = ClientStats()
        self._max_attempts = max_attempts
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        self._budget = RequestBudget(requests_per_minute) if requests_per_minute else None
        self._csrf_client = str(uuid.uuid4())
        self._csrf_token: str | None = None
        self._csrf_lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self.settings.api_url + "/",
            headers=self._auth_headers(),
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=concurrency + 2),
            transport=transport,
            follow_redirects=False,
        )

    def _auth_headers(self) -> dict[str, str]:
        from trs_analytics import __version__

        headers = {"User-Agent": f"trs-analytics/{__version__}"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        elif self.settings.auth_string:
            token = base64.b64encode(self.settings.auth_string.encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        return headers

    @property
    def api_url(self) -> str:
        """The API base URL, credentials removed."""
        return redact_url(self.settings.api_url)

    def __repr__(self) -> str:
        auth = (
            "api_key" if self.settings.api_key else "basic" if self.settings.auth_string else "none"
        )
        return f"<PrefectClient {self.api_url} auth={auth}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- public calls ------------------------------------------------------
    def get(self, path: str, *, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` (relative to the API URL, or absolute) and return its JSON."""
        return self._json(self._request("GET", path, params=params))

    def post(self, path: str, *, json_body: Any = None) -> Any:
        """POST ``json_body`` to ``path`` and return the response's JSON."""
        return self._json(self._request("POST", path, json=json_body))

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Apply ``fn`` to ``items`` on ``concurrency`` threads; yield results in order.

        At most ``4 * concurrency`` items are in flight, so an unbounded
        ``items`` iterator never piles up in memory. The first error is raised
        and the items not yet started are cancelled.

        Examples:
            >>> client = PrefectClient("http://127.0.0.1:4200/api", concurrency=2)
            >>> list(client.map(lambda x: x * x, range(5)))
            [0, 1, 4, 9, 16]
        """
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="trs")
        window: deque[Future[R]] = deque()
        try:
            for item in items:
                window.append(pool.submit(fn, item))
                if len(window) >= 4 * self.concurrency:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # -- layers ------------------------------------------------------------
    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.settings.api_url + "/" + path.lstrip("/")

    def _json(self, response: httpx.Response) -> Any:
        url = redact_url(str(response.request.url))
        ctype = response.headers.get("content-type", "")
        if "html" in ctype:
            msg = (
                f"{response.request.method} {url} answered with an HTML page, not JSON. "
                "Hint: the URL points at the Prefect UI; the API lives under /api "
                "(for example http://127.0.0.1:4200/api)."
            )
            raise ResponseFormatError(msg, status_code=response.status_code, url=url)
        try:
            return response.json()
        except ValueError as err:
            msg = (
                f"{response.request.method} {url} answered {response.status_code} with a body "
                f"that is not valid JSON ({err}); it starts {response.text[:80]!r}. Hint: "
                "is a proxy between you and the Prefect server rewriting responses?"
            )
            raise ResponseFormatError(msg, status_code=response.status_code, url=url) from err

    def _wait(self, state: RetryCallState) -> float:
        ceiling = min(self._backoff_max, self._backoff_initial * 2 ** (state.attempt_number - 1))
        delay = random.uniform(0, ceiling)  # full jitter
        err = state.outcome.exception() if state.outcome else None
        if isinstance(err, _RetryableError) and err.retry_after is not None:
            delay = max(delay, min(err.retry_after, self._max_retry_after))
        return delay

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats.add(retries=1)
        err = state.outcome.exception() if state.outcome else None
        logger.warning(
            "retrying (attempt %d of %d) after: %s",
            state.attempt_number + 1,
            self._max_attempts,
            err,
        )

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_RetryableError),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send_once(method, self._url(path), **kwargs)
        except _RetryableError as err:
            final = err.final
            final.args = (f"{final} Gave up after {self._max_attempts} attempts.",)
            raise final from err.__cause__
        msg = "unreachable"  # pragma: no cover
        raise AssertionError(msg)  # pragma: no cover

    def _send_once(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        safe_url = redact_url(url)
        response = self._send_raw(method, url, **kwargs)
        if response.status_code == 403 and method != "GET" and "csrf" in response.text.lower():
            self._refresh_csrf(stale=self._csrf_token)
            response = self._send_raw(method, url, **kwargs)
        if response.status_code < 400:
            return response
        error = _status_error(response, safe_url)
        if response.status_code in RETRY_STATUSES:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise _RetryableError(error, retry_after=retry_after)
        raise error

    def _send_raw(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self._budget is not None:
            self._budget.acquire()
        headers = {}
        if method != "GET" and self._csrf_token:
            headers = {
                "Prefect-Csrf-Token": self._csrf_token,
                "Prefect-Csrf-Client": self._csrf_client,
            }
        self.stats.add(requests=1)
        try:
            return self._http.request(method, url, headers=headers, **kwargs)
        except httpx.TransportError as err:
            kind = "timed out" if isinstance(err, httpx.TimeoutException) else "failed"
            msg = (
                f"{method} {redact_url(url)} {kind}: {err or type(err).__name__}. Hint: is the "
                "Prefect server running and reachable at this address?"
            )
            raise _RetryableError(TransportError(msg)) from err

    def _refresh_csrf(self, *, stale: str | None) -> None:
        with self._csrf_lock:
            if self._csrf_token != stale:  # another thread refreshed it already
                return
            response = self._send_raw(
                "GET", self._url("/csrf-token"), params={"client": self._csrf_client}
            )
            if response.status_code >= 400:
                raise _status_error(response, redact_url(str(response.request.url)))
            self._csrf_token = str(self._json(response)["token"])

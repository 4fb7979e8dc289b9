"""The HTTP client: one ``httpx.Client`` with auth, CSRF, retries and a budget.

The send path is built from small layers::

    PrefectClient.get/post  -> JSON decoding and typed errors
      _request              -> retries (tenacity: capped exponential backoff,
                               full jitter, Retry-After honoured)
        _send_once          -> one send; only a 2xx is data, any other status
                               (a 3xx included: redirects are never followed)
                               is a typed error
          PrefectAuth       -> Authorization header, CSRF token and re-send (httpx.Auth)
            _on_request     -> request budget and counters, for every request sent
              httpx.Client  -> per-read timeouts, and (_on_response) an overall
                               deadline on each answer's body
                transport   -> injectable: httpx.MockTransport in tests

Because the retries wrap the whole auth flow, a failed CSRF-token request is
retried like any other. Every wait is bounded: each retry's (``Retry-After``
above ``max_retry_after`` is not waited for) and their sum (``max_retry_wait``);
each warning says how long it waits.
"""

from __future__ import annotations

import email.utils
import importlib.metadata
import json
import logging
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from trs_analytics._format import argument_text
from trs_analytics._redact import redact_logger
from trs_analytics.client._auth import PrefectAuth
from trs_analytics.client._budget import RequestBudget
from trs_analytics.client._concurrency import ordered_map
from trs_analytics.client._config import ClientSettings, redact_url, resolve_settings
from trs_analytics.client._probe import ServerInfo, probe_server
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
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from types import TracebackType

__all__ = ["RETRY_STATUSES", "ClientStats", "PrefectClient"]

logger = logging.getLogger("trs_analytics.client")

#: The request extension that carries the moment its answer must have arrived by.
_DEADLINE = "trs_analytics.deadline"

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
        #: why the retries stopped before ``max_attempts``, when they did
        self.stopped: str | None = None


class _DeadlineStream(httpx.SyncByteStream):
    """A response body that fails with ``ReadTimeout`` once its deadline has passed."""

    def __init__(
        self,
        inner: httpx.SyncByteStream,
        *,
        deadline: float,
        seconds: float,
        request: httpx.Request,
    ) -> None:
        self._inner = inner
        self._deadline = deadline
        self._seconds = seconds
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            if time.monotonic() > self._deadline:
                msg = f"the answer did not arrive in full within the {self._seconds:g} s deadline"
                raise httpx.ReadTimeout(msg, request=self._request)
            yield chunk

    def close(self) -> None:
        self._inner.close()


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
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        msg = (
            f"{where} answered {status}, a redirect to {redact_url(location) or 'nowhere'!r}, "
            "which is not followed (credentials never go to another address). Hint: use "
            "the address it redirects to as the API URL, if you trust it."
        )
        return PrefectAPIError(msg, status_code=status, url=url)
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
        deadline: seconds for one whole answer, its body included (default: 10 x
            ``timeout``); a body still arriving then is a timeout, retried.
        max_attempts: attempts per request, the first included.
        backoff_initial: the first backoff ceiling in seconds (doubles each retry).
        backoff_max: the largest backoff ceiling in seconds.
        max_retry_after: the longest ``Retry-After`` honoured, in seconds (a
            longer one is waited for this long).
        max_retry_wait: the most seconds one request spends waiting between its
            attempts, all waits together.
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
        deadline: float | None = None,
        max_attempts: int = 6,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 300.0,
        max_retry_wait: float = 300.0,
        concurrency: int = 8,
        requests_per_minute: float | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings: ClientSettings = resolve_settings(
            api_url, api_key=api_key, auth_string=auth_string
        )
        deadline = 10 * timeout if deadline is None and _is_number(timeout) else deadline
        _check_numbers(
            timeout=timeout,
            deadline=deadline,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            max_retry_after=max_retry_after,
            max_retry_wait=max_retry_wait,
            requests_per_minute=requests_per_minute,
        )
        for name, count in (("max_attempts", max_attempts), ("concurrency", concurrency)):
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                msg = f"{name} must be an integer of at least 1, got {count!r}."
                raise ConfigurationError(msg)
        assert deadline is not None
        self.concurrency = concurrency
        self.stats = ClientStats()
        self._max_attempts = max_attempts
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._max_retry_after = max_retry_after
        self._max_retry_wait = max_retry_wait
        self._deadline = deadline
        self._sleep = sleep
        self._budget = RequestBudget(requests_per_minute) if requests_per_minute else None
        self._auth = PrefectAuth(
            self.settings.api_url,
            api_key=self.settings.api_key,
            auth_string=self.settings.auth_string,
            params=self.settings.params,
        )
        self._server_info: ServerInfo | None = None
        self._probe_lock = threading.Lock()
        for name in ("httpx", "httpcore"):  # they log request URLs: no token may show
            redact_logger(name)
        self._http = httpx.Client(
            base_url=self.settings.api_url + "/",
            headers={"User-Agent": f"trs-analytics/{_package_version()}"},
            auth=self._auth,
            timeout=httpx.Timeout(timeout),
            # per-run GETs or event slices, plus the look-ups beside them
            limits=httpx.Limits(max_connections=2 * concurrency + 2),
            transport=transport,
            follow_redirects=False,  # a 3xx is an error (see _status_error)
            event_hooks={"request": [self._on_request], "response": [self._on_response]},
        )

    @property
    def api_url(self) -> str:
        """The API base URL, credentials removed."""
        return redact_url(self.settings.api_url)

    def __repr__(self) -> str:
        return f"<PrefectClient {self.api_url} auth={self._auth.kind}>"

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

    def post_events(self, events: Sequence[dict[str, Any]], *, batch: int = 100) -> int:
        """POST events to the server's event stream (``/api/events``), ``batch`` a request.

        Prefect automations can act on them. Each event is a dict with ``id``,
        ``occurred``, ``event``, ``resource`` (and optionally ``related`` and
        ``payload``), as Prefect 3 defines it. Retries and auth are those of
        every request.

        Returns:
            The number of events posted.

        Raises:
            NotFoundError: the server has no event endpoint (Prefect 2 answers 404).

        Examples:
            >>> def handler(request):
            ...     return httpx.Response(204)
            >>> with PrefectClient("http://127.0.0.1:4200/api",
            ...                    transport=httpx.MockTransport(handler)) as client:
            ...     client.post_events([{"event": "demo"}])
            1
        """
        for start in range(0, len(events), batch):
            try:
                self._request("POST", "/events", json=list(events[start : start + batch]))
            except NotFoundError as err:
                msg = (
                    f"{self.api_url} does not accept events (POST /events answered 404). "
                    "Hint: events need Prefect 3 (Prefect 2 servers answer 404); run the "
                    "check without --emit-events there."
                )
                raise NotFoundError(msg, status_code=404, url=err.url) from err
        return len(events)

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
        return ordered_map(fn, items, workers=self.concurrency)

    def server_info(self) -> ServerInfo:
        """What this client's server can do, probed once and then remembered.

        See :func:`~trs_analytics.client.probe_server`.
        """
        with self._probe_lock:
            if self._server_info is None:
                self._server_info = probe_server(self)
            return self._server_info

    # -- layers ------------------------------------------------------------
    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.settings.api_url + "/" + path.lstrip("/")

    def _json(self, response: httpx.Response) -> Any:
        url = redact_url(str(response.request.url))
        ctype = response.headers.get("content-type", "")
        if "html" in ctype:
            hint = (
                "the URL points at the Prefect UI; the API lives under /api "
                "(for example http://127.0.0.1:4200/api)"
                if "/api" not in response.request.url.path
                else "a login page or a proxy answers in place of the Prefect API; check "
                "the URL and whether this network needs a sign-in first"
            )
            msg = (
                f"{response.request.method} {url} answered with an HTML page, not JSON. "
                f"Hint: {hint}."
            )
            raise ResponseFormatError(msg, status_code=response.status_code, url=url)
        try:
            return response.json()
        except RecursionError as err:
            msg = (
                f"{response.request.method} {url} answered with JSON nested too deeply to "
                "read. Hint: this is not an answer of the Prefect API; is a proxy in between?"
            )
            raise ServerError(msg, status_code=response.status_code, url=url) from err
        except ValueError as err:
            msg = (
                f"{response.request.method} {url} answered {response.status_code} with a body "
                f"that is not valid JSON ({str(err)[:120]}); it starts {response.text[:80]!r}. "
                "Hint: is a proxy between you and the Prefect server rewriting responses?"
            )
            raise ResponseFormatError(msg, status_code=response.status_code, url=url) from err

    def _wait(self, state: RetryCallState) -> float:
        ceiling = min(self._backoff_max, self._backoff_initial * 2 ** (state.attempt_number - 1))
        delay = random.uniform(0, ceiling)  # full jitter
        err = state.outcome.exception() if state.outcome else None
        if isinstance(err, _RetryableError) and err.retry_after is not None:
            delay = max(delay, min(err.retry_after, self._max_retry_after))
        return delay

    def _stop(self, state: RetryCallState) -> bool:
        """Stop after ``max_attempts``, or before a wait beyond what is left of the budget."""
        if state.attempt_number >= self._max_attempts:
            return True
        wait, left = state.upcoming_sleep, self._max_retry_wait - state.idle_for
        if wait <= left:
            return False
        err = state.outcome.exception() if state.outcome else None
        if isinstance(err, _RetryableError):
            asked = f" (Retry-After {err.retry_after:g} s)" if err.retry_after is not None else ""
            err.stopped = (
                f"Gave up after {state.attempt_number} attempts: the next wait would be "
                f"{wait:.1f} s{asked}, and {max(0.0, left):.1f} s are left of the "
                f"{self._max_retry_wait:g} s retry budget. Hint: try again later, or raise "
                f"{argument_text('max_retry_wait')}."
            )
        return True

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats.add(retries=1)
        err = state.outcome.exception() if state.outcome else None
        logger.warning(
            "waiting %.1f s before attempt %d of %d, after: %s",
            state.upcoming_sleep,
            state.attempt_number + 1,
            self._max_attempts,
            err,
        )

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = self._url(path)
        if self.settings.params:  # httpx would replace the URL's own query (a page token)
            kwargs["params"] = (
                httpx.URL(url)
                .params.merge(kwargs.get("params") or {})
                .merge(dict(self.settings.params))
            )
        retrying = Retrying(
            stop=self._stop,
            wait=self._wait,
            retry=retry_if_exception_type(_RetryableError),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send_once(method, url, **kwargs)
        except _RetryableError as err:
            final = err.final
            gave_up = err.stopped or f"Gave up after {self._max_attempts} attempts."
            final.args = (f"{final} {gave_up}",)
            raise final from err.__cause__
        msg = "unreachable"  # pragma: no cover
        raise AssertionError(msg)  # pragma: no cover

    def _send_once(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TransportError as err:
            raise _transport_error(method, url, err) from err
        except httpx.DecodingError as err:
            msg = (
                f"{method} {redact_url(url)} answered with a body that cannot be decoded "
                f"({err}). Hint: a proxy in between may damage compressed answers."
            )
            raise ServerError(msg, url=redact_url(url)) from err
        if 200 <= response.status_code < 300:
            return response
        error = _status_error(response, redact_url(str(response.request.url)))
        if response.status_code in RETRY_STATUSES:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise _RetryableError(error, retry_after=retry_after)
        raise error

    def _on_request(self, request: httpx.Request) -> None:
        if self._budget is not None:
            self._budget.acquire()
        self.stats.add(requests=1)
        request.extensions[_DEADLINE] = time.monotonic() + self._deadline

    def _on_response(self, response: httpx.Response) -> None:
        """Put the overall deadline on the body (read after this hook)."""
        deadline = response.request.extensions.get(_DEADLINE)
        if deadline is not None and isinstance(response.stream, httpx.SyncByteStream):
            response.stream = _DeadlineStream(
                response.stream, deadline=deadline, seconds=self._deadline, request=response.request
            )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_numbers(**values: float | None) -> None:
    """Each value is None or a finite number; the timeouts are positive, the rest not negative."""
    for name, value in values.items():
        if value is None and name in ("deadline", "requests_per_minute"):
            continue
        positive = name in ("timeout", "deadline", "requests_per_minute")
        if (
            not _is_number(value)
            or value != value  # NaN
            or value in (float("inf"), float("-inf"))
            or (value <= 0 if positive else value < 0)  # type: ignore[operator]
        ):
            kind = "positive" if positive else "zero or more"
            msg = f"{name} must be a finite number, {kind}; got {value!r}."
            raise ConfigurationError(msg)


def _package_version() -> str:
    try:
        return importlib.metadata.version("trs-analytics")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
        return "0+unknown"


def _is_ssl_error(err: BaseException) -> bool:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "[SSL" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


#: Resolver answers that say the name does not exist (not "the resolver is down").
_UNKNOWN_NAME = frozenset(
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)
)


def _is_unknown_host(err: BaseException) -> bool:
    """Whether ``err`` comes from a host name the resolver says does not exist.

    ``EAI_AGAIN`` (the resolver could not be asked) is not one: that clears up.

    Examples:
        >>> _is_unknown_host(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
        True
        >>> _is_unknown_host(socket.gaierror(socket.EAI_AGAIN, "Temporary failure"))
        False
    """
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, socket.gaierror) and seen.errno in _UNKNOWN_NAME:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _transport_error(method: str, url: str, err: httpx.TransportError) -> Exception:
    """A TLS failure or an unknown host name is final (retrying cannot fix it); others retry."""
    where = f"{method} {redact_url(url)}"
    if _is_unknown_host(err):
        host = httpx.URL(url).host
        msg = (
            f"{where} failed: the host name {host!r} does not resolve ({err}). Hint: check "
            "the host name in the API URL for a typo (such as locahost for localhost)."
        )
        return ConfigurationError(msg)  # a name that does not exist will not exist in 15 s
    if _is_ssl_error(err):
        msg = (
            f"{where} failed during the TLS handshake: {err}. Hint: check the URL's scheme: "
            "a self-hosted Prefect server speaks plain http:// unless it sits behind a TLS "
            "proxy (and a certificate your machine does not trust fails here too)."
        )
        return ConfigurationError(msg)  # not "try again later": retrying cannot fix it
    kind = "timed out" if isinstance(err, httpx.TimeoutException) else "failed"
    msg = (
        f"{where} {kind}: {err or type(err).__name__}. Hint: is the "
        "Prefect server running and reachable at this address?"
    )
    return _RetryableError(TransportError(msg))

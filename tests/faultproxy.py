"""A fault-injecting HTTP proxy on loopback, for reliability tests against a real server.

It forwards every request to an upstream server (a real Prefect server) and,
for about ``rate`` of them, misbehaves instead, in one of these ways:

* ``429``: answers 429 Too Many Requests with ``Retry-After: <retry_after>``;
* ``500`` / ``503``: answers a server error with a JSON body;
* ``drop``: closes the connection without answering;
* ``slow``: waits ``slow_seconds`` and then forwards normally.

Which fault comes next is drawn from ``random.Random(seed)`` under a lock, so
the sequence of faults is the same for the same seed (with concurrent clients,
which request meets which fault depends on arrival order). URLs of the upstream
in response bodies (Prefect's ``next_page``) are rewritten to point at the
proxy, so paging goes through it too.

A ``script`` gives full control for a fault of one kind: it is called with
every request (an :class:`Exchange`, whose ``forward()`` asks the real server)
and returns the :class:`Answer` to send (``trickle``: one byte of the body
every that many seconds), or ``None`` to forward as usual::

    def redirect_events(exchange):
        if exchange.path.endswith("/events/filter"):
            return Answer(302, b"{}", {"Location": "http://elsewhere/api"})
        return None

The proxy is bounded: it serves at most ``max_requests`` requests and stops by
itself after ``lifetime`` seconds; use it as a context manager::

    with FaultProxy(server.api_url, seed=7) as proxy:
        export_states(out, api_url=proxy.api_url)
    proxy.counts  # {'forwarded': 412, '429': 11, 'drop': 9, ...}
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

__all__ = ["FAULTS", "Answer", "Exchange", "FaultProxy"]

#: The faults, in the order their shares are listed.
FAULTS: Final = ("429", "500", "503", "drop", "slow")
_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}
)


@dataclass
class Answer:
    """What the proxy sends back: a status, a body, headers; ``trickle`` seconds a byte."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    trickle: float = 0.0


@dataclass
class Exchange:
    """A request seen by the proxy; ``forward()`` gets the real server's answer to it
    (a script may change ``body`` first)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    upstream: Callable[[bytes], Answer]

    def forward(self) -> Answer:
        """The real server's answer to this request (its ``body`` as it is now)."""
        return self.upstream(self.body)

    def json(self) -> object:
        """The request's JSON body (``None`` when it has none)."""
        return json.loads(self.body) if self.body else None


class FaultProxy:
    """Forward to ``upstream_api_url``, injecting faults on about ``rate`` of requests.

    Args:
        upstream_api_url: the real server's API URL, such as ``http://127.0.0.1:4200/api``.
        seed: seeds the fault sequence.
        rate: share of requests that meet a fault (0..1).
        faults: which faults to draw from (equal shares).
        retry_after: the ``Retry-After`` seconds sent with 429.
        slow_seconds: the delay of a slow response.
        max_requests: after this many requests, every request is refused (503).
        lifetime: seconds after which the proxy shuts itself down.

    Attributes:
        counts: how many requests were forwarded and how many met each fault.
    """

    def __init__(
        self,
        upstream_api_url: str,
        *,
        seed: int = 0,
        rate: float = 0.1,
        faults: tuple[str, ...] = FAULTS,
        retry_after: float = 1,
        slow_seconds: float = 0.5,
        max_requests: int = 20_000,
        lifetime: float = 300.0,
        script: Callable[[Exchange], Answer | None] | None = None,
    ) -> None:
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; use some of {FAULTS}")
        upstream = urlsplit(upstream_api_url)
        self.upstream_base = f"{upstream.scheme}://{upstream.netloc}"
        self.api_path = upstream.path
        self.rate = rate
        self.faults = faults
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.max_requests = max_requests
        self.lifetime = lifetime
        self.script = script
        self.counts: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=self.upstream_base, timeout=60.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._stopped = False

    @property
    def base_url(self) -> str:
        """The proxy's root URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        """The API URL to give the client instead of the upstream one."""
        return self.base_url + self.api_path

    def start(self) -> FaultProxy:
        """Start serving in a daemon thread."""
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving (safe to call twice)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def injected(self) -> int:
        """How many requests met a fault."""
        return sum(n for kind, n in self.counts.items() if kind in FAULTS)

    def _draw(self) -> str | None:
        with self._lock:
            self.counts["requests"] += 1
            if self.counts["requests"] > self.max_requests:
                return "503"
            fault = self._random.choice(self.faults) if self._random.random() < self.rate else None
            self.counts[fault or "forwarded"] += 1
            return fault

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> httpx.Response:
        return self._http.request(method, path, headers=headers, content=body)

    def _rewrite(self, content: bytes) -> bytes:
        return content.replace(self.upstream_base.encode(), self.base_url.encode())

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, extra: dict[str, str] | None = None) -> None:
                body = json.dumps({"detail": f"injected {status}"}).encode()
                self._answer(status, body, {"Content-Type": "application/json", **(extra or {})})

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _send(self, answer: Answer) -> None:
                if not answer.trickle:
                    self._answer(answer.status, answer.body, answer.headers)
                    return
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up: fine
                    for byte in answer.body:
                        if proxy._stopped:
                            break
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(answer.trickle)

            def _forwarded(self, body: bytes, headers: dict[str, str]) -> Answer:
                upstream = proxy._forward(self.command, self.path, headers, body)
                kept = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
                return Answer(upstream.status_code, proxy._rewrite(upstream.content), kept)

            def _handle(self) -> None:
                body = self._body()
                if proxy.script is not None:
                    with proxy._lock:
                        proxy.counts["requests"] += 1
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP
                    }
                    exchange = Exchange(
                        self.command,
                        self.path,
                        dict(self.headers.items()),
                        body,
                        lambda sent: self._forwarded(sent, headers),
                    )
                    self._send(proxy.script(exchange) or exchange.forward())
                    return
                fault = proxy._draw()
                if fault == "429":
                    self._error(429, {"Retry-After": f"{proxy.retry_after:g}"})
                    return
                if fault in ("500", "503"):
                    self._error(int(fault))
                    return
                if fault == "drop":
                    self._drop()
                    return
                if fault == "slow":
                    time.sleep(proxy.slow_seconds)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                try:
                    upstream = proxy._forward(self.command, self.path, headers, body)
                except httpx.HTTPError:
                    self._error(502)
                    return
                answer = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
                self._answer(upstream.status_code, proxy._rewrite(upstream.content), answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        return Handler

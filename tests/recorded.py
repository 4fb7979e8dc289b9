"""Serve the real Prefect 3.9.1 recordings in ``tests/recordings`` through ``httpx.MockTransport``.

* :func:`recording` / :func:`recorded_body` / :func:`response` load one recording.
* :func:`serve` serves such a handler over HTTP on loopback (for the CLI).
* :class:`Router` is a ``MockTransport`` handler that answers by method and path
  the way the recorded server would (task runs, flow runs and flows filtered by
  the request body; states by ``task_run_id``; events paged through the
  recorded ``next_page`` links). Tests edit ``router.data`` to break a record,
  and pass ``fault=`` to answer a request with an error first.

The recording holds two of the three event pages (5 events a page, 13 in all);
the third page is built here from the recorded states of the last task run,
shaped like the recorded events of its twin ``cached-f63``.
"""

from __future__ import annotations

import copy
import json
import threading
from contextlib import contextmanager, suppress
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

RECORDINGS = Path(__file__).parent / "recordings"

#: The four recorded task runs, in expected start order.
FLAKY = "01a2225e-9367-7c27-9c43-42f1168b899b"
EXTRACT = "01a2225e-9378-74d8-abb9-6fde02e73980"
CACHED_MISS = "01a2225e-937d-77e6-b523-958707b7c969"
CACHED_HIT = "01a2225e-9382-7b97-8797-68a616e52191"
TASK_RUN_IDS = (FLAKY, EXTRACT, CACHED_MISS, CACHED_HIT)

#: A window that holds every recorded state.
SINCE = "2026-11-28T13:35:00Z"
UNTIL = "2026-11-28T13:37:00Z"


def recording(name: str) -> dict[str, Any]:
    """The raw recording: ``{"request", "status", "headers", "body"}``."""
    return json.loads((RECORDINGS / f"{name}.json").read_text())  # type: ignore[no-any-return]


def recorded_body(name: str) -> Any:
    """The recorded response body, parsed."""
    return json.loads(recording(name)["body"])


def response(name: str, *, status: int | None = None, body: str | None = None) -> httpx.Response:
    """The recorded response (status, headers, body text), optionally altered."""
    rec = recording(name)
    return httpx.Response(
        status or rec["status"],
        headers=rec["headers"],
        content=(rec["body"] if body is None else body).encode(),
    )


def _token(next_page: str) -> str:
    return parse_qs(urlsplit(next_page).query)["page-token"][0]


def _third_event_page(page2: dict[str, Any], states: list[dict[str, Any]]) -> dict[str, Any]:
    """Events for the last task run's states, in the shape of the recorded ones."""
    twins = page2["events"][2:5]  # cached-f63: Pending, Running, Completed
    events = []
    for twin, state in zip(twins, states, strict=True):
        event = copy.deepcopy(twin)
        run_id = state["state_details"]["task_run_id"]
        event.update(
            id=state["id"], occurred=state["timestamp"], event=f"prefect.task-run.{state['name']}"
        )
        event["resource"].update(
            {
                "prefect.resource.id": f"prefect.task-run.{run_id}",
                "prefect.resource.name": "cached-54f",
                "prefect.state-name": state["name"],
                "prefect.state-type": state["type"],
                "prefect.state-timestamp": state["timestamp"].replace("Z", "+00:00"),
            }
        )
        event["payload"]["validated_state"].update(name=state["name"], type=state["type"])
        event["payload"]["task_run"].update(
            name="cached-54f", dynamic_key="54fc967f-923e-45b9-bc6a-8456aad9eb9b"
        )
        events.append(event)
    return {**page2, "events": events, "next_page": None}


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


_EPOCH = _time("1970-01-01T00:00:00Z")


def _in_range(value: str | None, window: dict[str, Any]) -> bool:
    """Prefect's ``before_``/``after_`` (inclusive) and ``is_null_`` on one time field."""
    if "is_null_" in window:
        return bool((value is None) == window["is_null_"])
    if not window:
        return True
    if value is None:
        return False
    when = _time(value)
    if "after_" in window and when < _time(window["after_"]):
        return False
    return not ("before_" in window and when > _time(window["before_"]))


def _match_task_run(run: dict[str, Any], where: dict[str, Any]) -> bool:
    unknown = set(where) - {"id", "expected_start_time", "state", "end_time", "start_time", "name"}
    assert not unknown, f"the router cannot filter task runs on {unknown}"
    like = where.get("name", {}).get("like_")  # Prefect: ILIKE '%like%'
    if like is not None and like.lower() not in run["name"].lower():
        return False
    if not _in_range(run.get("start_time"), where.get("start_time", {})):
        return False
    if "any_" in where.get("id", {}) and run["id"] not in where["id"]["any_"]:
        return False
    window = where.get("expected_start_time", {})
    if run.get("expected_start_time"):  # a test may have removed it: serve the run anyway
        expected = _time(run["expected_start_time"])
        if "after_" in window and expected < _time(window["after_"]):
            return False
        if "before_" in window and expected > _time(window["before_"]):
            return False
    types = where.get("state", {}).get("type", {}).get("any_")
    if types is not None and run["state_type"] not in types:
        return False
    return _in_range(run.get("end_time"), where.get("end_time", {}))


def _by_ids(records: Any, where: dict[str, Any]) -> Any:
    if not isinstance(records, list):  # a test replaced the page: serve it as it is
        return records
    ids = where.get("id", {}).get("any_")
    return [r for r in records if ids is None or r.get("id") in ids]


class Router:
    """A ``MockTransport`` handler that answers like the recorded server.

    Args:
        fault: called first with every request; a response it returns is sent
            instead of the recorded one, an ``httpx`` error it raises is what
            the transport raises, and ``None`` lets the request through.
        server: ``"3.9.1"`` (the recordings' server); ``"2.20.16"``: the
            recorded version and OpenAPI filter fields of a Prefect 2.20.16
            server, which also refuses ``expected_start_time`` and ``end_time``
            filters with 422 and has no events endpoint (404), as the real one
            does; or ``"3.2.15"``: the 3.9.1 answers without the ``end_time``
            filter field (422 when used), as a 3.2.15 server answers.

    Attributes:
        data: the parsed recorded bodies by recording name (edit them to break a page).
        requests: every request received, in order, faulted ones included.
    """

    def __init__(
        self,
        *,
        fault: Callable[[httpx.Request], httpx.Response | None] | None = None,
        server: str = "3.9.1",
    ):
        self.fault = fault
        self.server = server
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()
        names = ["task_runs_filter", "flow_runs_filter", "flows_filter", "events_filter_page1"]
        names += ["events_filter_page2", *(f"task_run_states_{i}" for i in TASK_RUN_IDS)]
        self.data: dict[str, Any] = {name: recorded_body(name) for name in names}
        self.data["events_filter_page3"] = _third_event_page(
            self.data["events_filter_page2"], self.data[f"task_run_states_{CACHED_HIT}"]
        )
        # Paging and windows follow the recordings as made, so a test that breaks
        # a record in ``data`` gets it served rather than a crash in the router.
        pages = [self.data[f"events_filter_page{n}"] for n in (1, 2, 3)]
        self._occurred = [_time(e["occurred"]) for page in pages for e in page["events"]]
        self._next = {_token(pages[0]["next_page"]): 2, _token(pages[1]["next_page"]): 3}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
        if self.fault is not None and (answer := self.fault(request)) is not None:
            return answer
        return self.serve(request)

    def paths(self) -> list[str]:
        """``"METHOD /path"`` of every request received."""
        return [f"{r.method} {r.url.path}" for r in self.requests]

    def serve(self, request: httpx.Request) -> httpx.Response:
        """The recorded answer to ``request`` (a recorded 404 for unknown paths)."""
        path = request.url.path
        route = path[path.find("/api/") :] if "/api/" in path else path
        body = json.loads(request.content) if request.content else {}
        old_2 = self.server.startswith("2.")
        refused = {"expected_start_time", "end_time"} if old_2 else set()
        if self.server == "3.2.15":
            refused = {"end_time"}
        if request.method == "GET" and route in ("/api/admin/version", "/api/openapi.json"):
            return self._probe(route, old_2=old_2, refused=refused)
        if old_2 and route.startswith("/api/events/"):
            return httpx.Response(404, json={"detail": "Events are not enabled."})
        if route == "/api/task_runs/filter" and (extra := refused & set(body.get("task_runs", {}))):
            detail = [
                {"loc": ["body", "task_runs", f], "msg": "extra fields not permitted"}
                for f in sorted(extra)
            ]
            answer = {"exception_message": "Invalid request received.", "exception_detail": detail}
            return httpx.Response(422, json=answer)
        handlers: dict[str, Callable[[httpx.Request, dict[str, Any]], Any]] = {
            "POST /api/task_runs/filter": self._task_runs,
            "POST /api/flow_runs/filter": lambda _, b: _by_ids(
                self.data["flow_runs_filter"], b.get("flow_runs", {})
            ),
            "POST /api/flows/filter": lambda _, b: _by_ids(
                self.data["flows_filter"], b.get("flows", {})
            ),
            "GET /api/task_run_states/": lambda r, _: self.data.get(
                f"task_run_states_{r.url.params['task_run_id']}", []
            ),
            # the recorded flow run's states were not recorded: it has none here
            "GET /api/flow_run_states/": lambda _, __: [],
            "POST /api/events/filter": self._events_first_page,
            "GET /api/events/filter/next": self._events_next_page,
        }
        handler = handlers.get(f"{request.method} {route}")
        if handler is None:
            return response("error_404_no_api_prefix")
        return httpx.Response(200, json=handler(request, body))

    def _probe(self, route: str, *, old_2: bool, refused: set[str]) -> httpx.Response:
        suffix = "_2_20" if old_2 else ""
        if route.endswith("version"):
            return (
                httpx.Response(200, json=self.server)
                if not old_2
                else response("admin_version_2_20")
            )
        schema = recorded_body("openapi_task_run_filter" + suffix)
        fields = schema["components"]["schemas"]["TaskRunFilter"]["properties"]
        for name in refused:
            fields.pop(name, None)
        return httpx.Response(200, json=schema)

    def _task_runs(self, _: httpx.Request, body: dict[str, Any]) -> Any:
        runs = self.data["task_runs_filter"]
        if not isinstance(runs, list):
            return runs
        where = body.get("task_runs", {})
        runs = [r for r in runs if _match_task_run(r, where)]
        if body.get("sort") == "EXPECTED_START_TIME_ASC":
            runs.sort(key=lambda r: r.get("expected_start_time") or "")
        if body.get("sort") == "END_TIME_DESC":  # SQLite: nulls sort as smallest
            runs.sort(key=lambda r: _time(r["end_time"]) if r.get("end_time") else _EPOCH)
            runs.reverse()
        offset = body.get("offset", 0)
        return runs[offset : offset + body.get("limit", 200)]

    def _events_first_page(self, _: httpx.Request, body: dict[str, Any]) -> Any:
        prefixes = body["filter"].get("event", {}).get("prefix", [])
        if prefixes and not any(p.startswith("prefect.task-run.") for p in prefixes):
            return {"events": [], "total": 0, "next_page": None}  # every recorded event is one
        occurred = body["filter"]["occurred"]
        since, until = _time(occurred["since"]), _time(occurred["until"])
        if not any(since <= when <= until for when in self._occurred):
            return {"events": [], "total": 0, "next_page": None}
        return self.data["events_filter_page1"]

    def _events_next_page(self, request: httpx.Request, _: dict[str, Any]) -> Any:
        token = request.url.params["page-token"]
        assert token in self._next, f"no recorded event page has the token {token[:20]}..."
        return self.data[f"events_filter_page{self._next[token]}"]


@contextmanager
def serve(handler: Callable[[httpx.Request], httpx.Response]) -> Iterator[str]:
    """Serve a ``MockTransport`` handler over HTTP on loopback; yield its API URL.

    For what builds its own client from a URL (the CLI): the same recorded
    answers, through a real socket.
    """

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = httpx.Request(
                self.command,
                f"http://{self.headers['Host']}{self.path}",
                headers=dict(self.headers.items()),
                content=self.rfile.read(length) if length else b"",
            )
            answer = handler(request)
            body = answer.read()
            with suppress(BrokenPipeError, ConnectionResetError):  # a client gone
                self.send_response(answer.status_code)
                self.send_header(
                    "Content-Type", answer.headers.get("content-type", "application/json")
                )
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *_: object) -> None:  # quiet: pytest shows failures
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

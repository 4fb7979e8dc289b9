"""Keyset paging of /task_runs/filter against an in-memory server that is written to mid-read.

The fake implements just what the pager uses of Prefect's filter semantics
(``expected_start_time`` ``after_``/``before_`` inclusive, ``EXPECTED_START_TIME_ASC``
and ``ID_DESC`` sorts, ``limit`` <= 200, ``offset``), and can insert new runs
between two calls, the way a busy server does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from trs_analytics.client import PrefectClient
from trs_analytics.fetch._pages import iter_run_pages

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeServer:
    def __init__(self, runs: list[dict[str, str]]) -> None:
        self.runs = list(runs)
        self.calls = 0
        self.on_call: list[list[dict[str, str]]] = []  # runs to insert before call i

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.calls < len(self.on_call):
            self.runs.extend(self.on_call[self.calls])
        self.calls += 1
        body = json.loads(request.content)
        if body["limit"] > 200:
            return httpx.Response(422, json={"detail": "Invalid limit"})
        window = body.get("task_runs", {}).get("expected_start_time", {})
        rows = [
            r
            for r in self.runs
            if ("after_" not in window or r["expected_start_time"] >= window["after_"])
            and ("before_" not in window or r["expected_start_time"] <= window["before_"])
        ]
        if body["sort"] == "EXPECTED_START_TIME_ASC":
            rows.sort(key=lambda r: r["expected_start_time"])  # stable: insertion order on ties
        else:
            rows.sort(key=lambda r: r["id"], reverse=True)
        offset = body.get("offset", 0)
        return httpx.Response(200, json=rows[offset : offset + body["limit"]])


def _runs(
    n: int, *, start: int = 0, spacing: float = 1.0, prefix: str = "r"
) -> list[dict[str, str]]:
    return [
        {"id": f"{prefix}{i:06d}", "expected_start_time": _ts(i * spacing)}
        for i in range(start, start + n)
    ]


def _read_all(server: FakeServer, **kwargs: object) -> list[str]:
    client = PrefectClient("http://test/api", transport=httpx.MockTransport(server.handler))
    return [r["id"] for page in iter_run_pages(client, {}, **kwargs) for r in page]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("label", "runs"),
    [
        ("distinct timestamps", _runs(1000)),
        ("ten per timestamp", _runs(1000, spacing=0.1)),
        ("450 at one instant", _runs(450, spacing=0.0)),
        ("exactly one page", _runs(200)),
        ("empty", []),
        (
            "ties straddling page edges",
            [{"id": f"t{i:04d}", "expected_start_time": _ts(i // 7)} for i in range(997)],
        ),
    ],
)
def test_reads_every_run_once(label: str, runs: list[dict[str, str]]) -> None:
    server = FakeServer(runs)
    ids = _read_all(server)
    assert sorted(ids) == sorted(r["id"] for r in runs), label
    assert len(ids) == len(set(ids)), label


def test_runs_written_meanwhile_neither_shift_nor_duplicate() -> None:
    # 600 existing runs; before each of the next calls the server gains runs that
    # sort after the cursor. (Runs persisted late *behind* the cursor are caught
    # by the export's overlap window, not by one read.)
    server = FakeServer(_runs(600))
    server.on_call = [[], *[_runs(5, start=10_000 + 10 * k, prefix=f"new{k}-") for k in range(4)]]
    ids = _read_all(server)
    assert len(ids) == len(set(ids))
    assert {r["id"] for r in _runs(600)} <= set(ids)
    # every run written after the read began and later than the cursor is seen too
    assert set(ids) == {r["id"] for r in server.runs}


def test_offset_paging_would_have_lost_rows() -> None:
    """The hazard the keyset pager avoids: offset paging under inserts at the front."""
    server = FakeServer(_runs(400))
    server.on_call = [[], [{"id": "late", "expected_start_time": _ts(-1)}]]
    client = httpx.Client(transport=httpx.MockTransport(server.handler))
    seen: list[str] = []
    for offset in (0, 200, 400):
        body = {"sort": "EXPECTED_START_TIME_ASC", "limit": 200, "offset": offset}
        seen += [r["id"] for r in client.post("http://test/api/task_runs/filter", json=body).json()]
    assert len(seen) != len(set(seen))  # the row at the page edge came twice


def test_window_bounds_are_respected() -> None:
    server = FakeServer(_runs(100))
    ids = _read_all(server, after=T0 + timedelta(seconds=10), before=T0 + timedelta(seconds=19))
    assert ids == [f"r{i:06d}" for i in range(10, 20)]


def test_requests_stay_near_one_per_page() -> None:
    server = FakeServer(_runs(1000))
    _read_all(server)
    assert server.calls == 6  # 5 full pages + one short page (the last boundary re-read)

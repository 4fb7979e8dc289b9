"""The server probe: version and TaskRunFilter fields, from recorded real answers, once per client."""

from __future__ import annotations

import httpx
import pytest

from tests.recorded import Router
from trs_analytics.client import PrefectClient, ServerInfo, probe_server
from trs_analytics.client._probe import CURRENT_TIME_FIELDS
from trs_analytics.exceptions import TransportError

API = "http://test/api"


@pytest.mark.parametrize(
    ("server", "version", "fields"),
    [
        ("3.9.1", "3.9.1", {"start_time", "expected_start_time", "end_time"}),
        ("3.2.15", "3.2.15", {"start_time", "expected_start_time"}),
        ("2.20.16", "2.20.16", {"start_time"}),
    ],
)
def test_the_probe_reads_version_and_filter_fields(
    server: str, version: str, fields: set[str]
) -> None:
    router = Router(server=server)
    with PrefectClient(API, transport=httpx.MockTransport(router)) as client:
        info = probe_server(client)
    assert info == ServerInfo(version, frozenset(fields))
    assert router.paths() == ["GET /api/admin/version", "GET /api/openapi.json"]


def test_a_server_that_answers_neither_is_taken_as_current() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "Not Found"})

    with PrefectClient(API, transport=httpx.MockTransport(handler)) as client:
        info = probe_server(client)
    assert info == ServerInfo(None, CURRENT_TIME_FIELDS)
    assert info.major is None


def test_a_schema_without_task_run_filter_is_taken_as_current() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/admin/version"):
            return httpx.Response(200, json="3.9.1")
        return httpx.Response(200, json={"openapi": "3.1.0", "components": {}})

    with PrefectClient(API, transport=httpx.MockTransport(handler)) as client:
        assert probe_server(client).task_run_time_fields == CURRENT_TIME_FIELDS


def test_server_info_asks_once_per_client() -> None:
    router = Router(server="2.20.16")
    with PrefectClient(API, transport=httpx.MockTransport(router)) as client:
        first = client.server_info()
        assert client.server_info() is first
    assert len(router.requests) == 2


def test_an_unreachable_server_is_an_error_not_an_unknown_version() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with (
        PrefectClient(API, transport=httpx.MockTransport(handler), max_attempts=1) as client,
        pytest.raises(TransportError, match="refused"),
    ):
        client.server_info()

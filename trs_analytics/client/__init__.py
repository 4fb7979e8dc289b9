"""HTTP client layer: configuration, auth, CSRF, retries, request budget, server probe."""

from __future__ import annotations

from trs_analytics.client._auth import PrefectAuth
from trs_analytics.client._budget import RequestBudget
from trs_analytics.client._client import (
    RETRY_STATUSES,
    ClientStats,
    PrefectClient,
    parse_retry_after,
)
from trs_analytics.client._concurrency import ordered_map, prefetch
from trs_analytics.client._config import (
    ClientSettings,
    configured_api_url,
    redact_url,
    resolve_settings,
    task_run_url,
    ui_url,
)
from trs_analytics.client._probe import ServerInfo, probe_server

__all__ = [
    "RETRY_STATUSES",
    "ClientSettings",
    "ClientStats",
    "PrefectAuth",
    "PrefectClient",
    "RequestBudget",
    "ServerInfo",
    "configured_api_url",
    "ordered_map",
    "parse_retry_after",
    "prefetch",
    "probe_server",
    "redact_url",
    "resolve_settings",
    "task_run_url",
    "ui_url",
]

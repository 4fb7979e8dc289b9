"""HTTP client layer: configuration, auth, CSRF, retries, request budget."""

from __future__ import annotations

from trs_analytics.client._budget import RequestBudget
from trs_analytics.client._client import (
    RETRY_STATUSES,
    ClientStats,
    PrefectClient,
    parse_retry_after,
)
from trs_analytics.client._config import ClientSettings, redact_url, resolve_settings

__all__ = [
    "RETRY_STATUSES",
    "ClientSettings",
    "ClientStats",
    "PrefectClient",
    "RequestBudget",
    "parse_retry_after",
    "redact_url",
    "resolve_settings",
]

"""Fetch layer: Prefect API pages -> typed Polars frames in the contract's schema."""

from __future__ import annotations

from trs_analytics.fetch._api import (
    DEFAULT_EVENT_RETENTION,
    FilterKwargs,
    Source,
    StateFilters,
    fetch_states,
    iter_states,
    resolve_source,
)
from trs_analytics.fetch._names import check_names
from trs_analytics.fetch._records import derive_task_name
from trs_analytics.fetch._window import parse_when

__all__ = [
    "DEFAULT_EVENT_RETENTION",
    "FilterKwargs",
    "Source",
    "StateFilters",
    "check_names",
    "derive_task_name",
    "fetch_states",
    "iter_states",
    "parse_when",
    "resolve_source",
]

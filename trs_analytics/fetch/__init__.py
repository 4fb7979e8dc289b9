"""Fetch layer: Prefect API pages -> typed Polars frames in the contract's schema."""

from __future__ import annotations

from trs_analytics._time import parse_when
from trs_analytics.fetch._api import (
    Source,
    check_client_args,
    check_source,
    fetch_flow_run_states,
    fetch_states,
    iter_flow_run_states,
    iter_states,
    open_client,
    run_tally,
    stream_states,
    window,
)
from trs_analytics.fetch._filters import FilterKwargs, StateFilters
from trs_analytics.fetch._limits import fetch_concurrency_limits
from trs_analytics.fetch._names import check_filter_names, check_names
from trs_analytics.fetch._pages import iter_event_pages
from trs_analytics.fetch._records import derive_task_name
from trs_analytics.fetch._sources import (
    DEFAULT_EVENT_RETENTION,
    Segment,
    SourcePlan,
    plan_sources,
)

__all__ = [
    "DEFAULT_EVENT_RETENTION",
    "FilterKwargs",
    "Segment",
    "Source",
    "SourcePlan",
    "StateFilters",
    "check_client_args",
    "check_filter_names",
    "check_names",
    "check_source",
    "derive_task_name",
    "fetch_concurrency_limits",
    "fetch_flow_run_states",
    "fetch_states",
    "iter_event_pages",
    "iter_flow_run_states",
    "iter_states",
    "open_client",
    "parse_when",
    "plan_sources",
    "run_tally",
    "stream_states",
    "window",
]

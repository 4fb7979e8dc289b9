"""Metrics: pure functions from a states frame to durations, retries and failure rates.

Each function takes a DataFrame or a LazyFrame and returns the same kind: a
LazyFrame stays lazy (nothing is collected). Every function first builds each
task run's *timeline*: its states de-duplicated (by ``id``) and ordered by
``timestamp``. ``docs/metrics.md`` describes the semantics in full.
"""

from __future__ import annotations

from trs_analytics.metrics._common import ANY, TERMINAL, Selector
from trs_analytics.metrics._durations import (
    Occurrence,
    durations,
    end_to_end,
    lateness,
    queue_wait,
    retry_wait,
    run_time,
    time_in_state,
)
from trs_analytics.metrics._failures import failure_rates, wilson
from trs_analytics.metrics._retries import retry_counts, retry_distribution
from trs_analytics.metrics._summary import Metric, compare_windows, regressions, summarize

__all__ = [
    "ANY",
    "TERMINAL",
    "Metric",
    "Occurrence",
    "Selector",
    "compare_windows",
    "durations",
    "end_to_end",
    "failure_rates",
    "lateness",
    "queue_wait",
    "regressions",
    "retry_counts",
    "retry_distribution",
    "retry_wait",
    "run_time",
    "summarize",
    "time_in_state",
    "wilson",
]

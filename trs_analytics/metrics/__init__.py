"""Metrics: pure functions from a states frame to durations, retries and failure rates.

Each function takes a frame of any supported engine (a Polars DataFrame or
LazyFrame, a DuckDB relation, a PySpark DataFrame) and returns the same kind:
lazy inputs stay lazy (nothing is computed). Each metric is written once, in
narwhals expressions (:mod:`trs_analytics.metrics._frames` is the only place
that tells the engines apart). Every function first builds each task run's
*timeline*: its states de-duplicated and ordered by ``timestamp``.
``docs/metrics.md`` describes the semantics in full, ``docs/engines.md`` the engines.
"""

from __future__ import annotations

from trs_analytics.metrics._anomalies import (
    ANOMALY_COLUMNS,
    AnomalyMetric,
    AnomalyOptions,
    Direction,
    Seasonality,
    detect_anomalies,
)
from trs_analytics.metrics._breakdowns import (
    OUTCOME_COLUMNS,
    duration_trend,
    error_messages,
    failed_runs,
    outcome_counts,
    run_outcomes,
    run_volume,
    slowest_runs,
)
from trs_analytics.metrics._buckets import parse_every
from trs_analytics.metrics._cache import cache_hits
from trs_analytics.metrics._common import (
    ANY,
    RUN_COLUMNS,
    TERMINAL,
    Selector,
    explode_tags,
)
from trs_analytics.metrics._common import (
    as_list as as_list,  # the one normaliser of `by` (a name or names), shared with charts
)
from trs_analytics.metrics._concurrency import concurrency, peak_concurrency, slot_waits
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
from trs_analytics.metrics._flows import (
    NO_DEPLOYMENT,
    currently_failing,
    deployment_or_flow,
    landing_time,
    time_to_resolution,
)
from trs_analytics.metrics._frames import to_polars
from trs_analytics.metrics._inside import critical_path, flow_time_shares
from trs_analytics.metrics._retries import retry_counts, retry_distribution
from trs_analytics.metrics._run_table import kept_run_table, run_table
from trs_analytics.metrics._seconds import in_seconds
from trs_analytics.metrics._sla import SlaReport, SlaRule, parse_rules, sla_report
from trs_analytics.metrics._states import state_intervals, transitions
from trs_analytics.metrics._stuck import stuck_runs
from trs_analytics.metrics._summary import (
    CompareOptions,
    Metric,
    compare_windows,
    regressions,
    summarize,
)

__all__ = [
    "ANOMALY_COLUMNS",
    "ANY",
    "NO_DEPLOYMENT",
    "OUTCOME_COLUMNS",
    "RUN_COLUMNS",
    "TERMINAL",
    "AnomalyMetric",
    "AnomalyOptions",
    "CompareOptions",
    "Direction",
    "Metric",
    "Occurrence",
    "Seasonality",
    "Selector",
    "SlaReport",
    "SlaRule",
    "cache_hits",
    "compare_windows",
    "concurrency",
    "critical_path",
    "currently_failing",
    "deployment_or_flow",
    "detect_anomalies",
    "duration_trend",
    "durations",
    "end_to_end",
    "error_messages",
    "explode_tags",
    "failed_runs",
    "failure_rates",
    "flow_time_shares",
    "in_seconds",
    "kept_run_table",
    "landing_time",
    "lateness",
    "outcome_counts",
    "parse_every",
    "parse_rules",
    "peak_concurrency",
    "queue_wait",
    "regressions",
    "retry_counts",
    "retry_distribution",
    "retry_wait",
    "run_outcomes",
    "run_table",
    "run_time",
    "run_volume",
    "sla_report",
    "slot_waits",
    "slowest_runs",
    "state_intervals",
    "stuck_runs",
    "summarize",
    "time_in_state",
    "time_to_resolution",
    "to_polars",
    "transitions",
    "wilson",
]

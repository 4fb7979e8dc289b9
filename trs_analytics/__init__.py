"""trs_analytics: task-run state analytics for Prefect.

Layers, with imports pointing one way (a layer imports only the ones after it):
cli and flows; prometheus; check; report, export and testing (the test-data
generators); charts and storage; metrics and fetch; client; the shared base (``schema``,
``engines``, ``_time``, ``_atomic``, ``_progress``, ``_format``, then
``exceptions``, ``_redact``). The one definition is the import-linter
contracts in ``pyproject.toml`` (``[tool.importlinter]``); README's
Architecture describes each module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from trs_analytics.client import PrefectClient
from trs_analytics.exceptions import (
    AuthenticationError,
    ConfigurationError,
    DatasetLockedError,
    MissingDependencyError,
    NotFoundError,
    PrefectAPIError,
    RequestRejectedError,
    ResponseFormatError,
    SchemaError,
    ServerError,
    StorageError,
    TransportError,
    TrsAnalyticsError,
)
from trs_analytics.export import export_states
from trs_analytics.fetch import (
    StateFilters,
    fetch_concurrency_limits,
    fetch_flow_run_states,
    fetch_states,
    iter_flow_run_states,
    iter_states,
    parse_when,
)
from trs_analytics.metrics import (
    OUTCOME_COLUMNS,
    SlaReport,
    SlaRule,
    cache_hits,
    compare_windows,
    concurrency,
    critical_path,
    currently_failing,
    deployment_or_flow,
    detect_anomalies,
    duration_trend,
    durations,
    end_to_end,
    error_messages,
    explode_tags,
    failed_runs,
    failure_rates,
    flow_time_shares,
    in_seconds,
    kept_run_table,
    landing_time,
    lateness,
    outcome_counts,
    parse_every,
    parse_rules,
    peak_concurrency,
    queue_wait,
    regressions,
    retry_counts,
    retry_distribution,
    retry_wait,
    run_outcomes,
    run_table,
    run_time,
    run_volume,
    sla_report,
    slot_waits,
    slowest_runs,
    state_intervals,
    stuck_runs,
    summarize,
    time_in_state,
    time_to_resolution,
    to_polars,
    transitions,
)
from trs_analytics.schema import (
    CONCURRENCY_LIMITS_SCHEMA,
    FLOW_RUN_STATES_SCHEMA,
    STATE_TYPES,
    STATES_SCHEMA,
    TERMINAL_TYPES,
    empty_flow_run_states,
    empty_states,
    validate_states,
)
from trs_analytics.storage import scan_flow_run_states, scan_states, write_states

if TYPE_CHECKING:
    from trs_analytics.charts import save_chart
    from trs_analytics.report import write_report

__version__ = "0.1.0"

__all__ = [
    "CONCURRENCY_LIMITS_SCHEMA",
    "FLOW_RUN_STATES_SCHEMA",
    "OUTCOME_COLUMNS",
    "STATES_SCHEMA",
    "STATE_TYPES",
    "TERMINAL_TYPES",
    "AuthenticationError",
    "ConfigurationError",
    "DatasetLockedError",
    "MissingDependencyError",
    "NotFoundError",
    "PrefectAPIError",
    "PrefectClient",
    "RequestRejectedError",
    "ResponseFormatError",
    "SchemaError",
    "ServerError",
    "SlaReport",
    "SlaRule",
    "StateFilters",
    "StorageError",
    "TransportError",
    "TrsAnalyticsError",
    "__version__",
    "cache_hits",
    "compare_windows",
    "concurrency",
    "critical_path",
    "currently_failing",
    "deployment_or_flow",
    "detect_anomalies",
    "duration_trend",
    "durations",
    "empty_flow_run_states",
    "empty_states",
    "end_to_end",
    "error_messages",
    "explode_tags",
    "export_states",
    "failed_runs",
    "failure_rates",
    "fetch_concurrency_limits",
    "fetch_flow_run_states",
    "fetch_states",
    "flow_time_shares",
    "in_seconds",
    "iter_flow_run_states",
    "iter_states",
    "kept_run_table",
    "landing_time",
    "lateness",
    "outcome_counts",
    "parse_every",
    "parse_rules",
    "parse_when",
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
    "save_chart",
    "scan_flow_run_states",
    "scan_states",
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
    "validate_states",
    "write_report",
    "write_states",
]


#: Names the top level held before the test-data generators moved to :mod:`trs_analytics.testing`.
_MOVED_TO_TESTING: Final = frozenset(
    {"Planted", "generate_flow_run_states", "generate_planted", "generate_states"}
)


def __getattr__(name: str) -> object:
    """Import the chart and report layers (Altair, vl-convert) only when first used.

    A name that moved to :mod:`trs_analytics.testing` raises an AttributeError saying where.
    """
    if name == "save_chart":
        from trs_analytics.charts import save_chart

        return save_chart
    if name == "write_report":
        from trs_analytics.report import write_report

        return write_report
    if name in _MOVED_TO_TESTING:
        msg = (
            f"module 'trs_analytics' has no attribute {name!r}: the test-data generators "
            f"moved. Hint: use trs_analytics.testing.{name} "
            f"(from trs_analytics.testing import {name})."
        )
        raise AttributeError(msg)
    msg = f"module 'trs_analytics' has no attribute {name!r}"
    raise AttributeError(msg)

"""Charts: Altair charts of task-run states, aggregated in Polars first.

Every chart function takes a states frame of any engine (Polars DataFrame or
LazyFrame, DuckDB relation, Spark DataFrame), computes what it draws with
:mod:`trs_analytics.metrics` and aggregates it to a few rows per group or time
bucket on that engine, brings those rows to Polars, and returns an Altair chart. It never displays or
saves: display it in a notebook, put it in a report
(:func:`trs_analytics.report.write_report`) or save it with :func:`save_chart`.
Each chart has a companion function that returns the aggregated frame it draws,
and a ``draw_*`` function that draws that frame (the report computes the frames
once and draws them).

State types have the same colours in every chart (:data:`STATE_COLORS`, the
Prefect UI's). In a notebook, ``alt.theme.enable(THEME)`` gives charts the
look they have in reports and saved files.
"""

from __future__ import annotations

from trs_analytics.charts._anomalies import anomaly_chart, anomaly_series
from trs_analytics.charts._breakdowns import duration_trend_chart, volume_chart
from trs_analytics.charts._common import time_bounds, time_span
from trs_analytics.charts._durations import (
    DURATION_METRICS,
    DurationMetric,
    draw_durations,
    duration_chart,
    duration_label,
    duration_stats,
)
from trs_analytics.charts._failures import (
    draw_failure_rates,
    failure_rate_chart,
    failure_rate_series,
)
from trs_analytics.charts._flows import (
    concurrency_chart,
    concurrency_series,
    critical_path_chart,
    critical_path_segments,
    flow_duration_chart,
    landing_time_chart,
    landing_times,
)
from trs_analytics.charts._lateness import (
    WAITS_AGREE_NOTE,
    draw_waits,
    wait_chart,
    wait_series,
    waits_agree,
)
from trs_analytics.charts._retries import draw_retries, retry_chart, retry_outcomes
from trs_analytics.charts._save import ChartFormat, chart_spec, save_chart
from trs_analytics.charts._theme import (
    CONFIG,
    STATE_COLORS,
    THEME,
    AnyChart,
    state_color,
    state_scale,
)
from trs_analytics.charts._timeline import (
    draw_timeline,
    flow_run_segments,
    one_flow_run,
    pick_flow_run,
    timeline_chart,
)
from trs_analytics.charts._transitions import draw_transitions, transition_chart, transition_counts

__all__ = [
    "CONFIG",
    "DURATION_METRICS",
    "STATE_COLORS",
    "THEME",
    "WAITS_AGREE_NOTE",
    "AnyChart",
    "ChartFormat",
    "DurationMetric",
    "anomaly_chart",
    "anomaly_series",
    "chart_spec",
    "concurrency_chart",
    "concurrency_series",
    "critical_path_chart",
    "critical_path_segments",
    "draw_durations",
    "draw_failure_rates",
    "draw_retries",
    "draw_timeline",
    "draw_transitions",
    "draw_waits",
    "duration_chart",
    "duration_label",
    "duration_stats",
    "duration_trend_chart",
    "failure_rate_chart",
    "failure_rate_series",
    "flow_duration_chart",
    "flow_run_segments",
    "landing_time_chart",
    "landing_times",
    "one_flow_run",
    "pick_flow_run",
    "retry_chart",
    "retry_outcomes",
    "save_chart",
    "state_color",
    "state_scale",
    "time_bounds",
    "time_span",
    "timeline_chart",
    "transition_chart",
    "transition_counts",
    "volume_chart",
    "wait_chart",
    "wait_series",
    "waits_agree",
]

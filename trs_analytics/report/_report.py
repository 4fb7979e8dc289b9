"""write_report: a states dataset in, one self-contained HTML file out."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import narwhals as nw
import polars as pl

from trs_analytics._atomic import atomic_write
from trs_analytics._format import auto_every, span_text
from trs_analytics._format import auto_period as _auto_period
from trs_analytics.charts import (
    CONFIG,
    duration_chart,
    duration_trend_chart,
    failure_rate_chart,
    failure_rate_series,
    retry_chart,
    timeline_chart,
    transition_chart,
    volume_chart,
    wait_chart,
)
from trs_analytics.charts._common import time_span
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.metrics import RUN_COLUMNS, duration_trend, run_volume, to_polars
from trs_analytics.report._breakdowns import error_table, outcome_table, run_table
from trs_analytics.report._flagged import flagged_sections
from trs_analytics.report._flows import flow_run_sections
from trs_analytics.report._html import page
from trs_analytics.report._links import ui_url as _ui_from_api
from trs_analytics.report._sections import Cards, ChartSection, Section, TableSection, render
from trs_analytics.report._tables import (
    headlines,
    regression_table,
    worst_by_failure_rate,
    worst_by_p95,
)
from trs_analytics.schema import REQUIRED_METRIC_COLUMNS, StateType, require_columns

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trs_analytics.metrics import SlaRule

__all__ = ["write_report"]


def _failure_section(states: pl.DataFrame) -> ChartSection:
    """Failure rates per task, or over all runs when no task failed (no empty panels)."""
    if failure_rate_series(states, by="task_name", top=1).is_empty():
        caption = "No task run failed: the rate over all runs."
        return ChartSection("Failure rates over time", failure_rate_chart(states, by=None), caption)
    chart = failure_rate_chart(states, by="task_name", top=6)
    return ChartSection("Failure rates over time", chart, "The tasks with the most failed runs.")


def auto_period(states: pl.DataFrame) -> str:
    """The longest round width (``trs_analytics._format.ROUND_WIDTHS``) the data spans twice.

    Examples:
        >>> import trs_analytics as ta
        >>> auto_period(ta.generate_states(300, seed=1, days=3))
        '1d'
    """
    return _auto_period(time_span(states))


def _sections(
    states: pl.DataFrame,
    period: str,
    now: datetime | None,
    ui: str | None,
    flow_runs: pl.DataFrame | None = None,
    rules: Sequence[SlaRule] = (),
) -> list[Section]:
    """The report, top to bottom."""
    # first, so that a bad period or now fails before the charts are drawn
    regressed, regression_caption, no_regression = regression_table(states, period=period, now=now)
    every = auto_every(time_span(states), buckets=40)
    link_note = "" if ui else " Pass ui_url= (or api_url=) to link the runs to the Prefect UI."
    sections: list[Section] = [
        Cards("Headline numbers", headlines(states)),
        ChartSection("Run volume", volume_chart(run_volume(states, every=every))),
        ChartSection(
            "Run time per task",
            duration_chart(states, metric="run_time", top=20),
            "Time spent running, over all attempts, per task run.",
        ),
        _failure_section(states),
        TableSection(
            "Top error messages per task",
            error_table(states),
            empty="No failed or crashed state has a message.",
            caption="Messages of Failed and Crashed states; quoted values and numbers folded "
            "('…', N) so one error is one row.",
        ),
        TableSection(
            "Failed runs",
            run_table(states, kind="failed", ui=ui, top=15),
            empty="No task run ended Failed, Crashed or Cancelled.",
            caption="The latest runs that ended Failed, Crashed or Cancelled." + link_note,
            links={"task run": "url"},
        ),
        TableSection(
            "Slowest runs",
            run_table(states, kind="slowest", ui=ui, top=10),
            empty="No task run ran.",
            caption="By run time (all attempts)." + link_note,
            links={"task run": "url"},
        ),
    ]
    last = states["timestamp"].max()
    at = now or (last if isinstance(last, datetime) else datetime.now(UTC))
    sections += flagged_sections(states, now=at, rules=rules, ui=ui)
    for by, noun in _BREAKDOWNS:
        sections.append(
            TableSection(
                f"Runs per {noun}",
                outcome_table(states, by=by),
                empty=f"No task run here has a {noun}.",
                caption="By final state; crashed and cancelled apart from failed.",
            )
        )
    sections += [
        TableSection(
            "Worst tasks by p95 run time",
            worst_by_p95(states),
            empty="No task has a measured run time.",
        ),
        TableSection(
            "Worst tasks by failure rate",
            worst_by_failure_rate(states),
            empty="No task run failed.",
            caption="Ranked by the lower end of the 95% interval.",
        ),
        TableSection(
            f"Regressions against the previous {period}",
            regressed,
            empty=no_regression,
            caption=regression_caption,
        ),
        ChartSection(
            "Run time over time",
            duration_trend_chart(duration_trend(states, every=every)),
            "Each task's p50 per bucket against its median.",
        ),
        ChartSection(
            "Retries",
            retry_chart(states, top=15),
            "Retried runs per task, coloured by how they ended.",
        ),
        ChartSection("Queue wait and lateness", wait_chart(states)),
        ChartSection("State transitions", transition_chart(states, level="name")),
        ChartSection(
            "A flow run up close", timeline_chart(states), "The flow run with the most retries."
        ),
    ]
    if flow_runs is not None and not flow_runs.is_empty():
        every_flow = auto_every(time_span(flow_runs), buckets=40)
        sections += flow_run_sections(flow_runs, every=every_flow)
    return sections


#: The per-run columns the report breaks runs down by, and what a value is called.
_BREAKDOWNS = (
    ("flow_name", "flow"),
    ("deployment_id", "deployment"),
    ("work_pool_name", "work pool"),
    ("task_name", "task"),
)


#: The columns the report reads (the state's own and the run's); the rest is not loaded.
_REPORT_COLUMNS = ("id", *REQUIRED_METRIC_COLUMNS, "message", *RUN_COLUMNS)


def _report_frame(states: Any) -> pl.DataFrame:
    """The report's columns of ``states`` (any engine) as a Polars DataFrame."""
    if isinstance(states, pl.DataFrame | pl.LazyFrame):
        return states.lazy().collect()
    frame = nw.from_native(states)
    present = [c for c in _REPORT_COLUMNS if c in frame.columns]
    out = to_polars(frame.select(present).to_native())
    if "type" in out.columns:
        out = out.with_columns(pl.col("type").cast(StateType))
    return out


def _flow_run_frame(flow_run_states: Any) -> pl.DataFrame:
    """The flow-run states (any engine) as a Polars DataFrame, once their columns are checked."""
    require_columns(
        flow_run_states,
        ["flow_run_id", "type", "name", "timestamp", "deployment_name"],
        caller="write_report",
    )
    frame = to_polars(flow_run_states)
    return frame.with_columns(pl.col("type").cast(StateType)) if "type" in frame.columns else frame


def write_report(
    states: Any,
    out: str | Path,
    *,
    title: str | None = None,
    period: str = "auto",
    now: datetime | None = None,
    ui_url: str | None = None,
    api_url: str | None = None,
    flow_run_states: Any | None = None,
    rules: Sequence[SlaRule] = (),
) -> Path:
    """Write a self-contained HTML report of a states dataset, readable offline.

    The page holds the headline numbers (runs, failure rates with their 95%
    interval, retries and rescues, run time, queue wait and lateness), the
    charts of :mod:`trs_analytics.charts`, the worst tasks by p95 run time and
    by failure rate, the tasks that regressed in the last ``period``
    against the ``period`` before, and the anomalous days, stuck runs and SLA
    breaches ("Anomalies and SLAs", one line when nothing is flagged). The Vega JavaScript is inlined (no CDN);
    each chart's menu saves it as PNG or SVG.

    Args:
        states: a states frame, e.g. ``trs_analytics.scan_states(path)``, on
            any engine (a DuckDB relation or a Spark DataFrame too: the
            columns the report draws are read from it into Polars).
        out: the HTML file to write (missing folders are made); it is replaced
            atomically.
        title: the page title; default: "Task-run report".
        period: the comparison window for regressions (``"1d"``, ``"7d"``);
            ``"auto"`` (default): the longest round width (1m, 5m, 10m, 15m,
            30m, 1h, 3h, 6h, 12h, 1d, 7d) that the data spans at least twice
            (:func:`auto_period`).
        now: the end of the current period (time-zone aware); default: the
            latest run start in the data.
        ui_url: the Prefect UI's address, to link runs to their pages
            (``http://127.0.0.1:4200``).
        api_url: the Prefect API's address, to derive ``ui_url`` from when it
            is not given (``.../api`` on a server, ``app.prefect.cloud/...``
            for Prefect Cloud).
        flow_run_states: the dataset's flow-run states (any engine), if it has
            them: the report then ends with its "Flow runs" sections
            (duration per deployment with its median, landing times, failure
            rates per deployment, deployments currently failing with their
            time to resolution). Without them the report has no such part.
        rules: SLA rules (``trs_analytics.check.load_rules``) whose breaches
            the "Anomalies and SLAs" section lists.

    Returns:
        The path written.

    Raises:
        SchemaError: ``states`` lacks a column the report needs.
        ConfigurationError: ``states`` has no task-run state, or a bad
            ``period``/``now``.

    Examples:
        >>> import tempfile
        >>> import trs_analytics as ta
        >>> from trs_analytics.report import write_report
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = write_report(ta.generate_states(300, seed=1), f"{folder}/r.html")
        ...     text = path.read_text()
        >>> "<h1>Task-run report</h1>" in text, text.count('class="chart"')
        (True, 8)
    """
    require_columns(
        states,
        ["task_run_id", "flow_run_id", "type", "name", "timestamp", "task_name"],
        caller="write_report",
    )
    frame = _report_frame(states)
    if frame.is_empty():
        msg = "write_report() got no task-run states. Hint: check the dataset path and its filters."
        raise ConfigurationError(msg)
    heading = title or "Task-run report"
    if period == "auto":
        period = auto_period(frame)
    ui = ui_url or (_ui_from_api(api_url) if api_url else None)
    flow_runs = None if flow_run_states is None else _flow_run_frame(flow_run_states)
    body, specs = render(_sections(frame, period, now, ui, flow_runs, rules))
    generated = datetime.now(UTC)
    first, last = frame["timestamp"].min(), frame["timestamp"].max()
    span = (
        span_text(first, last) if isinstance(first, datetime) and isinstance(last, datetime) else ""
    )
    meta = (
        f"States from {span}. Generated {generated:%Y-%m-%d %H:%M} UTC. "
        "All times UTC; failure rates count Failed and Crashed runs among finished ones."
    )
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    html = page(title=heading, meta=meta, body=body, specs=specs, config=CONFIG)

    # atomic: a reader never sees half a report
    def write(handle: BinaryIO) -> None:
        handle.write(html.encode("utf-8"))

    atomic_write(path, write)
    return path

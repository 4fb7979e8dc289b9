"""write_report: a states dataset in, one self-contained HTML file out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trs_analytics.charts import (
    CONFIG,
    chart_spec,
    duration_chart,
    failure_rate_chart,
    failure_rate_series,
    retry_chart,
    timeline_chart,
    transition_chart,
    wait_chart,
)
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.report._html import card, chart_block, page, table
from trs_analytics.report._tables import (
    headlines,
    regression_table,
    worst_by_failure_rate,
    worst_by_p95,
)
from trs_analytics.schema import require_columns

if TYPE_CHECKING:
    import polars as pl

    from trs_analytics.charts import AnyChart

__all__ = ["write_report"]


def _charts(states: pl.DataFrame) -> list[tuple[str, str, AnyChart]]:
    """The report's charts in order: (section heading, caption, chart)."""
    return [
        (
            "Run time per task",
            "Time spent running, over all attempts, per task run.",
            duration_chart(states, metric="run_time", top=20),
        ),
        _failure_section(states),
        (
            "Retries",
            "Retried runs per task, coloured by how they ended.",
            retry_chart(states, top=15),
        ),
        ("Lateness and queue wait", "", wait_chart(states)),
        ("State transitions", "", transition_chart(states, level="name")),
        (
            "A flow run up close",
            "The flow run with the most retries.",
            timeline_chart(states),
        ),
    ]


def _failure_section(states: pl.DataFrame) -> tuple[str, str, AnyChart]:
    """Failure rates per task, or over all runs when no task failed (no empty panels)."""
    if failure_rate_series(states, by="task_name", top=1).is_empty():
        caption = "No task run failed: the rate over all runs."
        return "Failure rates over time", caption, failure_rate_chart(states, by=None)
    chart = failure_rate_chart(states, by="task_name", top=6)
    return "Failure rates over time", "The tasks with the most failed runs.", chart


def _span(states: pl.DataFrame) -> str:
    first, last = states["timestamp"].min(), states["timestamp"].max()
    if not isinstance(first, datetime) or not isinstance(last, datetime):
        return "no states"
    return f"States from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"


#: Candidate periods for ``period="auto"``, longest first.
AUTO_PERIODS = (
    ("7d", timedelta(days=7)),
    ("1d", timedelta(days=1)),
    ("1h", timedelta(hours=1)),
    ("10m", timedelta(minutes=10)),
    ("1m", timedelta(minutes=1)),
)


def auto_period(states: pl.DataFrame) -> str:
    """The longest of 7d, 1d, 1h, 10m and 1m that the data spans at least twice.

    Examples:
        >>> import trs_analytics as ta
        >>> auto_period(ta.generate_states(300, seed=1, days=3))
        '1d'
    """
    first, last = states["timestamp"].min(), states["timestamp"].max()
    if isinstance(first, datetime) and isinstance(last, datetime):
        for name, length in AUTO_PERIODS:
            if last - first >= 2 * length:
                return name
    return AUTO_PERIODS[-1][0]


def _body(states: pl.DataFrame, period: str, now: datetime | None) -> tuple[str, list[Any]]:
    cards = "".join(card(h) for h in headlines(states))
    sections = [f'<h2>Headline numbers</h2><div class="cards">{cards}</div>']
    # first, so that a bad period or now fails before the charts are drawn
    regressed, regression_caption = regression_table(states, period=period, now=now)
    specs: list[dict[str, Any]] = []
    charts = _charts(states)
    for heading, caption, chart in charts[:3]:
        sections.append(_chart_section(heading, caption, len(specs)))
        specs.append(chart_spec(chart))
    sections += [
        "<h2>Worst tasks by p95 run time</h2>",
        table(worst_by_p95(states), empty="No task has a measured run time."),
        "<h2>Worst tasks by failure rate</h2>",
        '<p class="caption">Ranked by the lower end of the 95% interval.</p>',
        table(worst_by_failure_rate(states), empty="No task run failed."),
        f"<h2>Regressions against the previous {period}</h2>",
        f'<p class="caption">{regression_caption}</p>',
        table(regressed, empty="No task got significantly worse."),
    ]
    for heading, caption, chart in charts[3:]:
        sections.append(_chart_section(heading, caption, len(specs)))
        specs.append(chart_spec(chart))
    return "\n".join(sections), specs


def _chart_section(heading: str, caption: str, index: int) -> str:
    text = f'<p class="caption">{caption}</p>' if caption else ""
    return f"<h2>{heading}</h2>{text}{chart_block(index)}"


def write_report(
    states: pl.LazyFrame | pl.DataFrame,
    out: str | Path,
    *,
    title: str | None = None,
    period: str = "auto",
    now: datetime | None = None,
) -> Path:
    """Write a self-contained HTML report of a states dataset, readable offline.

    The page holds the headline numbers (runs, failure rates with their 95%
    interval, retries and rescues, run time, queue wait and lateness), the
    charts of :mod:`trs_analytics.charts`, the worst tasks by p95 run time and
    by failure rate, and the tasks that regressed in the last ``period``
    against the ``period`` before. The Vega JavaScript is inlined (no CDN);
    each chart's menu saves it as PNG or SVG.

    Args:
        states: a states frame, e.g. ``trs_analytics.scan_states(path)``.
        out: the HTML file to write (missing folders are made); it is replaced
            atomically.
        title: the page title; default: "Task-run report".
        period: the comparison window for regressions (``"1d"``, ``"7d"``);
            ``"auto"`` (default): the longest of 7d, 1d, 1h, 10m and 1m that
            the data spans at least twice (:func:`auto_period`).
        now: the end of the current period (time-zone aware); default: the
            latest run start in the data.

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
        (True, 6)
    """
    require_columns(
        states,
        ["task_run_id", "flow_run_id", "type", "name", "timestamp", "task_name"],
        caller="write_report",
    )
    frame = states.lazy().collect()
    if frame.is_empty():
        msg = "write_report() got no task-run states. Hint: check the dataset path and its filters."
        raise ConfigurationError(msg)
    heading = title or "Task-run report"
    if period == "auto":
        period = auto_period(frame)
    body, specs = _body(frame, period, now)
    generated = datetime.now(UTC)
    meta = (
        f"{_span(frame)}. Generated {generated:%Y-%m-%d %H:%M} UTC. "
        "All times UTC; failure rates count Failed and Crashed runs among finished ones."
    )
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    html = page(title=heading, meta=meta, body=body, specs=specs, config=CONFIG)
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)  # atomic: a reader never sees half a report
    return path

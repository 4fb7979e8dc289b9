"""write_report: a states dataset in, one self-contained HTML file out.

Each section's figures are aggregated on the engine the states live on (a
Polars DataFrame or LazyFrame, a DuckDB relation, a Spark DataFrame), and
only the small results come to Polars to be drawn: one row per task, per
bucket or per listed run, and bounded top-N lists (:func:`report_data`). The
states themselves are never collected; the timeline section filters the one
flow run it draws on the engine and brings those few rows.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import narwhals as nw

from trs_analytics._atomic import atomic_write, check_writable
from trs_analytics._format import argument_text, auto_every, span_text
from trs_analytics._format import auto_period as _auto_period
from trs_analytics._progress import logged_step
from trs_analytics._time import micros_at
from trs_analytics.charts import (
    CONFIG,
    draw_durations,
    draw_failure_rates,
    draw_retries,
    draw_transitions,
    draw_waits,
    duration_stats,
    duration_trend_chart,
    failure_rate_series,
    one_flow_run,
    pick_flow_run,
    retry_outcomes,
    time_bounds,
    time_span,
    timeline_chart,
    transition_counts,
    volume_chart,
    wait_series,
    waits_agree,
)
from trs_analytics.client import ui_url as _ui_from_api
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.metrics import RUN_COLUMNS, kept_run_table, parse_every
from trs_analytics.metrics._breakdowns import run_breakdowns
from trs_analytics.metrics._frames import lazy, narrowed, parts_for
from trs_analytics.report._breakdowns import error_table, outcome_table, run_table
from trs_analytics.report._flagged import flagged_sections, flagged_tables
from trs_analytics.report._flows import flow_run_sections
from trs_analytics.report._html import page
from trs_analytics.report._sections import Cards, ChartSection, Section, TableSection, render
from trs_analytics.report._tables import (
    headlines,
    overview,
    regression_table,
    worst_by_failure_rate,
    worst_by_p95,
)
from trs_analytics.schema import REQUIRED_METRIC_COLUMNS, require_columns

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import polars as pl

    from trs_analytics.metrics import SlaRule

__all__ = ["SECTIONS", "auto_period", "report_data", "write_report"]

logger = logging.getLogger(__name__)


def auto_period(states: Any) -> str:
    """The longest round width (``trs_analytics._format.ROUND_WIDTHS``) the data spans twice.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> auto_period(generate_states(300, seed=1, days=3))
        '1d'
    """
    return _auto_period(time_span(states))


#: The per-run columns the report breaks runs down by, and what a value is called.
_BREAKDOWNS = (
    ("flow_name", "flow"),
    ("deployment_id", "deployment"),
    ("work_pool_name", "work pool"),
    ("task_name", "task"),
)


#: The run's columns no section shows or groups by (every byte read is carried through
#: the run table's pass: ``tags``, ``task_key`` and ``dynamic_key`` are long strings and
#: lists, among the largest columns of the states).
_UNSHOWN = ("task_key", "dynamic_key", "tags", "flow_id", "work_queue_name", "parent_task_run_id")

#: The columns the report reads (the state's own and the run's); the rest is not loaded.
_REPORT_COLUMNS = (
    "id",
    *REQUIRED_METRIC_COLUMNS,
    "message",
    *(c for c in RUN_COLUMNS if c not in _UNSHOWN),
)

#: The sections computed, in order (what the progress shows and ``-v`` logs).
SECTIONS = (
    "overview",
    "one row per task run",
    "regressions",
    "queue wait against lateness",
    "headline numbers",
    "runs: volume, outcomes, trend, failed and slowest",
    "run time per task",
    "failure rates over time",
    "error messages",
    "anomalies and SLAs",
    "worst tasks by p95",
    "worst tasks by failure rate",
    "retries",
    "queue wait and lateness",
    "state transitions",
    "a flow run up close",
    "flow runs",
)


class _Steps:
    """Runs the sections one by one: tells ``on_section`` and logs each one's time."""

    def __init__(self, on_section: Callable[[int, int, str], None] | None) -> None:
        self.on_section, self.done = on_section, 0

    def __call__(self, name: str, compute: Callable[[], Any]) -> Any:
        self.done += 1
        if self.on_section is not None:
            self.on_section(self.done, len(SECTIONS), name)
        with logged_step(logger, "report", name):
            return compute()


def report_data(
    states: Any,
    *,
    period: str = "auto",
    now: datetime | None = None,
    ui: str | None = None,
    rules: Sequence[SlaRule] = (),
    flow_run_states: Any | None = None,
    on_section: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Compute what every section of the report shows, on the states' engine.

    Each value is small: a Polars frame of one row per task, bucket or listed
    run, a headline list, or a few numbers. ``on_section`` is told of each
    section before it is computed, and each section's time is logged (INFO).

    Raises:
        ConfigurationError: ``states`` has no task-run state, or a bad
            ``period``/``now``.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> data = report_data(generate_states(300, seed=1))
        >>> data["period"], data["volume"]["runs"].sum()
        ('1d', 300)
    """
    step = _Steps(on_section)
    frame = narrowed(states, _REPORT_COLUMNS, caller="write_report")
    seen = step("overview", lambda: overview(frame))
    if not seen["states"]:
        msg = "write_report() got no task-run states. Hint: check the dataset path and its filters."
        raise ConfigurationError(msg)
    span = seen["last"] - seen["first"]
    if period == "auto":
        period = _auto_period(span)
    _check_period(period, now)  # before anything costly is computed
    every = auto_every(span, buckets=40)
    at = now or seen["last"]
    data: dict[str, Any] = {"overview": seen, "period": period, "every": every}
    data |= _run_sections(frame, step, seen=seen, period=period, now=now, at=at, ui=ui, rules=rules)
    parts = parts_for(seen["states"])
    data["transitions"] = step(
        "state transitions", lambda: transition_counts(frame, level="name", parts=parts)
    )
    data["flow_run"] = step("a flow run up close", lambda: _one_flow_run(frame))
    data["flow_runs"] = step("flow runs", lambda: _flow_run_parts(flow_run_states))
    return data


def _run_sections(
    frame: Any,
    step: _Steps,
    *,
    seen: dict[str, Any],
    period: str,
    now: datetime | None,
    at: datetime,
    ui: str | None,
    rules: Sequence[SlaRule],
) -> dict[str, Any]:
    """The sections read from the run table, kept on the engine while they are computed
    (and let go of when this returns)."""
    span = seen["last"] - seen["first"]
    every = auto_every(span, buckets=40)
    data: dict[str, Any] = {}
    with ExitStack() as kept:
        # each run's states reduced to one row, once, kept on the engine: every
        # per-run section below reads this table instead of the states
        runs = step(
            "one row per task run",
            lambda: kept.enter_context(kept_run_table(frame, parts=parts_for(seen["states"]))),
        )
        queue = _queue_waits(runs)
        data["regressions"] = step(
            "regressions", lambda: regression_table(runs, period=period, now=now)
        )
        agree = data["waits_agree"] = step(
            "queue wait against lateness", lambda: waits_agree(runs, queue=queue)
        )
        data["headlines"] = step(
            "headline numbers", lambda: headlines(runs, agree=agree, seen=seen, queue=queue)
        )
        parts = step(
            "runs: volume, outcomes, trend, failed and slowest",
            lambda: run_breakdowns(
                runs, every=every, by=[b for b, _ in _BREAKDOWNS], failed_top=15, slowest_top=10
            ),
        )
        data["volume"], data["trend"] = parts["volume"], parts["trend"]
        data["failed_runs"] = run_table(parts["failed"], ui=ui)
        data["slowest_runs"] = run_table(parts["slowest"], ui=ui)
        for by, _ in _BREAKDOWNS:
            data[f"outcomes:{by}"] = outcome_table(parts.get(f"outcomes:{by}"), by=by)
        data["run_time"] = step("run time per task", lambda: duration_stats(runs))
        data["failure_rates"] = step("failure rates over time", lambda: _failure_rates(runs, every))
        data["errors"] = step("error messages", lambda: error_table(frame))
        data["flagged"] = step(
            "anomalies and SLAs",
            lambda: flagged_tables(
                runs, now=at, rules=rules, ui=ui, parts=parts_for(seen["states"])
            ),
        )
        data["worst_p95"] = step("worst tasks by p95", lambda: worst_by_p95(runs))
        data["worst_failure_rate"] = step(
            "worst tasks by failure rate", lambda: worst_by_failure_rate(runs)
        )
        data["retries"] = step("retries", lambda: retry_outcomes(runs))
        waits = ("Queue wait",) if agree else ("Lateness", "Queue wait")
        data["waits"] = step(
            "queue wait and lateness",
            lambda: wait_series(runs, every=auto_every(span), waits=waits, queue=queue),
        )
    return data


def _check_period(period: str, now: datetime | None) -> None:
    """Refuse a bad ``period`` or a naive ``now`` (as the regressions would, later)."""
    parse_every(period, argument="period")
    if now is not None:
        micros_at(now)


def _queue_waits(runs: Any) -> Any:
    """The run table's queue waits, as ``queue_wait``'s columns (runs with a waiting state)."""
    frame = lazy(runs, caller="write_report")
    waited = frame.filter(~nw.col("queue_start").is_null())
    return waited.select(
        "task_run_id", start_time=nw.col("queue_start"), duration=nw.col("queue_wait")
    ).to_native()


def _failure_rates(states: Any, every: str) -> tuple[str | None, pl.DataFrame]:
    """Failure rates per task, or over all runs when no task failed (no empty panels)."""
    per_task = failure_rate_series(states, by="task_name", every=every, top=6)
    if per_task.is_empty():
        return None, failure_rate_series(states, by=None, every=every)
    return "task_name", per_task


def _one_flow_run(states: Any) -> tuple[str, pl.DataFrame]:
    """The flow run with the most retries, and its states (filtered on the engine)."""
    run_id = pick_flow_run(states)
    return run_id, one_flow_run(states, run_id)


def _flow_run_parts(flow_run_states: Any | None) -> list[Section]:
    """The "Flow runs" sections, drawn from the flow-run states when there are any."""
    if flow_run_states is None:
        return []
    bounds = time_bounds(flow_run_states)
    if bounds is None:
        return []
    return flow_run_sections(flow_run_states, every=auto_every(bounds[1] - bounds[0], buckets=40))


def _sections(data: dict[str, Any], ui: str | None) -> list[Section]:
    """The report, top to bottom, drawn from :func:`report_data`'s small frames."""
    regressed, regression_caption, no_regression = data["regressions"]
    link_note = "" if ui else f" Pass {argument_text('ui_url')} to link the runs to the Prefect UI."
    by, rates = data["failure_rates"]
    failure_caption = (
        "The tasks with the most failed runs."
        if by
        else "No task run failed: the rate over all runs."
    )
    sections: list[Section] = [
        Cards("Headline numbers", data["headlines"]),
        ChartSection("Run volume", volume_chart(data["volume"])),
        ChartSection(
            "Run time per task",
            draw_durations(data["run_time"], top=20, label="Run time"),
            "Time spent running, over all attempts, per task run.",
        ),
        ChartSection("Failure rates over time", draw_failure_rates(rates, by=by), failure_caption),
        TableSection(
            "Top error messages per task",
            data["errors"],
            empty="No failed or crashed state has a message.",
            caption="Messages of Failed and Crashed states; quoted values and numbers folded "
            "('…', N) so one error is one row.",
        ),
        TableSection(
            "Failed runs",
            data["failed_runs"],
            empty="No task run ended Failed, Crashed or Cancelled.",
            caption="The latest runs that ended Failed, Crashed or Cancelled." + link_note,
            links={"task run": "url"},
        ),
        TableSection(
            "Slowest runs",
            data["slowest_runs"],
            empty="No task run ran.",
            caption="By run time (all attempts)." + link_note,
            links={"task run": "url"},
        ),
        *flagged_sections(data["flagged"]),
    ]
    for by_column, noun in _BREAKDOWNS:
        sections.append(
            TableSection(
                f"Task runs per {noun}",
                data[f"outcomes:{by_column}"],
                empty=f"No task run here has a {noun}.",
                caption="By final state; crashed and cancelled apart from failed.",
            )
        )
    period = data["period"]
    run_id, one = data["flow_run"]
    sections += [
        TableSection(
            "Worst tasks by p95 run time",
            data["worst_p95"],
            empty="No task has a measured run time.",
        ),
        TableSection(
            "Worst tasks by failure rate",
            data["worst_failure_rate"],
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
            duration_trend_chart(data["trend"]),
            "Each task's p50 per bucket against its median.",
        ),
        ChartSection(
            "Retries",
            draw_retries(data["retries"], top=15),
            "Retried runs per task, coloured by how they ended.",
        ),
        ChartSection(
            "Queue wait and lateness", draw_waits(data["waits"], merged=data["waits_agree"])
        ),
        ChartSection("State transitions", draw_transitions(data["transitions"], level="name")),
        ChartSection(
            "A flow run up close",
            timeline_chart(one, run_id),
            "The flow run with the most retries.",
        ),
        *data["flow_runs"],
    ]
    return sections


def _flow_run_frame(flow_run_states: Any) -> Any:
    """The flow-run states (any engine, left there), once their columns are checked."""
    require_columns(
        flow_run_states,
        ["flow_run_id", "type", "name", "timestamp", "deployment_name"],
        caller="write_report",
    )
    return flow_run_states


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
    on_section: Callable[[int, int, str], None] | None = None,
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
            any engine (a DuckDB relation or a Spark DataFrame too): every
            section is aggregated there and only its small result comes to
            Polars (:func:`report_data`); the states are never collected.
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
        on_section: called with ``(number, of, name)`` before each section
            is computed (the CLI draws its progress with it).

    Returns:
        The path written.

    Raises:
        SchemaError: ``states`` lacks a column the report needs.
        ConfigurationError: ``states`` has no task-run state, or a bad
            ``period``/``now``.
        StorageError: ``out``'s folder cannot be written (checked first).

    Examples:
        >>> import tempfile
        >>> from trs_analytics.testing import generate_states
        >>> from trs_analytics.report import write_report
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = write_report(generate_states(300, seed=1), f"{folder}/r.html")
        ...     text = path.read_text()
        >>> "<h1>Task-run report</h1>" in text, text.count('class="chart"')
        (True, 8)
    """
    require_columns(
        states,
        ["task_run_id", "flow_run_id", "type", "name", "timestamp", "task_name"],
        caller="write_report",
    )
    path = Path(out)
    check_writable(path.parent)  # before a long computation, not after it
    ui = ui_url or (_ui_from_api(api_url) if api_url else None)
    flow_runs = None if flow_run_states is None else _flow_run_frame(flow_run_states)
    data = report_data(
        states,
        period=period,
        now=now,
        ui=ui,
        rules=rules,
        flow_run_states=flow_runs,
        on_section=on_section,
    )
    body, specs = render(_sections(data, ui))
    generated = datetime.now(UTC)
    seen = data["overview"]
    meta = (
        f"States from {span_text(seen['first'], seen['last'])}. "
        f"Generated {generated:%Y-%m-%d %H:%M} UTC. "
        "All times UTC; failure rates count Failed and Crashed runs among finished ones."
    )
    html = page(title=title or "Task-run report", meta=meta, body=body, specs=specs, config=CONFIG)

    # atomic: a reader never sees half a report
    def write(handle: BinaryIO) -> None:
        handle.write(html.encode("utf-8"))

    atomic_write(path, write)
    return path

"""The numbers and tables of the report, computed with the metrics layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import narwhals as nw
import polars as pl

from trs_analytics._format import count_text, duration_text, span_text
from trs_analytics.metrics import (
    as_list,
    compare_windows,
    failure_rates,
    lateness,
    queue_wait,
    retry_counts,
    run_time,
    summarize,
    to_polars,
)
from trs_analytics.metrics._breakdowns import distinct_values
from trs_analytics.metrics._frames import lazy

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime, timedelta

__all__ = [
    "Headline",
    "headlines",
    "overview",
    "regression_table",
    "run_counts",
    "worst_by_failure_rate",
    "worst_by_p95",
]


@dataclass(frozen=True)
class Headline:
    """One headline number: what it is, its value as text, and a note under it."""

    label: str
    value: str
    note: str = ""


def fmt_seconds(value: timedelta | float | None) -> str:
    """Format a duration for a table cell: :func:`trs_analytics._format.duration_text`, ``'-'`` for none.

    Examples:
        >>> fmt_seconds(0.0005), fmt_seconds(185), fmt_seconds(None)
        ('0.5 ms', '3 min 5 s', '-')
    """
    return duration_text(value) or "-"


def fmt_rate(value: float | None) -> str:
    """Format a rate as a percentage (``'-'`` for null).

    Examples:
        >>> fmt_rate(0.04321), fmt_rate(None)
        ('4.32%', '-')
    """
    return "-" if value is None else f"{value:.2%}"


def overview(states: Any) -> dict[str, Any]:
    """Count the states and flow runs and find the first and last state, on the states' engine.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> overview(generate_states(50, seed=1))["states"] > 50
        True
    """
    frame = lazy(states, caller="write_report")
    flows = distinct_values("flow_run_id") if "flow_run_id" in frame.columns else nw.lit(0)
    row = frame.select(
        states=nw.len(),
        flow_runs=flows,
        first=nw.col("timestamp").min(),
        last=nw.col("timestamp").max(),
    )
    return to_polars(row.to_native()).row(0, named=True)


def run_counts(states: Any) -> dict[str, int]:
    """Count the task runs by retries and outcome, on the states' engine (one row comes back).

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> counts = run_counts(generate_states(50, seed=1))
        >>> counts["task_runs"], sorted(counts)[:3]
        (50, ['cancelled', 'crashed', 'retried'])
    """
    runs = lazy(retry_counts(states), caller="write_report")
    final = nw.col("final_type").cast(nw.String())
    counted = runs.select(
        task_runs=nw.len(),
        unfinished=(~nw.col("terminal")).cast(nw.Int64()).sum(),
        retried=(nw.col("retries") > 0).cast(nw.Int64()).sum(),
        retries=nw.col("retries").cast(nw.Int64()).sum(),
        crashed=(final == "CRASHED").cast(nw.Int64()).sum(),
        cancelled=(final == "CANCELLED").cast(nw.Int64()).sum(),
    )
    row = to_polars(counted.to_native()).row(0, named=True)
    return {k: int(v or 0) for k, v in row.items()}


def headlines(
    states: Any,
    *,
    agree: bool,
    seen: dict[str, Any] | None = None,
    queue: Any | None = None,
) -> list[Headline]:
    """Compute the report's headline numbers from a states frame of any engine.

    Every figure is aggregated on the states' engine: a few one-row results come back.

    Args:
        states: a states frame, or its :func:`~trs_analytics.run_table` (with
            ``seen`` and ``queue`` given).
        agree: lateness equals queue wait for every run (:func:`trs_analytics.charts.waits_agree`).
        seen: :func:`overview`'s result, when already computed.
        queue: ``queue_wait(states)``, when already computed.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> [h.label for h in headlines(generate_states(50, seed=1), agree=False)][:3]
        ['Task runs', 'Flow runs', 'Final failure rate']
    """
    seen = seen or overview(states)
    runs = run_counts(states)
    overall = to_polars(failure_rates(states, by=None)).row(0, named=True)
    first = overall["first_attempt_failed"]
    run = to_polars(summarize(run_time(states))).row(0, named=True)
    waited = queue_wait(states) if queue is None else queue
    queue = to_polars(summarize(waited)).row(0, named=True)
    if agree:
        waits = [
            Headline(
                "Queue wait p95 (= lateness)",
                fmt_seconds(queue["p95"]),
                f"p50 {fmt_seconds(queue['p50'])}; lateness equals queue wait for every run here",
            )
        ]
    else:
        late = to_polars(summarize(lateness(states))).row(0, named=True)
        waits = [
            Headline(
                "Queue wait p95", fmt_seconds(queue["p95"]), f"p50 {fmt_seconds(queue['p50'])}"
            ),
            Headline("Lateness p95", fmt_seconds(late["p95"]), f"p50 {fmt_seconds(late['p50'])}"),
        ]
    return [
        Headline(
            "Task runs",
            f"{runs['task_runs']:,}",
            f"{count_text(seen['states'], 'state')}; {runs['unfinished']:,} unfinished",
        ),
        Headline("Flow runs", f"{seen['flow_runs']:,}", "with task runs in the data"),
        Headline(
            "Final failure rate",
            fmt_rate(overall["failure_rate"]),
            f"95% CI {fmt_rate(overall['ci_low'])} to {fmt_rate(overall['ci_high'])}; "
            f"{overall['failed']:,} of {count_text(overall['runs'], 'finished task run')}",
        ),
        Headline(
            "First-attempt failure rate",
            fmt_rate(overall["first_attempt_failure_rate"]),
            f"{count_text(first, 'task run')} failed {'its' if first == 1 else 'their'} first attempt",
        ),
        Headline(
            "Retried task runs",
            f"{runs['retried']:,}",
            f"{count_text(runs['retries'], 'retry', 'retries')}; "
            f"{count_text(overall['rescued'], 'task run')} rescued",
        ),
        Headline(
            "Crashed / cancelled task runs",
            f"{runs['crashed']:,} / {runs['cancelled']:,}",
            "counted apart from failed; crashed count in the failure rate",
        ),
        Headline("Run time p50 / p95", f"{fmt_seconds(run['p50'])} / {fmt_seconds(run['p95'])}"),
        *waits,
    ]


def worst_by_p95(states: Any, *, by: str = "task_name", top: int = 10) -> pl.DataFrame:
    """Return the ``top`` groups with the longest p95 run time, as display text.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> worst_by_p95(generate_states(300, seed=1), top=2).columns
        ['task_name', 'task runs', 'p50', 'p95', 'p99', 'max']
    """
    stats = to_polars(summarize(run_time(states), by=by)).filter(pl.col("count") > 0)
    rows = stats.sort("p95", descending=True, nulls_last=True).head(top)
    return rows.select(
        pl.col(by).cast(pl.String),
        pl.col("count").alias("task runs"),
        **{
            c: pl.col(c).map_elements(fmt_seconds, return_dtype=pl.String)
            for c in ("p50", "p95", "p99", "max")
        },
    )


def worst_by_failure_rate(states: Any, *, by: str = "task_name", top: int = 10) -> pl.DataFrame:
    """Return the ``top`` groups with the highest failure rate, ranked by its 95% lower bound.

    Ranking by the Wilson lower bound puts a task that failed 30 of 100 runs
    above one that failed 1 of 2: both may be bad, but only one is shown to be.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> worst_by_failure_rate(generate_states(300, seed=1), top=2).columns
        ['task_name', 'task runs', 'failed', 'failure rate', '95% CI', 'first attempt', 'rescued']
    """
    rates = to_polars(failure_rates(states, by=by)).filter(pl.col("failed") > 0)
    rows = rates.sort(["ci_low", "failure_rate"], descending=True, nulls_last=True).head(top)
    return rows.select(
        pl.col(by).cast(pl.String),
        pl.col("runs").alias("task runs"),
        "failed",
        pl.col("failure_rate").map_elements(fmt_rate, return_dtype=pl.String).alias("failure rate"),
        pl.format(
            "{} to {}",
            pl.col("ci_low").map_elements(fmt_rate, return_dtype=pl.String),
            pl.col("ci_high").map_elements(fmt_rate, return_dtype=pl.String),
        ).alias("95% CI"),
        pl.col("first_attempt_failure_rate")
        .map_elements(fmt_rate, return_dtype=pl.String)
        .alias("first attempt"),
        "rescued",
    )


def regression_table(
    states: Any,
    *,
    period: str,
    now: datetime | None,
    by: str | Sequence[str] = "task_name",
) -> tuple[pl.DataFrame, str, str]:
    """Compare the last ``period`` with the one before: the regressed groups, a caption, and
    the text for an empty table (which says so when the previous period had no runs).

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(300, seed=1)
        >>> table, caption, empty = regression_table(states, period="1d", now=None)
        >>> table.columns[:3], caption.startswith("Current period")
        (['task_name', 'why', 'runs (prev → now)'], True)
        >>> regression_table(states, period="30d", now=None)[2]
        'Nothing to compare against: the previous 30d has no runs.'
    """
    compared = to_polars(compare_windows(states, window=period, now=now, by=by))
    caption, empty = "No runs to compare.", "Nothing to compare against."
    if compared.height:
        first = compared.row(0, named=True)
        caption = (
            f"Current period {span_text(first['current_start'], first['current_end'])}, "
            f"compared with the {period} before. "
            "Flagged when the failure rate is significantly higher (one-sided z-test, 5%) or the "
            "p95 run time is at least 1.5 times longer, with at least 20 runs in each period."
        )
        empty = "No task got significantly worse."
        if not compared["runs_previous"].fill_null(0).sum():
            empty = f"Nothing to compare against: the previous {period} has no runs."
    flagged = compared.filter(pl.col("regressed")).sort(
        ["failure_rate_worse", "p95_ratio"], descending=True, nulls_last=True
    )
    keys = as_list(by)
    why = pl.concat_list(
        pl.when(pl.col("failure_rate_worse")).then(pl.lit("failure rate")),
        pl.when(pl.col("p95_worse")).then(pl.lit("p95")),
    ).list.drop_nulls()
    table = flagged.select(
        *(pl.col(k).cast(pl.String) for k in keys),
        why=why.list.join(" + "),
        **{
            "runs (prev → now)": pl.format("{} → {}", "runs_previous", "runs_current"),
            "failure rate (prev → now)": pl.format(
                "{} → {}",
                pl.col("failure_rate_previous").map_elements(fmt_rate, return_dtype=pl.String),
                pl.col("failure_rate_current").map_elements(fmt_rate, return_dtype=pl.String),
            ),
            "p95 run time (prev → now)": pl.format(
                "{} → {}",
                pl.col("p95_previous").map_elements(fmt_seconds, return_dtype=pl.String),
                pl.col("p95_current").map_elements(fmt_seconds, return_dtype=pl.String),
            ),
        },
    )
    return table, caption, empty

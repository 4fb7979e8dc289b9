"""The report's "Anomalies and SLAs" section: anomalous buckets, stuck runs and SLA breaches.

Shown as tables when something is flagged, or as one line saying nothing was.
The report covers the whole data span: every anomalous bucket, every SLA breach
(given rules), and the runs stuck at the report's ``now`` (by default the
latest state in the data, so an old dataset does not call every open run stuck
for months).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import polars as pl

from trs_analytics._format import duration_expr
from trs_analytics.charts import anomaly_chart
from trs_analytics.client import task_run_url
from trs_analytics.metrics import detect_anomalies, sla_report, stuck_runs, to_polars
from trs_analytics.metrics._frames import in_group_sets
from trs_analytics.report._sections import ChartSection, Section, TableSection

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from trs_analytics.metrics import SlaRule

__all__ = ["Flagged", "flagged_sections", "flagged_tables"]

HEADING = "Anomalies and SLAs"
NOTHING = "Nothing flagged: no anomalous day, no stuck run"


def _urls(ids: pl.Series, ui: str | None) -> pl.Series:
    return pl.Series(
        "url", [task_run_url(ui, i) if ui and i else None for i in ids], dtype=pl.String
    )


def _anomalies(states: Any, parts: int) -> dict[str, pl.DataFrame]:
    """detect_anomalies' full result per metric (the chart draws the band around the series):
    one row per task and day, computed on the states' engine a set of tasks at a time
    (``parts`` sets: the training window copies each run once per bucket it trains)."""
    return {
        m: in_group_sets(states, "task_name", parts, partial(detect_anomalies, metric=m))
        for m in ("run_time", "failure_rate")
    }


def _anomaly_table(results: dict[str, pl.DataFrame]) -> pl.DataFrame:
    shown = ("task_name", "metric", "bucket", "reason")
    found = pl.concat([r.filter(pl.col("anomalous")).select(shown) for r in results.values()])
    return found.sort("bucket", "task_name").select(
        pl.col("task_name").alias("task"),
        pl.col("metric"),
        pl.col("bucket").dt.strftime("%Y-%m-%d %H:%M").alias("bucket (UTC)"),
        pl.col("reason"),
    )


def _stuck(states: Any, now: datetime, ui: str | None) -> pl.DataFrame:
    found = to_polars(stuck_runs(states, now=now))
    return found.select(
        pl.col("task_run_id").alias("task run"),
        pl.col("task_name").alias("task"),
        pl.col("state"),
        pl.col("since").dt.strftime("%Y-%m-%d %H:%M:%S").alias("since (UTC)"),
        duration_expr(pl.col("age").dt.total_seconds(fractional=True)).alias("age"),
        duration_expr(pl.col("threshold").dt.total_seconds(fractional=True)).alias("threshold"),
        pl.col("reason"),
    ).with_columns(_urls(found["task_run_id"], ui))


def _breaches(states: Any, rules: Sequence[SlaRule], now: datetime, ui: str | None) -> pl.DataFrame:
    found = to_polars(sla_report(states, rules, now=now).breaches)
    rate = pl.col("check") == "min_success_rate"
    return found.select(
        pl.col("rule"),
        pl.col("check"),
        pl.col("task_run_id").alias("task run"),
        pl.col("at").dt.strftime("%Y-%m-%d %H:%M:%S").alias("at (UTC)"),
        pl.when(rate)
        .then((pl.col("value") * 100).round(1).cast(pl.String) + "%")
        .otherwise(duration_expr(pl.col("value")))
        .alias("value"),
        pl.when(rate)
        .then((pl.col("limit") * 100).round(1).cast(pl.String) + "%")
        .otherwise(duration_expr(pl.col("limit")))
        .alias("limit"),
    ).with_columns(_urls(found["task_run_id"], ui))


@dataclass(frozen=True)
class Flagged:
    """What the "Anomalies and SLAs" part shows: small Polars frames.

    ``results``: :func:`~trs_analytics.metrics.detect_anomalies`' rows per
    metric; ``anomalies``, ``stuck``, ``breaches``: the tables (``breaches``
    is ``None`` without rules).
    """

    results: dict[str, pl.DataFrame]
    anomalies: pl.DataFrame
    stuck: pl.DataFrame
    breaches: pl.DataFrame | None


def flagged_tables(
    states: Any, *, now: datetime, rules: Sequence[SlaRule], ui: str | None, parts: int = 1
) -> Flagged:
    """Compute the anomalies, stuck runs and SLA breaches on the states' engine (any);
    the anomalies a set of tasks at a time with ``parts`` > 1 (the same rows).

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(200, seed=1)
        >>> flagged = flagged_tables(states, now=states["timestamp"].max(), rules=[], ui=None)
        >>> sorted(flagged.results), flagged.breaches is None
        (['failure_rate', 'run_time'], True)
    """
    results = _anomalies(states, parts)
    return Flagged(
        results=results,
        anomalies=_anomaly_table(results),
        stuck=_stuck(states, now, ui),
        breaches=_breaches(states, rules, now, ui) if rules else None,
    )


def flagged_sections(flagged: Flagged) -> list[Section]:
    """The "Anomalies and SLAs" tables, or one line when nothing is flagged.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(200, seed=1)
        >>> flagged = flagged_tables(states, now=states["timestamp"].max(), rules=[], ui=None)
        >>> [s.heading for s in flagged_sections(flagged)]
        ['Anomalies and SLAs', 'Stuck runs']
    """
    results, anomalies, stuck = flagged.results, flagged.anomalies, flagged.stuck
    rules = flagged.breaches is not None
    breaches = flagged.breaches if flagged.breaches is not None else pl.DataFrame()
    if anomalies.is_empty() and stuck.is_empty() and breaches.is_empty():
        line = NOTHING + (", no SLA breach." if rules else " (no SLA rules given).")
        return [TableSection(HEADING, pl.DataFrame(), empty=line)]
    caption = (
        "Anomalous days per task (run time and failure rate against the 14 days before), "
        "runs stuck at the end of the data, and SLA breaches."
    )
    sections: list[Section] = [
        TableSection(HEADING, anomalies, empty="No anomalous day.", caption=caption),
        *(
            ChartSection(
                f"Expected {metric.replace('_', ' ')} band",
                anomaly_chart(result),
                "Each flagged task's series inside its expected band; flagged days in red.",
            )
            for metric, result in results.items()
            if result["anomalous"].any()
        ),
        TableSection(
            "Stuck runs",
            stuck,
            empty="No run is stuck.",
            caption="Open for more than 3 x their task's p99 of the same phase.",
            links={"task run": "url"},
        ),
    ]
    if rules:
        sections.append(
            TableSection(
                "SLA breaches", breaches, empty="No SLA breach.", links={"task run": "url"}
            )
        )
    return sections

"""The report's "Flow runs" sections, drawn from flow-run states when the dataset has them:
duration trend per deployment with its median, landing times, failure rates per
deployment, and the deployments currently failing with their time to resolution.

A flow run without a deployment (a flow called as a script) is grouped by its flow,
as ``"<flow> (no deployment)"``: one null group would lump different flows together."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from trs_analytics._format import duration_expr, missing_label, seconds
from trs_analytics.charts import (
    draw_failure_rates,
    failure_rate_series,
    flow_duration_chart,
    landing_time_chart,
)
from trs_analytics.metrics import (
    NO_DEPLOYMENT,
    currently_failing,
    deployment_or_flow,
    summarize,
    time_to_resolution,
    to_polars,
)
from trs_analytics.report._sections import ChartSection, TableSection

if TYPE_CHECKING:
    from trs_analytics.report._sections import Section

__all__ = ["failing_table", "flow_run_sections"]

#: The flow runs are grouped by deployment (else by flow: :func:`~trs_analytics.deployment_or_flow`).
_BY = "deployment_name"


def failing_table(flow_run_states: Any) -> pl.DataFrame:
    """Deployments whose latest finished run failed, with their usual time to resolution.

    Examples:
        >>> from trs_analytics.testing import generate_flow_run_states
        >>> failing_table(generate_flow_run_states(400, seed=7)).columns
        ['deployment', 'failing since (UTC)', 'failures in a row', 'last success (UTC)', 'usually resolved in', 'resolved failures']
    """
    failing = to_polars(currently_failing(flow_run_states, by=_BY))
    resolved = time_to_resolution(flow_run_states, by=_BY)
    ttr = to_polars(summarize(resolved, value="time_to_resolution", by=_BY))
    stamp = "%Y-%m-%d %H:%M:%S"
    joined = failing.join(ttr.select(_BY, "count", "p50"), on=_BY, how="left", nulls_equal=True)
    return joined.select(
        pl.col(_BY).fill_null(missing_label(_BY)).alias("deployment"),
        pl.col("failing_since").dt.strftime(stamp).alias("failing since (UTC)"),
        pl.col("failures").alias("failures in a row"),
        pl.col("last_success").dt.strftime(stamp).fill_null("never").alias("last success (UTC)"),
        duration_expr(seconds("p50")).fill_null("-").alias("usually resolved in"),
        pl.col("count").fill_null(0).alias("resolved failures"),
    )


#: Said under each flow-run section.
_WITHOUT = f" Flow runs without a deployment are grouped by flow ('<flow>{NO_DEPLOYMENT}')."


def flow_run_sections(flow_run_states: Any, *, every: str) -> list[Section]:
    """The "Flow runs" part of the report, top to bottom.

    Examples:
        >>> from trs_analytics.testing import generate_flow_run_states
        >>> [s.heading for s in flow_run_sections(generate_flow_run_states(400, seed=7), every="6h")][:2]
        ['Flow runs: duration per deployment', 'Flow runs: landing times']
    """
    flow_run_states = deployment_or_flow(flow_run_states)
    return [
        ChartSection(
            "Flow runs: duration per deployment",
            flow_duration_chart(flow_run_states, every=every, by=_BY),
            "Each deployment's flow-run time in Running per bucket (p50, p95) against its median."
            + _WITHOUT,
        ),
        ChartSection(
            "Flow runs: landing times",
            landing_time_chart(flow_run_states, by=_BY),
            "End of each finished flow run minus its scheduled start." + _WITHOUT,
        ),
        _failure_section(flow_run_states),
        TableSection(
            "Flow runs: deployments currently failing",
            failing_table(flow_run_states),
            empty="No deployment's latest finished flow run failed.",
            caption="Since the first failure after the last success; 'usually resolved in' is "
            "the median time from a failed run to the next successful run of the deployment."
            + _WITHOUT,
        ),
    ]


def _failure_section(flow_run_states: Any) -> ChartSection:
    """Failure rates per deployment; when no flow run failed, the rate over all of them (a
    chart of only the groups that failed would be empty)."""
    rates = failure_rate_series(flow_run_states, by=_BY, top=6)
    if rates.is_empty():
        return ChartSection(
            "Flow runs: failure rates per deployment",
            draw_failure_rates(failure_rate_series(flow_run_states, by=None), by=None),
            "No flow run failed: the rate over all finished flow runs, with its 95% interval.",
        )
    return ChartSection(
        "Flow runs: failure rates per deployment",
        draw_failure_rates(rates, by=_BY),
        "Failed and crashed flow runs among finished ones, with 95% intervals." + _WITHOUT,
    )

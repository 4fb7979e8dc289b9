"""Charts of the engine-side breakdowns: run volume by outcome, and run time over time per task.

These take the small aggregated frames of :mod:`trs_analytics.metrics._breakdowns`
(computed in whatever engine holds the states), as Polars DataFrames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import altair as alt
import polars as pl

from trs_analytics._format import duration_expr, missing_label
from trs_analytics.charts._common import (
    check_top,
    log_seconds,
    one_group,
    time_axis,
    time_span,
    top_groups,
)
from trs_analytics.charts._theme import NEUTRAL, STATE_COLORS, state_scale
from trs_analytics.schema import STATE_TYPES

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trs_analytics.charts._theme import AnyChart

__all__ = ["duration_trend_chart", "volume_chart"]


def volume_chart(volume: pl.DataFrame, *, title: str | None = None) -> AnyChart:
    """Chart task runs per time bucket, stacked by how they ended.

    Args:
        volume: the output of ``run_volume`` (``bucket``, ``final_type``, ``runs``).
        title: the chart title.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> from trs_analytics.metrics import run_volume
        >>> chart = volume_chart(run_volume(generate_states(200, seed=1), every="1d"))
        >>> chart.to_dict()["encoding"]["color"]["field"]
        'final_type'
    """
    present = [t for t in STATE_TYPES if t in set(volume["final_type"].to_list())]
    span = time_span(volume, "bucket")
    data = volume.with_columns(
        bucket_utc=pl.col("bucket").dt.strftime("%Y-%m-%d %H:%M:%S"),
        stack=pl.col("final_type").replace_strict(
            {t: i for i, t in enumerate(STATE_TYPES)}, default=len(STATE_TYPES)
        ),
    )
    chart: AnyChart = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("bucket:T", title="UTC", scale=alt.Scale(type="utc"), axis=time_axis(span)),
            y=alt.Y("runs:Q", title="task runs", stack="zero"),
            color=alt.Color(
                "final_type:N",
                title="ended",
                scale=state_scale(present),
                legend=alt.Legend(orient="top"),
            ),
            order=alt.Order("stack:Q"),
            tooltip=[
                alt.Tooltip("bucket_utc:N", title="bucket start (UTC)"),
                alt.Tooltip("final_type:N", title="ended"),
                alt.Tooltip("runs:Q", format=","),
            ],
        )
        .properties(
            title=alt.TitleParams(
                title or "Task runs over time, by how they ended",
                subtitle="A run counts in the bucket of its first state. Crashed and cancelled "
                "runs are apart from failed ones.",
            ),
            width=620,
            height=180,
        )
    )
    return chart


def duration_trend_chart(
    trend: pl.DataFrame,
    *,
    by: str | Sequence[str] = "task_name",
    top: int = 6,
    columns: int = 3,
    title: str | None = None,
) -> AnyChart:
    """Chart each group's run time over time: p50 line, p95 points, and its median as a rule.

    Args:
        trend: the output of ``duration_trend`` (``by``, ``bucket``, ``runs``,
            ``p50``, ``p95``, ``max``, ``median``).
        by: the grouping column of ``trend``.
        top: how many groups to draw: those with the longest median.
        columns: panels per row.
        title: the chart title.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> from trs_analytics.metrics import duration_trend
        >>> trend = duration_trend(generate_states(300, seed=1), every="1d")
        >>> duration_trend_chart(trend, top=2).to_dict()["facet"]["field"]
        'task_name'
    """
    by = one_group(by)
    # a missing group is drawn under its label: filtered out, it left a blank chart
    trend = trend.with_columns(pl.col(by).cast(pl.String).fill_null(missing_label(by)))
    medians = trend.group_by(by).agg(pl.col("median").first())
    groups = top_groups(medians, by, "median", check_top(top))
    floor = 1e-3
    data = trend.filter(pl.col(by).cast(pl.String).is_in(groups)).with_columns(
        *(pl.col(c).clip(lower_bound=floor).alias(f"{c}_y") for c in ("p50", "p95", "median")),
        *(duration_expr(pl.col(c)).alias(f"{c}_label") for c in ("p50", "p95", "max", "median")),
        bucket_utc=pl.col("bucket").dt.strftime("%Y-%m-%d %H:%M:%S"),
    )
    scale, axis = log_seconds(data["p50_y"].min(), data["p95_y"].max(), "run time (log)")  # type: ignore[arg-type]
    x = alt.X(
        "bucket:T",
        title="UTC",
        scale=alt.Scale(type="utc"),
        axis=time_axis(time_span(data, "bucket"), tickCount=4),
    )
    tooltip = [
        alt.Tooltip(f"{by}:N", title=by.replace("_", " ")),
        alt.Tooltip("bucket_utc:N", title="bucket start (UTC)"),
        alt.Tooltip("runs:Q", format=","),
        *(alt.Tooltip(f"{c}_label:N", title=c) for c in ("p50", "p95", "max", "median")),
    ]
    base = alt.Chart().encode(x=x)
    median = (
        alt.Chart()
        .mark_rule(color=NEUTRAL[1], strokeDash=[4, 3])
        .encode(y=alt.Y("median_y:Q", scale=scale, axis=axis), tooltip=tooltip)
    )
    line = base.mark_line(color=STATE_COLORS["RUNNING"], point=True).encode(
        y=alt.Y("p50_y:Q", scale=scale, axis=axis), tooltip=tooltip
    )
    p95 = base.mark_point(color=STATE_COLORS["FAILED"], shape="diamond", size=30).encode(
        y="p95_y:Q", tooltip=tooltip
    )
    return (
        alt.layer(median, line, p95, data=data)
        .properties(width=240, height=130)
        .facet(facet=alt.Facet(f"{by}:N", sort=groups, title=None), columns=columns)
        .properties(
            title=alt.TitleParams(
                title or f"Run time per {by.replace('_', ' ')} over time",
                subtitle="Blue: p50 per bucket · red diamonds: p95 · dashed: the median over "
                "all runs (Airflow's Task Duration view).",
            )
        )
    )

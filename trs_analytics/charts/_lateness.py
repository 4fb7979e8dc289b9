"""Lateness and queue wait over time: p50 and p95 per time bucket."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import altair as alt
import polars as pl

from trs_analytics.charts._common import auto_every, human, log_seconds, seconds
from trs_analytics.charts._theme import NEUTRAL
from trs_analytics.metrics import lateness, parse_every, queue_wait

if TYPE_CHECKING:
    from trs_analytics.charts._theme import AnyChart

__all__ = ["wait_chart", "wait_series"]

#: The two waits drawn, in panel order.
_WAITS: Final = ("Lateness", "Queue wait")


def wait_series(states: pl.DataFrame | pl.LazyFrame, *, every: str | None = None) -> pl.DataFrame:
    """Aggregate lateness and queue wait per time bucket into p50 and p95.

    A run falls in the bucket of its expected start time (lateness) or of
    its first SCHEDULED/PENDING state (queue wait).

    Args:
        states: a states frame.
        every: bucket width (``"1h"``, ``"1d"``); default: about 60 buckets
            over the span of the data.

    Returns:
        Columns ``metric`` (``"Lateness"`` or ``"Queue wait"``), ``bucket``,
        ``runs``, ``quantile`` (``"p50"`` or ``"p95"``), ``seconds`` and a
        readable ``label``, ordered by metric, bucket and quantile.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "a", "b", "b"],
        ...     "type": ["PENDING", "RUNNING"] * 2, "name": ["Pending", "Running"] * 2,
        ...     "timestamp": [t(1), t(3), t(2), t(8)],
        ...     "expected_start_time": [t(0), t(0), t(0), t(0)],
        ... })
        >>> wait_series(states, every="1h").select("metric", "runs", "quantile", "seconds").rows()
        [('Lateness', 2, 'p50', 5.5), ('Lateness', 2, 'p95', 7.75), ('Queue wait', 2, 'p50', 4.0), ('Queue wait', 2, 'p95', 5.8)]
    """
    lf = states.lazy()
    if every is None:
        span = lf.select(pl.col("timestamp").max() - pl.col("timestamp").min()).collect().item()
        every = auto_every(span)
    width = parse_every(every)
    parts = [
        measured.select(metric=pl.lit(name), start_time="start_time", _s=seconds("duration"))
        for name, measured in zip(_WAITS, (lateness(lf), queue_wait(lf)), strict=True)
    ]
    s = pl.col("_s")
    wide = (
        pl.concat(parts)
        .drop_nulls("_s")
        .group_by("metric", bucket=pl.col("start_time").dt.truncate(width))
        .agg(
            runs=pl.len().cast(pl.UInt32),
            p50=s.quantile(0.5, interpolation="linear"),
            p95=s.quantile(0.95, interpolation="linear"),
        )
    )
    return (
        wide.unpivot(["p50", "p95"], index=["metric", "bucket", "runs"], variable_name="quantile")
        .rename({"value": "seconds"})
        .with_columns(label=human("seconds"))
        .sort("metric", "bucket", "quantile")
        .collect()
    )


def wait_chart(
    states: pl.DataFrame | pl.LazyFrame, *, every: str | None = None, title: str | None = None
) -> AnyChart:
    """Chart lateness and queue wait over time: p50 and p95 per bucket, one panel each.

    Lateness is a run's first RUNNING state minus its expected start time
    (runs that seemingly started early are left out); queue wait is its first
    SCHEDULED/PENDING state to its first RUNNING state.

    Args:
        states: a states frame (DataFrame or LazyFrame).
        every: bucket width; default: about 60 buckets over the data.
        title: the chart title.

    Returns:
        Two panels (an ``alt.FacetChart``) with a log seconds axis each.

    Examples:
        >>> import trs_analytics as ta
        >>> spec = wait_chart(ta.generate_states(300, seed=7)).to_dict()
        >>> spec["facet"]["row"]["field"], spec["spec"]["layer"][0]["mark"]["type"]
        ('metric', 'line')
    """
    data = wait_series(states, every=every)
    low = data.filter(pl.col("seconds") > 0)["seconds"].min()
    scale, axis = log_seconds(low, data["seconds"].max(), "seconds (log scale)")  # type: ignore[arg-type]
    data = data.with_columns(y=pl.col("seconds").clip(lower_bound=scale.domain[0]))
    tooltip = [
        alt.Tooltip("metric:N"),
        alt.Tooltip("bucket:T", title="bucket start (UTC)", format="%Y-%m-%d %H:%M"),
        alt.Tooltip("quantile:N"),
        alt.Tooltip("label:N", title="wait"),
        alt.Tooltip("runs:Q", format=","),
    ]
    color = alt.Color(
        "quantile:N",
        title=None,
        scale=alt.Scale(domain=["p50", "p95"], range=[NEUTRAL[3], NEUTRAL[0]]),
        legend=alt.Legend(orient="top", symbolType="stroke", symbolStrokeWidth=3),
    )
    x = alt.X("bucket:T", title=None, axis=alt.Axis(format="%b %d", labelAngle=0, tickCount=8))
    y = alt.Y("y:Q", scale=scale, axis=axis)
    line = alt.Chart().mark_line(strokeWidth=2, interpolate="linear").encode(x=x, y=y, color=color)
    points = (
        alt.Chart().mark_point(filled=True, size=18).encode(x=x, y=y, color=color, tooltip=tooltip)
    )
    return (
        alt.layer(line, points, data=data)
        .properties(width=620, height=150)
        .facet(
            row=alt.Row(
                "metric:N",
                sort=list(_WAITS),
                title=None,
                header=alt.Header(
                    labelAngle=0, labelAlign="left", labelAnchor="start", labelOrient="top"
                ),
            )
        )
        .properties(
            title=alt.TitleParams(
                title or "Lateness and queue wait over time",
                subtitle=(
                    "Lateness: first Running minus expected start. Queue wait: first "
                    "Scheduled/Pending to first Running. p50 and p95 per bucket."
                ),
            )
        )
    )

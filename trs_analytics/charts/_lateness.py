"""Lateness and queue wait over time: p50 and p95 per time bucket."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import altair as alt
import polars as pl

from trs_analytics.charts._common import (
    auto_every,
    human,
    log_seconds,
    seconds,
    time_axis,
    time_span,
)
from trs_analytics.charts._theme import NEUTRAL
from trs_analytics.metrics import lateness, parse_every, queue_wait

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trs_analytics.charts._theme import AnyChart

__all__ = ["WAITS_AGREE_NOTE", "wait_chart", "wait_series", "waits_agree"]

#: The two waits drawn, in panel order.
_WAITS: Final = ("Lateness", "Queue wait")

#: Why one figure stands for both waits when they agree (see docs/metrics.md).
WAITS_AGREE_NOTE: Final = (
    "Lateness equals queue wait for every run here: Prefect 3 sets a task run's expected "
    "start time to the moment its first (Pending) state is written, so both measure first "
    "state to first Running."
)


def waits_agree(states: pl.DataFrame | pl.LazyFrame) -> bool:
    """Tell whether lateness and queue wait are the same for every run that has both.

    They differ only where Prefect records an expected start time apart from
    the run's first state (scheduled runs, runs created ahead of time).

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "a"], "type": ["PENDING", "RUNNING"],
        ...     "name": ["Pending", "Running"], "timestamp": [t(1), t(3)],
        ...     "expected_start_time": [t(1), t(1)],
        ... })
        >>> waits_agree(states), waits_agree(states.with_columns(expected_start_time=t(0)))
        (True, False)
    """
    lf = states.lazy()
    late = lateness(lf).select("task_run_id", late="duration")
    queue = queue_wait(lf).select("task_run_id", queue="duration")
    both = late.join(queue, on="task_run_id", how="inner").drop_nulls()
    differ = both.select((pl.col("late") != pl.col("queue")).sum()).collect().item()
    return not differ


def wait_series(
    states: pl.DataFrame | pl.LazyFrame,
    *,
    every: str | None = None,
    waits: Sequence[str] = _WAITS,
) -> pl.DataFrame:
    """Aggregate lateness and queue wait per time bucket into p50 and p95.

    A run falls in the bucket of its expected start time (lateness) or of
    its first SCHEDULED/PENDING state (queue wait).

    Args:
        states: a states frame.
        every: bucket width (``"1h"``, ``"1d"``); default: about 60 buckets
            over the span of the data.
        waits: which of ``"Lateness"`` and ``"Queue wait"`` to measure.

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
        every = auto_every(time_span(lf))
    width = parse_every(every)
    measures = {"Lateness": lateness, "Queue wait": queue_wait}
    parts = [
        measures[name](lf).select(
            metric=pl.lit(name), start_time="start_time", _s=seconds("duration")
        )
        for name in waits
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
    states: pl.DataFrame | pl.LazyFrame,
    *,
    every: str | None = None,
    title: str | None = None,
    merge_equal: bool = True,
) -> AnyChart:
    """Chart lateness and queue wait over time: p50 and p95 per bucket, one panel each.

    Lateness is a run's first RUNNING state minus its expected start time
    (runs that seemingly started early are left out); queue wait is its first
    SCHEDULED/PENDING state to its first RUNNING state.

    Args:
        states: a states frame (DataFrame or LazyFrame).
        every: bucket width; default: about 60 buckets over the data.
        title: the chart title.
        merge_equal: when lateness equals queue wait for every run
            (:func:`waits_agree`, always so on Prefect 3), draw one panel
            and say why, instead of two identical ones.

    Returns:
        Two panels (an ``alt.FacetChart``) with a log seconds axis each, or one.

    Examples:
        >>> import trs_analytics as ta
        >>> spec = wait_chart(ta.generate_states(300, seed=7)).to_dict()
        >>> spec["facet"]["row"]["field"], spec["spec"]["layer"][0]["mark"]["type"]
        ('metric', 'line')
    """
    merged = merge_equal and waits_agree(states)
    waits = ("Queue wait",) if merged else _WAITS
    data = wait_series(states, every=every, waits=waits)
    if merged:
        data = data.with_columns(metric=pl.lit("Queue wait = lateness"))
    low = data.filter(pl.col("seconds") > 0)["seconds"].min()
    scale, axis = log_seconds(low, data["seconds"].max(), "seconds (log scale)")  # type: ignore[arg-type]
    span = time_span(data, "bucket")
    data = data.with_columns(
        y=pl.col("seconds").clip(lower_bound=scale.domain[0]),
        bucket_utc=pl.col("bucket").dt.strftime("%Y-%m-%d %H:%M:%S"),
    )
    tooltip = [
        alt.Tooltip("metric:N"),
        alt.Tooltip("bucket_utc:N", title="bucket start (UTC)"),
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
    x = alt.X(
        "bucket:T", title="UTC", scale=alt.Scale(type="utc"), axis=time_axis(span, tickCount=8)
    )
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
                sort=["Queue wait = lateness"] if merged else list(_WAITS),
                title=None,
                header=alt.Header(
                    labelAngle=0, labelAlign="left", labelAnchor="start", labelOrient="top"
                ),
            )
        )
        .properties(
            title=alt.TitleParams(
                title or "Lateness and queue wait over time",
                subtitle=_subtitle(merged=merged),
            )
        )
    )


def _subtitle(*, merged: bool) -> list[str]:
    lines = [
        "Lateness: first Running minus expected start. Queue wait: first "
        "Scheduled/Pending to first Running. p50 and p95 per bucket.",
    ]
    if merged:
        lines.append(WAITS_AGREE_NOTE)
    return lines

"""Lateness and queue wait over time: p50 and p95 per time bucket."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import altair as alt
import narwhals as nw
import polars as pl

from trs_analytics.charts._common import (
    auto_every,
    human,
    log_seconds,
    time_axis,
    time_span,
)
from trs_analytics.charts._theme import NEUTRAL
from trs_analytics.metrics import lateness, parse_every, queue_wait, to_polars
from trs_analytics.metrics._buckets import bucket_of
from trs_analytics.metrics._frames import describe, lazy, with_micros
from trs_analytics.schema import UTC_US

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trs_analytics.charts._theme import AnyChart

__all__ = ["WAITS_AGREE_NOTE", "draw_waits", "wait_chart", "wait_series", "waits_agree"]

#: The two waits drawn, in panel order.
_WAITS: Final = ("Lateness", "Queue wait")

#: Why one figure stands for both waits when they agree (see docs/metrics.md). What the
#: data shows, on whichever server line it came from: no line is named (the states do not
#: say theirs, and only Prefect 3.9.1 was measured to set it so).
WAITS_AGREE_NOTE: Final = (
    "Lateness equals queue wait for every run here: each run's expected start time is the "
    "moment its first state was written, so both measure first state to first Running."
)


def waits_agree(states: Any, *, queue: Any | None = None) -> bool:
    """Tell whether lateness and queue wait are the same for every run that has both.

    They differ only where Prefect records an expected start time apart from
    the run's first state (scheduled runs, runs created ahead of time).
    Computed on ``states``' engine: one count comes back. ``states`` may be a
    :func:`~trs_analytics.run_table` when ``queue`` (``queue_wait``'s frame,
    computed once) is given.

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
    source = states.lazy() if isinstance(states, pl.DataFrame) else states
    run = "task_run_id"
    late = _micros(lateness(source)).select(run, _late="_d")
    waited = _micros(queue_wait(source) if queue is None else queue).select(run, _queue="_d")
    both = late.join(waited, on=run, how="inner")
    differ = both.filter(
        ~nw.col("_late").is_null(), ~nw.col("_queue").is_null(), nw.col("_late") != nw.col("_queue")
    ).select(n=nw.len())
    return not to_polars(differ.to_native()).item()


def _micros(measured: Any) -> nw.LazyFrame[Any]:
    """A named duration's frame with ``_d`` (the duration) and ``_t`` (its start) in microseconds."""
    frame = lazy(measured, caller="wait_series")
    return with_micros(frame, timestamps={"_t": "start_time"}, durations={"_d": "duration"})


def wait_series(
    states: Any,
    *,
    every: str | None = None,
    waits: Sequence[str] = _WAITS,
    queue: Any | None = None,
) -> pl.DataFrame:
    """Aggregate lateness and queue wait per time bucket into p50 and p95.

    A run falls in the bucket of its expected start time (lateness) or of
    its first SCHEDULED/PENDING state (queue wait).

    Args:
        states: a states frame of any engine: each wait is measured and
            aggregated per bucket there.
        every: bucket width (``"1h"``, ``"1d"``); default: about 60 buckets
            over the span of the data.
        waits: which of ``"Lateness"`` and ``"Queue wait"`` to measure.
        queue: ``queue_wait(states)`` when already computed; ``states`` may
            then be a :func:`~trs_analytics.run_table` (with ``every`` given).

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
    source = states.lazy() if isinstance(states, pl.DataFrame) else states
    if every is None:
        every = auto_every(time_span(source))
    parse_every(every)
    measures = {
        "Lateness": lambda: lateness(source),
        "Queue wait": lambda: queue_wait(source) if queue is None else queue,
    }
    parts = []
    for name in waits:
        rows = (
            _micros(measures[name]())
            .filter(~nw.col("_d").is_null())
            .select(bucket=bucket_of(nw.col("_t"), every), _s=nw.col("_d").cast(nw.Float64()) / 1e6)
        )
        stats = to_polars(describe(rows, ["bucket"], "_s", {"p50": 0.5, "p95": 0.95}).to_native())
        parts.append(
            stats.select(
                metric=pl.lit(name),
                bucket=pl.col("bucket").cast(pl.Int64).cast(UTC_US),
                runs=pl.col("count").cast(pl.UInt32),
                p50="p50",
                p95="p95",
            )
        )
    wide = pl.concat(parts)
    return (
        wide.unpivot(["p50", "p95"], index=["metric", "bucket", "runs"], variable_name="quantile")
        .rename({"value": "seconds"})
        .with_columns(label=human("seconds"))
        .sort("metric", "bucket", "quantile")
    )


def wait_chart(
    states: Any,
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
        states: a states frame of any engine.
        every: bucket width; default: about 60 buckets over the data.
        title: the chart title.
        merge_equal: when lateness equals queue wait for every run
            (:func:`waits_agree`, always so on Prefect 3), draw one panel
            and say why, instead of two identical ones.

    Returns:
        Two panels (an ``alt.FacetChart``) with a log seconds axis each, or one.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> spec = wait_chart(generate_states(300, seed=7)).to_dict()
        >>> spec["facet"]["row"]["field"], spec["spec"]["layer"][0]["mark"]["type"]
        ('metric', 'line')
    """
    merged = merge_equal and waits_agree(states)
    waits = ("Queue wait",) if merged else _WAITS
    data = wait_series(states, every=every, waits=waits)
    return draw_waits(data, merged=merged, title=title)


def draw_waits(data: pl.DataFrame, *, merged: bool = False, title: str | None = None) -> AnyChart:
    """Draw :func:`wait_series`' rows as :func:`wait_chart` does; ``merged``: the rows are
    queue wait only, drawn as one panel for both waits (they agree).

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> data = wait_series(generate_states(300, seed=7))
        >>> draw_waits(data).to_dict()["facet"]["row"]["field"]
        'metric'
    """
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

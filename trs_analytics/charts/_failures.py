"""Failure rate over time per group, with the 95% Wilson band, final and first-attempt rates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import altair as alt
import polars as pl

from trs_analytics._format import missing_label
from trs_analytics.charts._common import (
    auto_every,
    check_top,
    one_group,
    time_axis,
    time_span,
    top_groups,
)
from trs_analytics.charts._theme import NEUTRAL, STATE_COLORS
from trs_analytics.metrics import failure_rates, to_polars

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trs_analytics.charts._theme import AnyChart

__all__ = ["draw_failure_rates", "failure_rate_chart", "failure_rate_series"]

#: The two rates drawn, with their colours.
_RATES: Final = {
    "final": ("failure_rate", "ci_low", "ci_high", STATE_COLORS["FAILED"]),
    "first attempt": (
        "first_attempt_failure_rate",
        "first_attempt_ci_low",
        "first_attempt_ci_high",
        NEUTRAL[0],
    ),
}


def failure_rate_series(
    states: Any,
    *,
    by: str | Sequence[str] | None = "task_name",
    every: str | None = None,
    top: int = 6,
) -> pl.DataFrame:
    """Aggregate what :func:`failure_rate_chart` draws: one row per group, bucket and rate.

    Args:
        states: a states frame of any engine: the rates are computed there.
        by: ``task_name``, ``flow_name`` or another per-run column; ``None``
            for all runs together.
        every: bucket width (``"1h"``, ``"1d"``); default: about 40 buckets
            over the span of the data.
        top: how many groups to keep: those with the most failed runs.

    Returns:
        Columns ``group`` (the ``by`` value as text, ``"all runs"`` when
        ``by`` is None), ``bucket``, ``rate`` (``"final"`` or ``"first
        attempt"``), ``value``, ``low``, ``high`` (95% Wilson band), ``runs``,
        ``failed`` (runs that failed, finally or at their first attempt).
        Buckets with no finished run are left out; runs with no ``by``
        value form their own group (``"(no flow)"`` for ``flow_name``).

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "a", "b", "b", "b"], "task_name": ["etl"] * 5,
        ...     "type": ["RUNNING", "FAILED", "RUNNING", "RUNNING", "COMPLETED"],
        ...     "name": ["Running", "Failed", "Running", "Retrying", "Completed"],
        ...     "timestamp": [t(0), t(1), t(0), t(1), t(2)],
        ... })
        >>> failure_rate_series(states, every="1d").select("rate", "value", "runs", "failed").rows()
        [('final', 0.5, 2, 1), ('first attempt', 1.0, 2, 2)]
    """
    by = one_group(by)
    check_top(top)
    source = states.lazy() if isinstance(states, pl.DataFrame) else states
    if every is None:
        every = auto_every(time_span(source), buckets=40)
    rates = to_polars(failure_rates(source, by=by, every=every))
    key = by if by is not None else "_group"
    if by is None:
        rates = rates.with_columns(_group=pl.lit("all runs"))
    else:  # runs outside any flow are a group of their own, as in the tables
        rates = rates.with_columns(pl.col(by).cast(pl.String).fill_null(missing_label(by)))
    totals = rates.group_by(key).agg(pl.col("failed").sum()).filter(pl.col("failed") > 0)
    groups = top_groups(totals, key, "failed", top) if by is not None else ["all runs"]
    rates = rates.filter(pl.col(key).cast(pl.String).is_in(groups) & (pl.col("runs") > 0))
    failed = {"final": "failed", "first attempt": "first_attempt_failed"}
    parts = [
        rates.select(
            group=pl.col(key).cast(pl.String),
            bucket="bucket",
            rate=pl.lit(rate),
            value=value,
            low=low,
            high=high,
            runs="runs",
            failed=failed[rate],
        )
        for rate, (value, low, high, _) in _RATES.items()
    ]
    order = {g: i for i, g in enumerate(groups)}
    return (
        pl.concat(parts)
        .with_columns(_order=pl.col("group").replace_strict(order, default=len(order)))
        .sort("_order", "bucket", "rate")
        .drop("_order")
    )


def failure_rate_chart(
    states: Any,
    *,
    by: str | Sequence[str] | None = "task_name",
    every: str | None = None,
    top: int = 6,
    columns: int = 3,
    title: str | None = None,
) -> AnyChart:
    """Chart failure rates over time: final rate and first-attempt rate, each with its Wilson band.

    A run is counted in the bucket of its first state. The final rate is the
    share of finished runs (completed + failed) that ended FAILED or CRASHED;
    the first-attempt rate the share whose first attempt failed (retried or
    not), so the gap between the lines is what retries rescued. One panel
    per group (the ``top`` groups with the most failed runs).

    Args:
        states: a states frame of any engine.
        by: ``task_name``, ``flow_name`` or another per-run column; ``None``
            for one panel over all runs.
        every: bucket width such as ``"1h"``; default: about 40 buckets.
        top: how many groups (panels) to draw.
        columns: panels per row.
        title: the chart title.

    Returns:
        Small multiples (an ``alt.FacetChart``), or a single layered chart when
        ``by`` is None.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> chart = failure_rate_chart(generate_states(500, seed=2), by="flow_name", top=2)
        >>> type(chart).__name__, chart.to_dict()["facet"]["field"]
        ('FacetChart', 'group')
    """
    by = one_group(by)
    data = failure_rate_series(states, by=by, every=every, top=top)
    return draw_failure_rates(data, by=by, columns=columns, title=title)


def draw_failure_rates(
    data: pl.DataFrame,
    *,
    by: str | Sequence[str] | None = "task_name",
    columns: int = 3,
    title: str | None = None,
) -> AnyChart:
    """Draw :func:`failure_rate_series`' rows as :func:`failure_rate_chart` does.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> series = failure_rate_series(generate_states(500, seed=2), by=None)
        >>> type(draw_failure_rates(series, by=None)).__name__
        'LayerChart'
    """
    by = one_group(by)
    groups = data["group"].unique(maintain_order=True).to_list()
    color = alt.Color(
        "rate:N",
        title="failure rate",
        scale=alt.Scale(domain=list(_RATES), range=[c for *_, c in _RATES.values()]),
        legend=alt.Legend(orient="top", symbolType="stroke", symbolStrokeWidth=3, symbolOpacity=1),
    )
    span = time_span(data, "bucket")
    data = data.with_columns(
        bucket_utc=pl.col("bucket").dt.strftime("%Y-%m-%d %H:%M:%S"),
        alone=pl.col("bucket").n_unique().over("group") == 1,
        note=pl.format("{} of {} failed", "failed", "runs"),
    )
    x = alt.X(
        "bucket:T", title="UTC", scale=alt.Scale(type="utc"), axis=time_axis(span, tickCount=4)
    )
    tooltip = [
        alt.Tooltip("group:N", title=(by or "group").replace("_", " ")),
        alt.Tooltip("bucket_utc:N", title="bucket start (UTC)"),
        alt.Tooltip("rate:N", title="rate"),
        alt.Tooltip("value:Q", title="failure rate", format=".1%"),
        alt.Tooltip("low:Q", title="95% low", format=".1%"),
        alt.Tooltip("high:Q", title="95% high", format=".1%"),
        alt.Tooltip("failed:Q", title="failed runs", format=","),
        alt.Tooltip("runs:Q", title="finished runs", format=","),
    ]
    base = alt.Chart().encode(x=x, color=color)
    band = base.mark_area(opacity=0.14, interpolate="step-after").encode(
        y=alt.Y("low:Q", title="failed / finished runs", axis=alt.Axis(format="%")), y2="high:Q"
    )
    line = base.mark_line(interpolate="step-after", strokeWidth=2).encode(
        y="value:Q",
        strokeDash=alt.StrokeDash(
            "rate:N",
            title="failure rate",
            scale=alt.Scale(domain=list(_RATES), range=[[1, 0], [5, 3]]),
        ),
    )
    # two line layers, so the final rate is drawn over the first-attempt rate where they meet
    first_line = line.transform_filter(alt.datum.rate == "first attempt")
    final_line = line.transform_filter(alt.datum.rate == "final")
    # points, and for a group with one bucket (no line, no band) its interval as a bar
    whiskers = (
        base.transform_filter(alt.datum.alone)
        .mark_rule(strokeWidth=2, opacity=0.6)
        .encode(y="low:Q", y2="high:Q")
    )
    points = base.mark_point(filled=True, size=36, opacity=0.9).encode(y="value:Q", tooltip=tooltip)
    notes = (
        base.transform_filter(alt.datum.alone & (alt.datum.rate == "final"))
        .mark_text(align="left", dx=8, fontSize=11, color="#3B4452")
        .encode(y="value:Q", text="note:N")
    )
    heading = alt.TitleParams(
        title or f"Failure rate per {(by or 'run').replace('_', ' ')} over time",
        subtitle=(
            "Final: runs that ended Failed/Crashed. First attempt: runs whose first attempt "
            "failed. Bands and bars: 95% Wilson intervals."
        ),
    )
    # the single-bucket layers only when a group has one bucket: an empty layer makes Vega
    # warn of an infinite extent
    layers = (
        [band, whiskers, first_line, final_line, points, notes]
        if data["alone"].any()
        else [band, first_line, final_line, points]
    )
    layered = alt.layer(*layers, data=data)
    if by is None:
        return layered.properties(title=heading, width=560, height=220)
    return layered.properties(width=240, height=140).facet(
        facet=alt.Facet("group:N", sort=groups, title=None), columns=columns, title=heading
    )

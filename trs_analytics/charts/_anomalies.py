"""The expected band of :func:`~trs_analytics.metrics.detect_anomalies`, with flagged buckets marked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import altair as alt
import polars as pl

from trs_analytics.charts._common import check_top, human, log_seconds, time_axis, time_span
from trs_analytics.charts._theme import NEUTRAL, STATE_COLORS
from trs_analytics.exceptions import SchemaError
from trs_analytics.metrics import ANOMALY_COLUMNS, to_polars

if TYPE_CHECKING:
    from trs_analytics.charts._theme import AnyChart

__all__ = ["anomaly_chart", "anomaly_series"]


def anomaly_series(result: Any, *, top: int = 6) -> pl.DataFrame:
    """Prepare a :func:`~trs_analytics.metrics.detect_anomalies` result for charting.

    Keeps the ``top`` groups with the most flagged buckets (then the most
    runs), names each group in one ``group`` column (the ``by`` columns
    joined by " / "; "all runs" without ``by``) and adds readable labels.

    Args:
        result: the output of ``detect_anomalies`` on any engine.
        top: how many groups to keep.

    Raises:
        SchemaError: ``result`` does not have the columns of ``detect_anomalies``.

    Examples:
        >>> import trs_analytics as ta
        >>> from trs_analytics.testing import generate_planted
        >>> planted = generate_planted(seed=1, n_tasks=3, days=21, spikes=1, failure_jumps=0)
        >>> series = anomaly_series(ta.detect_anomalies(planted.states), top=1)
        >>> series["group"].unique().to_list(), int(series["anomalous"].sum())
        (['extract_orders'], 1)
    """
    frame = to_polars(result)
    missing = [c for c in ANOMALY_COLUMNS if c not in frame.columns]
    if missing:
        msg = (
            f"anomaly_chart() needs the columns of detect_anomalies(), missing {missing}. "
            "Hint: pass ta.detect_anomalies(states, ...) as it is returned."
        )
        raise SchemaError(msg)
    keys = frame.columns[: frame.columns.index("bucket")]
    group = (
        pl.concat_str(
            [pl.col(k).cast(pl.String).fill_null("(none)") for k in keys], separator=" / "
        )
        if keys
        else pl.lit("all runs")
    )
    frame = frame.with_columns(group=group)
    ranked = (
        frame.group_by("group")
        .agg(flags=pl.col("anomalous").sum(), runs=pl.col("runs").sum())
        .sort(["flags", "runs", "group"], descending=[True, True, False])
    )
    kept = ranked["group"].head(check_top(top)).to_list()
    durations = bool(frame.height) and frame["metric"][0] != "failure_rate"
    text = human if durations else _percent
    return (
        frame.filter(pl.col("group").is_in(kept))
        .with_columns(
            bucket_utc=pl.col("bucket").dt.strftime("%Y-%m-%d %H:%M:%S"),
            observed_label=text("observed"),
            expected_label=text("expected"),
            band_label=pl.format("{} to {}", text("lower"), text("upper")),
        )
        .sort("group", "bucket")
        .select(
            "group",
            "bucket",
            *ANOMALY_COLUMNS[1:],
            "bucket_utc",
            "observed_label",
            "expected_label",
            "band_label",
        )
    )


def _percent(column: str) -> pl.Expr:
    return pl.format("{}%", (pl.col(column) * 100).round(1))


def anomaly_chart(
    result: Any, *, top: int = 6, columns: int = 2, title: str | None = None
) -> AnyChart:
    """Chart each group's observed series inside its expected band, flagged buckets marked.

    The grey band runs from ``lower`` to ``upper``, the dashed line is
    ``expected``, the dark line ``observed``; flagged buckets are red points
    whose tooltip gives the reason. Durations use a logarithmic seconds axis,
    failure rates a percentage axis. One panel per group (the ``top`` groups
    with the most flagged buckets).

    Args:
        result: the output of :func:`~trs_analytics.metrics.detect_anomalies` (any engine).
        top: how many groups (panels) to draw.
        columns: panels per row.
        title: the chart title.

    Returns:
        A layered chart for one group, small multiples (``alt.FacetChart``) for several.

    Examples:
        >>> import trs_analytics as ta
        >>> from trs_analytics.testing import generate_planted
        >>> planted = generate_planted(seed=1, n_tasks=3, days=21, spikes=1, failure_jumps=0)
        >>> chart = anomaly_chart(ta.detect_anomalies(planted.states))
        >>> type(chart).__name__, chart.to_dict()["facet"]["field"]
        ('FacetChart', 'group')
    """
    data = anomaly_series(result, top=top)
    metric = data["metric"][0] if data.height else "run_time"
    durations = metric != "failure_rate"
    groups = data["group"].unique(maintain_order=True).to_list()
    if durations:
        low = data.select(pl.min_horizontal("observed", "lower").min()).item()
        high = data.select(pl.max_horizontal("observed", "upper").max()).item()
        scale, axis = log_seconds(low, high, metric.replace("_", " "))
    else:
        scale, axis = alt.Scale(zero=True), alt.Axis(format="%", title="failure rate")
    x = alt.X(
        "bucket:T",
        title="UTC",
        scale=alt.Scale(type="utc"),
        axis=time_axis(time_span(data, "bucket"), tickCount=4),
    )
    tooltip = [
        alt.Tooltip("group:N", title="group"),
        alt.Tooltip("bucket_utc:N", title="bucket start (UTC)"),
        alt.Tooltip("observed_label:N", title="observed"),
        alt.Tooltip("expected_label:N", title="expected"),
        alt.Tooltip("band_label:N", title="normal range"),
        alt.Tooltip("runs:Q", title="runs", format=","),
        alt.Tooltip("training_size:Q", title="training runs", format=","),
        alt.Tooltip("score:Q", title="score", format=".2f"),
        alt.Tooltip("reason:N", title="reason"),
    ]
    base = alt.Chart().encode(x=x)
    y = alt.Y("observed:Q", scale=scale, axis=axis)
    band = base.mark_area(opacity=0.35, color=NEUTRAL[1], interpolate="step-after").encode(
        y=alt.Y("lower:Q", scale=scale, axis=axis), y2="upper:Q"
    )
    expected = base.mark_line(
        color=NEUTRAL[0], strokeDash=[5, 3], strokeWidth=1.5, interpolate="step-after"
    ).encode(y=alt.Y("expected:Q", scale=scale, axis=axis))
    observed = base.mark_line(color=NEUTRAL[0], strokeWidth=2, point=True).encode(
        y=y, tooltip=tooltip
    )
    flagged = (
        base.transform_filter(alt.datum.anomalous)
        .mark_point(filled=True, size=90, color=STATE_COLORS["FAILED"], opacity=1)
        .encode(y=y, tooltip=tooltip)
    )
    heading = alt.TitleParams(
        title or f"Anomalies: {metric.replace('_', ' ')}",
        subtitle=(
            "Band: the normal range learnt from each bucket's training window; dashed: "
            "expected; red: flagged buckets."
        ),
    )
    layered = alt.layer(band, expected, observed, flagged, data=data)
    if len(groups) <= 1:
        return layered.properties(title=heading, width=560, height=200)
    return layered.properties(width=300, height=140).facet(
        facet=alt.Facet("group:N", sort=groups, title=None), columns=columns, title=heading
    )

"""Distribution of a duration per task: a box per group with p50 and p95 marked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Literal

import altair as alt
import narwhals as nw
import polars as pl

from trs_analytics.charts._common import check_top, human, log_seconds, one_group, top_groups
from trs_analytics.charts._theme import NEUTRAL, STATE_COLORS
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.metrics import (
    end_to_end,
    explode_tags,
    lateness,
    queue_wait,
    retry_wait,
    run_time,
    to_polars,
)
from trs_analytics.metrics._frames import describe, lazy, with_micros
from trs_analytics.schema import require_columns

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from trs_analytics.charts._theme import AnyChart

__all__ = [
    "DURATION_METRICS",
    "DurationMetric",
    "draw_durations",
    "duration_chart",
    "duration_label",
    "duration_stats",
]

#: The named durations :func:`duration_chart` can draw.
DurationMetric = Literal["run_time", "queue_wait", "end_to_end", "retry_wait", "lateness"]

#: Each named duration: the metric function and its axis label.
DURATION_METRICS: Final[dict[str, tuple[Callable[[Any], Any], str]]] = {
    "run_time": (run_time, "Run time"),
    "queue_wait": (queue_wait, "Queue wait"),
    "end_to_end": (end_to_end, "End-to-end time"),
    "retry_wait": (retry_wait, "Retry wait"),
    "lateness": (lateness, "Lateness"),
}

#: Shortest duration drawn, in seconds (the axis is logarithmic).
_FLOOR: Final = 1e-3

_QUANTILES: Final = {"p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}


def _measure(states: Any, metric: DurationMetric | Callable[[Any], Any]) -> Any:
    """The durations measured on ``states``' engine (a Polars DataFrame is measured lazily)."""
    source = states.lazy() if isinstance(states, pl.DataFrame) else states
    if callable(metric):
        return metric(source)
    duration_label(metric)
    return DURATION_METRICS[metric][0](source)


def duration_label(metric: DurationMetric | Callable[[Any], Any]) -> str:
    """The axis label of a named duration (``"Duration"`` for a function).

    Raises:
        ConfigurationError: ``metric`` is neither a named duration nor a function.

    Examples:
        >>> duration_label("run_time"), duration_label(lambda s: s)
        ('Run time', 'Duration')
    """
    if callable(metric):
        return "Duration"
    if metric not in DURATION_METRICS:
        msg = (
            f"metric={metric!r} is not one of {sorted(DURATION_METRICS)}. Hint: pass a name, "
            "or a function from a states LazyFrame to a frame with a 'duration' column."
        )
        raise ConfigurationError(msg)
    return DURATION_METRICS[metric][1]


def duration_stats(
    states: Any,
    *,
    metric: DurationMetric | Callable[[Any], Any] = "run_time",
    by: str | Sequence[str] = "task_name",
) -> pl.DataFrame:
    """Aggregate a duration per group into what :func:`duration_chart` draws.

    Args:
        states: a states frame of any engine (Polars, DuckDB, Spark): the
            durations are measured and aggregated there.
        metric: a named duration (``"run_time"``, ``"queue_wait"``,
            ``"end_to_end"``, ``"retry_wait"``, ``"lateness"``) or a function
            from a states LazyFrame to a frame with a ``duration`` column (for
            example ``lambda s: ta.durations(s, start="PENDING", end="TERMINAL")``).
        by: the grouping column (``tags``: a run counts in each of its tags).

    Returns:
        One row per group, by descending p95: ``by``, ``count`` and, in
        seconds, ``min``, ``p25``, ``p50``, ``p75``, ``p95``, ``max``.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "a", "b", "b"], "task_name": ["etl"] * 4,
        ...     "type": ["RUNNING", "COMPLETED"] * 2, "name": ["Running", "Completed"] * 2,
        ...     "timestamp": [t(0), t(2), t(0), t(4)],
        ... })
        >>> duration_stats(states).select("task_name", "count", "p50", "max").rows()
        [('etl', 2, 3.0, 4.0)]
    """
    by = one_group(by)
    measured = _measure(states, metric)
    require_columns(measured, ["duration", by], caller="duration_stats")
    frame = lazy(explode_tags(measured, [by]), caller="duration_stats")
    seconds = nw.col("_us").cast(nw.Float64()) / 1e6
    frame = with_micros(frame, durations={"_us": "duration"}).select(by, _s=seconds)
    stats = describe(frame.filter(~nw.col("_s").is_null()), [by], "_s", _QUANTILES)
    result = to_polars(stats.to_native()).select(
        by, pl.col("count").cast(pl.UInt32), "min", *_QUANTILES, "max"
    )
    return result.sort(["p95", by], descending=[True, False], nulls_last=True)


def duration_chart(
    states: Any,
    *,
    metric: DurationMetric | Callable[[Any], Any] = "run_time",
    by: str | Sequence[str] = "task_name",
    top: int = 25,
    title: str | None = None,
) -> AnyChart:
    """Chart the distribution of a duration per group: box p25-p75, p50 tick, p95 diamond.

    Whiskers go from the shortest to the longest duration; the axis is
    logarithmic (durations below 1 ms are drawn at 1 ms). Groups are ordered
    by p95, longest first; only the ``top`` longest are drawn.

    Args:
        states: a states frame of any engine.
        metric: what to measure; see :func:`duration_stats`.
        by: the grouping column.
        top: how many groups to draw.
        title: the chart title (default: the metric's name).

    Returns:
        A layered Altair chart with one row of data per group.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> chart = duration_chart(generate_states(200, seed=1), top=5)
        >>> [layer.mark.type for layer in chart.layer]
        ['rule', 'bar', 'tick', 'point']
        >>> len(chart.data)
        5
    """
    by = one_group(by)
    stats = duration_stats(states, metric=metric, by=by)
    return draw_durations(stats, by=by, top=top, label=duration_label(metric), title=title)


def draw_durations(
    stats: pl.DataFrame,
    *,
    by: str | Sequence[str] = "task_name",
    top: int = 25,
    label: str = "Duration",
    title: str | None = None,
) -> AnyChart:
    """Draw :func:`duration_stats`' rows as :func:`duration_chart` does.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> stats = duration_stats(generate_states(200, seed=1))
        >>> len(draw_durations(stats, top=3, label="Run time").data)
        3
    """
    by = one_group(by)
    groups = top_groups(stats, by, "p95", check_top(top))
    data = stats.filter(pl.col(by).cast(pl.String).is_in(groups)).with_columns(
        *(pl.col(c).clip(lower_bound=_FLOOR).alias(f"{c}_x") for c in ("min", *_QUANTILES, "max")),
        *(human(c).alias(f"{c}_label") for c in ("min", *_QUANTILES, "max")),
    )
    y = alt.Y(f"{by}:N", sort=groups, title=None, axis=alt.Axis(labelLimit=220))
    x_scale, x_axis = log_seconds(data["min_x"].min(), data["max_x"].max(), f"{label} (log scale)")  # type: ignore[arg-type]
    tooltip = [
        alt.Tooltip(f"{by}:N", title=by.replace("_", " ")),
        alt.Tooltip("count:Q", title="runs", format=","),
        *(alt.Tooltip(f"{c}_label:N", title=c) for c in ("min", *_QUANTILES, "max")),
    ]
    base = alt.Chart().encode(y=y, tooltip=tooltip)
    whisker = base.mark_rule(color=NEUTRAL[1]).encode(
        x=alt.X("min_x:Q", scale=x_scale, axis=x_axis), x2="max_x:Q"
    )
    box = base.mark_bar(color=STATE_COLORS["RUNNING"], opacity=0.35, size=14).encode(
        x="p25_x:Q", x2="p75_x:Q"
    )
    median = base.mark_tick(color=STATE_COLORS["RUNNING"], thickness=3, size=18).encode(x="p50_x:Q")
    p95 = base.mark_point(
        shape="diamond", filled=True, size=70, color=STATE_COLORS["FAILED"]
    ).encode(x="p95_x:Q")
    shown = f"the {len(groups)} with the longest p95" if len(groups) < stats.height else "all"
    return alt.layer(whisker, box, median, p95, data=data).properties(
        title=alt.TitleParams(
            title or f"{label} per {by.replace('_', ' ')}",
            subtitle=(
                f"Box: p25-p75 · blue tick: p50 · red diamond: p95 · whiskers: min-max. "
                f"{stats.height} groups, {shown} shown."
            ),
        ),
        width=520,
        height=alt.Step(22),
    )

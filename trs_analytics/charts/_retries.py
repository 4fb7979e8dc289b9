"""Retries per group, and how the retried runs ended (how many retries rescued)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import altair as alt
import narwhals as nw
import polars as pl

from trs_analytics.charts._common import check_top, one_group, top_groups
from trs_analytics.charts._theme import STATE_COLORS, state_scale
from trs_analytics.metrics import explode_tags, retry_counts, to_polars
from trs_analytics.metrics._frames import lazy
from trs_analytics.schema import StateType, require_columns

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trs_analytics.charts._theme import AnyChart

__all__ = ["draw_retries", "retry_chart", "retry_outcomes"]

#: Stacking order of the final state types: rescued first, then failures, then the rest.
_STACK: Final = (
    "COMPLETED",
    "FAILED",
    "CRASHED",
    "CANCELLED",
    "CANCELLING",
    "RUNNING",
    "PENDING",
    "SCHEDULED",
    "PAUSED",
)


def retry_outcomes(states: Any, *, by: str | Sequence[str] = "task_name") -> pl.DataFrame:
    """Count, per group, the retried runs by how they ended.

    One aggregate per group and final state, computed on ``states``' engine;
    the per-group totals are summed from its few rows.

    Args:
        states: a states frame of any engine.
        by: the grouping column (``tags``: a run counts in each of its tags).

    Returns:
        One row per group and final state type of its retried runs (runs with
        at least one retry), ordered by group: ``by``, ``final_type``
        (as text), ``retried`` (runs), and per group: ``runs`` (all runs),
        ``group_retried``, ``retries`` (all retries), ``rescued`` (retried
        runs, or runs with an earlier failure, that ended COMPLETED).

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "a", "a", "b", "b", "b", "c", "c"],
        ...     "task_name": ["etl"] * 8,
        ...     "type": ["RUNNING", "RUNNING", "COMPLETED", "RUNNING", "RUNNING", "FAILED",
        ...              "RUNNING", "COMPLETED"],
        ...     "name": ["Running", "Retrying", "Completed", "Running", "Retrying", "Failed",
        ...              "Running", "Completed"],
        ...     "timestamp": [t(0), t(1), t(2), t(0), t(1), t(2), t(0), t(1)],
        ... })
        >>> retry_outcomes(states).select("final_type", "retried", "runs", "rescued").rows()
        [('COMPLETED', 1, 3, 1), ('FAILED', 1, 3, 1)]
    """
    by = one_group(by)
    require_columns(states, [by], caller="retry_outcomes")
    source = states.lazy() if isinstance(states, pl.DataFrame) else states
    runs = lazy(explode_tags(retry_counts(source), [by]), caller="retry_outcomes")
    grouped = runs.group_by(by, "final_type", drop_null_keys=False).agg(
        runs=nw.len(),
        retried=(nw.col("retries") > 0).cast(nw.Int64()).sum(),
        retries=nw.col("retries").sum(),
        rescued=nw.col("rescued").cast(nw.Int64()).sum(),
    )
    counts = ("runs", "retried", "retries", "rescued")
    small = to_polars(grouped.to_native()).with_columns(
        pl.col("final_type").cast(pl.String).cast(StateType),
        *(pl.col(c).cast(pl.UInt32) for c in counts),
    )
    per_group = small.group_by(by).agg(
        pl.col("runs").sum(),
        group_retried=pl.col("retried").sum(),
        retries=pl.col("retries").sum(),
        rescued=pl.col("rescued").sum(),
    )
    per_type = small.filter(pl.col("retried") > 0).select(by, "final_type", "retried")
    return (
        per_type.join(per_group, on=by, how="left", nulls_equal=True)
        .sort(by, "final_type", nulls_last=True)
        .with_columns(pl.col("final_type").cast(pl.String))
    )


def retry_chart(
    states: Any,
    *,
    by: str | Sequence[str] = "task_name",
    top: int = 20,
    title: str | None = None,
) -> AnyChart:
    """Chart retried runs per group, stacked by how they ended, labelled with retries and rescues.

    A bar's green part is the runs that retries rescued (retried, then
    COMPLETED); its red part the runs that failed anyway. The label gives the
    group's total retries, rescued runs and the share of its runs retried.

    Args:
        states: a states frame of any engine.
        by: the grouping column.
        top: how many groups to draw: those with the most retried runs.
        title: the chart title.

    Returns:
        A layered Altair chart with one row per group and final state type.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> chart = retry_chart(generate_states(500, seed=2), top=3)
        >>> spec = chart.to_dict()
        >>> [layer["mark"]["type"] for layer in spec["layer"]]
        ['bar', 'text']
        >>> spec["layer"][0]["encoding"]["color"]["field"]
        'final_type'
    """
    by = one_group(by)
    return draw_retries(retry_outcomes(states, by=by), by=by, top=top, title=title)


def draw_retries(
    data: pl.DataFrame,
    *,
    by: str | Sequence[str] = "task_name",
    top: int = 20,
    title: str | None = None,
) -> AnyChart:
    """Draw :func:`retry_outcomes`' rows as :func:`retry_chart` does.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> data = retry_outcomes(generate_states(500, seed=2))
        >>> [layer.mark.type for layer in draw_retries(data, top=3).layer]
        ['bar', 'text']
    """
    by = one_group(by)
    totals = data.unique(by, keep="first")
    groups = top_groups(totals, by, "group_retried", check_top(top))
    data = data.filter(pl.col(by).cast(pl.String).is_in(groups)).with_columns(
        stack=pl.col("final_type").replace_strict({t: i for i, t in enumerate(_STACK)}),
        first=pl.int_range(pl.len()).over(by) == 0,
        share=pl.col("group_retried") / pl.col("runs"),
        label=pl.format(
            "{} retries · {} rescued",
            pl.col("retries"),
            pl.col("rescued"),
        ),
    )
    present = set(data["final_type"].to_list())
    scale = state_scale([t for t in _STACK if t in present])
    scale.domain = [t for t in _STACK if t in present]
    scale.range = [STATE_COLORS[t] for t in scale.domain]
    y = alt.Y(f"{by}:N", sort=groups, title=None, axis=alt.Axis(labelLimit=220))
    tooltip = [
        alt.Tooltip(f"{by}:N", title=by.replace("_", " ")),
        alt.Tooltip("final_type:N", title="ended"),
        alt.Tooltip("retried:Q", title="retried runs that ended so", format=","),
        alt.Tooltip("group_retried:Q", title="retried runs", format=","),
        alt.Tooltip("runs:Q", title="all runs", format=","),
        alt.Tooltip("share:Q", title="share retried", format=".1%"),
        alt.Tooltip("retries:Q", title="retries", format=","),
        alt.Tooltip("rescued:Q", title="rescued", format=","),
    ]
    bars = (
        alt.Chart()
        .mark_bar(height={"band": 0.7})
        .encode(
            y=y,
            x=alt.X("retried:Q", stack="zero", title="retried runs"),
            color=alt.Color(
                "final_type:N", title="ended", scale=scale, legend=alt.Legend(orient="top")
            ),
            order=alt.Order("stack:Q"),
            tooltip=tooltip,
        )
    )
    labels = (
        alt.Chart()
        .transform_filter(alt.datum.first)
        .mark_text(align="left", dx=4, fontSize=11, color="#3B4452")
        .encode(y=y, x=alt.X("group_retried:Q"), text="label:N", tooltip=tooltip)
    )
    return alt.layer(bars, labels, data=data).properties(
        title=alt.TitleParams(
            title or f"Retried runs per {by.replace('_', ' ')}, by how they ended",
            subtitle="Green: rescued by a retry. Red/orange: failed or crashed anyway.",
        ),
        width=460,
        height=alt.Step(22),
    )

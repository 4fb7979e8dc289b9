"""State-transition counts (from → to) as a heatmap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import altair as alt
import polars as pl

from trs_analytics.metrics import to_polars, transitions
from trs_analytics.metrics._frames import materialized_by_run, schema_of
from trs_analytics.schema import run_id_column

if TYPE_CHECKING:
    from trs_analytics.charts._theme import AnyChart

__all__ = ["draw_transitions", "transition_chart", "transition_counts"]


def transition_counts(
    states: Any, *, level: Literal["type", "name"] = "type", parts: int = 1
) -> pl.DataFrame:
    """Count how often a task run went from one state to the next.

    Each run's states are de-duplicated and ordered by timestamp (as the
    metrics do); every pair of consecutive states is one transition.

    Args:
        states: a states frame of any engine: the transitions are counted there.
        parts: on a Polars LazyFrame, count a set of runs at a time, in this many
            sets (:func:`~trs_analytics.metrics._frames.materialized_by_run`): the
            same counts, one set's states held at once.
        level: ``"type"`` counts transitions between state types, ``"name"``
            between state names.

    Returns:
        Columns ``from``, ``to`` (text), ``count``, ``share`` (of all
        transitions leaving ``from``), ``from_order`` and ``to_order`` (the
        state type's lifecycle position times 1000 plus the state's mean
        position in its run: what orders the axes), by descending count.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "a", "a", "b", "b"],
        ...     "type": ["PENDING", "RUNNING", "COMPLETED", "PENDING", "RUNNING"],
        ...     "name": ["Pending", "Running", "Completed", "Pending", "Running"],
        ...     "timestamp": [t(0), t(1), t(2), t(0), t(1)],
        ... })
        >>> transition_counts(states).select("from", "to", "count", "share").rows()
        [('PENDING', 'RUNNING', 2, 1.0), ('RUNNING', 'COMPLETED', 1, 1.0)]
    """
    source = states.lazy() if isinstance(states, pl.DataFrame) else states
    if parts == 1:
        return to_polars(transitions(source, level=level))
    # a set of runs at a time (Polars): counts add up, the mean positions weigh by count
    run = run_id_column(schema_of(source).names())
    build = lambda frame: transitions(frame, level=level)  # noqa: E731
    with materialized_by_run(source, build, run=run, parts=parts) as pieces:
        sets = to_polars(pieces)
    count = pl.col("count").sum()
    summed = sets.group_by("from", "to").agg(
        count.cast(pl.UInt32),
        from_order=(pl.col("from_order") * pl.col("count")).sum() / count,
        to_order=(pl.col("to_order") * pl.col("count")).sum() / count,
    )
    share = pl.col("count") / pl.col("count").sum().over("from")
    return summed.select(
        "from", "to", "count", share.alias("share"), "from_order", "to_order"
    ).sort(["count", "from", "to"], descending=[True, False, False])


def _axis_order(data: pl.DataFrame, column: str) -> list[str]:
    order = (
        data.group_by(column).agg(pl.col(f"{column}_order").mean()).sort(f"{column}_order", column)
    )
    return [str(v) for v in order[column].to_list()]


def transition_chart(
    states: Any,
    *,
    level: Literal["type", "name"] = "type",
    title: str | None = None,
) -> AnyChart:
    """Chart state-transition counts as a heatmap: rows are *from*, columns are *to*.

    The colour is the count on a log scale; each cell is labelled with its
    count. Rows and columns follow Prefect's state lifecycle.

    Args:
        states: a states frame of any engine.
        level: ``"type"`` or ``"name"`` (Running vs Retrying, AwaitingRetry...).
        title: the chart title.

    Returns:
        A layered Altair chart with one row of data per observed transition.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> spec = transition_chart(generate_states(100, seed=6)).to_dict()
        >>> [layer["mark"]["type"] for layer in spec["layer"]]
        ['rect', 'text']
        >>> spec["layer"][0]["encoding"]["color"]["scale"]["type"]
        'log'
    """
    return draw_transitions(transition_counts(states, level=level), level=level, title=title)


def draw_transitions(
    data: pl.DataFrame, *, level: Literal["type", "name"] = "type", title: str | None = None
) -> AnyChart:
    """Draw :func:`transition_counts`' rows as :func:`transition_chart` does.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> data = transition_counts(generate_states(100, seed=6))
        >>> [layer["mark"]["type"] for layer in draw_transitions(data).to_dict()["layer"]]
        ['rect', 'text']
    """
    top = int(data["count"].max() or 1)  # type: ignore[arg-type]
    x = alt.X(
        "to:N",
        sort=_axis_order(data, "to"),
        title="to",
        axis=alt.Axis(orient="top", labelAngle=-30),
    )
    y = alt.Y("from:N", sort=_axis_order(data, "from"), title="from")
    tooltip = [
        alt.Tooltip("from:N"),
        alt.Tooltip("to:N"),
        alt.Tooltip("count:Q", format=","),
        alt.Tooltip("share:Q", title="share of transitions leaving 'from'", format=".1%"),
    ]
    cells = (
        alt.Chart()
        .mark_rect(stroke="white", strokeWidth=2, cornerRadius=3)
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "count:Q",
                title="transitions",
                scale=alt.Scale(type="log", scheme="blues", domain=[1, max(top, 10)]),
                legend=alt.Legend(format="~s"),
            ),
            tooltip=tooltip,
        )
    )
    dark = max(top, 10) ** 0.6
    labels = (
        alt.Chart()
        .mark_text(fontSize=11)
        .encode(
            x=x,
            y=y,
            text=alt.Text("count:Q", format=",.3~s"),
            color=alt.condition(
                f"datum.count > {dark:.0f}", alt.value("white"), alt.value("#1F2937")
            ),
            tooltip=tooltip,
        )
    )
    noun = "state type" if level == "type" else "state name"
    return alt.layer(cells, labels, data=data).properties(
        title=alt.TitleParams(
            title or f"Transitions between {noun}s",
            subtitle="How often a task run went from the row's state to the column's state.",
        ),
        width=alt.Step(64),
        height=alt.Step(34),
    )

"""Charts of flow runs and inside them: duration trend per deployment, landing times, the
critical path on a flow run's timeline, and concurrency over time beside its limits.

Each chart computes its small frame with :mod:`trs_analytics.metrics` (on any
engine), brings it to Polars and draws it; its companion function returns
that frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import altair as alt
import polars as pl

from trs_analytics._format import missing_label
from trs_analytics.charts._breakdowns import duration_trend_chart
from trs_analytics.charts._common import (
    auto_every,
    check_top,
    human,
    one_group,
    seconds,
    time_axis,
    time_span,
    top_groups,
)
from trs_analytics.charts._theme import NEUTRAL, STATE_COLORS
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.metrics import (
    concurrency,
    critical_path,
    duration_trend,
    landing_time,
    to_polars,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trs_analytics.charts._theme import AnyChart

__all__ = [
    "concurrency_chart",
    "concurrency_series",
    "critical_path_chart",
    "critical_path_segments",
    "flow_duration_chart",
    "landing_time_chart",
    "landing_times",
]


def flow_duration_chart(
    flow_run_states: Any,
    *,
    every: str | None = None,
    by: str | Sequence[str] = "deployment_name",
    top: int = 6,
) -> AnyChart:
    """Chart each deployment's flow-run duration over time, beside its median.

    The duration is the flow run's time in RUNNING-type states
    (``duration_trend`` on flow-run states); p50 per bucket as a line, p95
    as diamonds, the median over all runs as a dashed rule.

    Args:
        flow_run_states: flow-run states of any engine.
        every: the bucket width (``"1h"``, ``"1d"``); default: about 40 buckets
            over the data's span.
        by: the grouping column (``deployment_name``, ``flow_name``, ``work_pool_name``).
        top: how many groups to draw (the longest medians).

    Examples:
        >>> from trs_analytics.testing import generate_flow_run_states
        >>> chart = flow_duration_chart(generate_flow_run_states(400, seed=1))
        >>> chart.to_dict()["facet"]["field"]
        'deployment_name'
    """
    by = one_group(by)
    if every is None:
        every = auto_every(time_span(flow_run_states), buckets=40)
    trend = to_polars(duration_trend(flow_run_states, every=every, by=by))
    return duration_trend_chart(
        trend, by=by, top=top, title=f"Flow-run duration per {by.replace('_', ' ')} over time"
    )


def landing_times(
    flow_run_states: Any, *, by: str | Sequence[str] = "deployment_name"
) -> pl.DataFrame:
    """The finished runs' landing times in seconds, what :func:`landing_time_chart` draws.

    Examples:
        >>> from trs_analytics.testing import generate_flow_run_states
        >>> landing_times(generate_flow_run_states(400, seed=1)).columns
        ['deployment_name', 'scheduled_time', 'final_type', 'landing_s', 'landing_label']
    """
    by = one_group(by)
    frame = to_polars(landing_time(flow_run_states))
    return frame.filter(pl.col("landing_time").is_not_null()).select(
        by,
        "scheduled_time",
        pl.col("final_type").cast(pl.String),
        landing_s=seconds("landing_time"),
        landing_label=human(seconds("landing_time")),
    )


def landing_time_chart(
    flow_run_states: Any, *, by: str | Sequence[str] = "deployment_name", top: int = 6
) -> AnyChart:
    """Chart when each run landed after its scheduled start (Airflow's "Landing Times").

    Args:
        flow_run_states: flow-run states of any engine.
        by: the grouping column.
        top: how many groups to draw (the longest median landing times).

    Examples:
        >>> from trs_analytics.testing import generate_flow_run_states
        >>> chart = landing_time_chart(generate_flow_run_states(400, seed=1))
        >>> chart.to_dict()["encoding"]["color"]["field"]
        'deployment_name'
    """
    by = one_group(by)
    data = landing_times(flow_run_states, by=by)
    # a missing group is drawn under its label: filtered out, it left a blank chart
    data = data.with_columns(pl.col(by).cast(pl.String).fill_null(missing_label(by)))
    medians = data.group_by(by).agg(pl.col("landing_s").median())
    groups = top_groups(medians, by, "landing_s", check_top(top))
    data = data.filter(pl.col(by).cast(pl.String).is_in(groups)).with_columns(
        scheduled_utc=pl.col("scheduled_time").dt.strftime("%Y-%m-%d %H:%M:%S")
    )
    chart: AnyChart = (
        alt.Chart(data)
        .mark_line(point=True, strokeWidth=1)
        .encode(
            x=alt.X(
                "scheduled_time:T",
                title="scheduled start (UTC)",
                scale=alt.Scale(type="utc"),
                axis=time_axis(time_span(data, "scheduled_time")),
            ),
            y=alt.Y("landing_s:Q", title="landed after (s)"),
            color=alt.Color(f"{by}:N", sort=groups, legend=alt.Legend(orient="top")),
            tooltip=[
                alt.Tooltip(f"{by}:N", title=by.replace("_", " ")),
                alt.Tooltip("scheduled_utc:N", title="scheduled (UTC)"),
                alt.Tooltip("landing_label:N", title="landed after"),
                alt.Tooltip("final_type:N", title="ended"),
            ],
        )
        .properties(
            title=alt.TitleParams(
                f"Landing times per {by.replace('_', ' ')}",
                subtitle="End of each finished run minus its scheduled start: how long after "
                "it was meant to start its results were there.",
            ),
            width=620,
            height=200,
        )
    )
    return chart


def critical_path_segments(states: Any, flow_run_id: str) -> pl.DataFrame:
    """One flow run's task runs as bars, flagged when on its critical path.

    Raises:
        ConfigurationError: the flow run has no task run in ``states``.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(80, seed=2)
        >>> one = states["flow_run_id"][0]
        >>> critical_path_segments(states, one)["on_path"].any()
        True
    """
    path = to_polars(critical_path(states)).filter(pl.col("flow_run_id") == flow_run_id)
    if path.is_empty():
        msg = (
            f"flow run {flow_run_id!r} has no task run in the states. "
            "Hint: pick one with trs_analytics.charts.pick_flow_run(states)."
        )
        raise ConfigurationError(msg)
    frame = to_polars(states)
    names = [c for c in ("task_run_name", "task_name") if c in frame.columns]
    runs = (
        frame.lazy()
        .filter(pl.col("flow_run_id") == flow_run_id)
        .with_columns(
            pl.lit(None, dtype=pl.String).alias(c)
            for c in ("task_run_name", "task_name")
            if c not in names
        )
        .group_by("task_run_id")
        .agg(
            pl.col("task_run_name", "task_name").first(),
            start=pl.col("timestamp").filter(pl.col("type") == "RUNNING").min(),
            first=pl.col("timestamp").min(),
            end=pl.col("timestamp").max(),
        )
        .with_columns(start=pl.col("start").fill_null(pl.col("first")))
        .collect()
    )
    steps = path.select("task_run_id", "step", "share")
    return (
        runs.join(steps, on="task_run_id", how="left")
        .with_columns(
            on_path=pl.col("step").is_not_null(),
            duration_label=human(seconds(pl.col("end") - pl.col("start"))),
        )
        .sort("start", "task_run_id")
        .drop("first")
    )


def critical_path_chart(states: Any, *, flow_run_id: str | None = None) -> AnyChart:
    """Draw a flow run's task runs on its timeline, its critical path highlighted.

    Args:
        states: task-run states of any engine.
        flow_run_id: the flow run; by default the one ``pick_flow_run`` picks.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> chart = critical_path_chart(generate_states(80, seed=2))
        >>> chart.to_dict()["mark"]["type"]
        'bar'
    """
    from trs_analytics.charts._timeline import pick_flow_run

    polars_states = to_polars(states)
    chosen = flow_run_id or pick_flow_run(polars_states)
    data = critical_path_segments(polars_states, chosen).with_columns(
        label=pl.coalesce("task_run_name", "task_name", "task_run_id"),
        path=pl.when(pl.col("on_path")).then(pl.lit("critical path")).otherwise(pl.lit("other")),
        share_pct=(pl.col("share") * 100).round(1),
    )
    chart: AnyChart = (
        alt.Chart(data)
        .mark_bar(height=10)
        .encode(
            x=alt.X("start:T", title="UTC", scale=alt.Scale(type="utc")),
            x2="end:T",
            y=alt.Y("label:N", sort=data["label"].to_list(), title=None),
            color=alt.Color(
                "path:N",
                scale=alt.Scale(
                    domain=["critical path", "other"],
                    range=[STATE_COLORS["FAILED"], NEUTRAL[1]],
                ),
                legend=alt.Legend(orient="top", title=None),
            ),
            tooltip=[
                alt.Tooltip("label:N", title="task run"),
                alt.Tooltip("duration_label:N", title="duration"),
                alt.Tooltip("step:Q", title="step on the path"),
                alt.Tooltip("share_pct:Q", title="share of the path (%)"),
            ],
        )
        .properties(
            title=alt.TitleParams(
                f"Critical path of flow run {chosen}",
                subtitle="Red: the chain of task runs that set the flow run's end-to-end "
                "time (each started after the previous one ended).",
            ),
            width=620,
            height=alt.Step(14),
        )
    )
    return chart


def concurrency_series(
    states: Any, *, by: str | Sequence[str] | None = None, limits: pl.DataFrame | None = None
) -> pl.DataFrame:
    """The step series :func:`concurrency_chart` draws, with each group's limit when known.

    ``limits`` is a frame of ``fetch_concurrency_limits`` (``tag``, ``name``,
    ``limit``): with ``by="tags"`` a group's limit is the limit on that tag;
    otherwise, a limit whose ``name`` is the group.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> limits = pl.DataFrame({"tag": ["etl"], "name": ["etl"], "limit": [2]})
        >>> series = concurrency_series(generate_states(200, seed=1), by="tags", limits=limits)
        >>> series.filter(pl.col("tags") == "etl")["limit"].unique().to_list()
        [2]
    """
    by = one_group(by)
    series = to_polars(concurrency(states, by=by))
    group = by or "_all"
    if by is None:
        series = series.with_columns(_all=pl.lit("all runs"))
    series = series.with_columns(pl.col(group).cast(pl.String))
    if limits is None or limits.is_empty():
        return series.with_columns(limit=pl.lit(None, dtype=pl.Int64))
    key = "tag" if by == "tags" else "name"
    known = (
        limits.filter(pl.col(key).is_not_null())
        .group_by(key)
        .agg(pl.col("limit").min())
        .rename({key: group})
    )
    return series.join(known, on=group, how="left")


def concurrency_chart(
    states: Any,
    *,
    by: str | Sequence[str] | None = None,
    limits: pl.DataFrame | None = None,
    top: int = 6,
) -> AnyChart:
    """Draw how many runs were RUNNING over time, a step line per group, its limit beside it.

    Args:
        states: task-run or flow-run states of any engine.
        by: the grouping column (``"tags"``, ``"work_pool_name"``,
            ``"deployment_name"``...), ``None`` for all runs.
        limits: optional, the frame of ``fetch_concurrency_limits``; a
            group's limit is drawn as a dashed rule.
        top: how many groups to draw (the highest peaks).

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> chart = concurrency_chart(generate_states(200, seed=1), by="tags", top=2)
        >>> chart.to_dict()["facet"]["row"]["field"]
        'tags'
    """
    by = one_group(by)
    group = by or "_all"
    series = concurrency_series(states, by=by, limits=limits)
    peaks = series.group_by(group).agg(pl.col("running").max())
    groups = top_groups(peaks, group, "running", check_top(top))
    data = series.filter(pl.col(group).is_in(groups)).with_columns(
        time_utc=pl.col("timestamp").dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    )
    x = alt.X(
        "timestamp:T",
        title="UTC",
        scale=alt.Scale(type="utc"),
        axis=time_axis(time_span(data, "timestamp")),
    )
    steps = (
        alt.Chart()
        .mark_line(interpolate="step-after", color=STATE_COLORS["RUNNING"])
        .encode(
            x=x,
            y=alt.Y("running:Q", title="runs running"),
            tooltip=[
                alt.Tooltip("time_utc:N", title="from (UTC)"),
                alt.Tooltip("running:Q", title="running"),
                alt.Tooltip("limit:Q", title="limit"),
            ],
        )
    )
    limit = (
        alt.Chart()
        .mark_rule(color=STATE_COLORS["FAILED"], strokeDash=[4, 3])
        .encode(y="limit:Q", tooltip=[alt.Tooltip("limit:Q", title="concurrency limit")])
    )
    title = "Runs RUNNING over time" + (f" per {by.replace('_', ' ')}" if by else "")
    chart: AnyChart = (
        alt.layer(steps, limit, data=data)
        .properties(width=620, height=90)
        .facet(row=alt.Row(f"{group}:N", sort=groups, title=None))
        .properties(
            title=alt.TitleParams(
                title,
                subtitle="+1 when a run enters a RUNNING-type state, -1 when it leaves it. "
                "Dashed red: the concurrency limit, where the server has one.",
            )
        )
    )
    return chart

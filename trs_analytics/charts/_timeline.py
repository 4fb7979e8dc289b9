"""A Gantt chart of one flow run: a bar per state of each task run, one per attempt."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import altair as alt
import narwhals as nw
import polars as pl

from trs_analytics.charts._common import check_top, human, seconds
from trs_analytics.charts._theme import state_scale
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.metrics import state_intervals, to_polars
from trs_analytics.metrics._frames import lazy
from trs_analytics.schema import TERMINAL_TYPES, StateType, require_columns

if TYPE_CHECKING:
    from trs_analytics.charts._theme import AnyChart

__all__ = [
    "draw_timeline",
    "flow_run_segments",
    "one_flow_run",
    "pick_flow_run",
    "timeline_chart",
]

#: The timeline draws task runs.
RUN: Final = "task_run_id"

#: The columns of one flow run's states that the timeline reads.
_COLUMNS: Final = (
    "id",
    RUN,
    "flow_run_id",
    "type",
    "name",
    "timestamp",
    "task_run_name",
    "flow_name",
    "flow_run_name",
)


def pick_flow_run(states: Any) -> str:
    """Pick the flow run worth looking at: the one with the most retries (latest on ties).

    Ranked on ``states``' engine (any): one row comes back.

    Raises:
        ConfigurationError: ``states`` has no flow run.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(100, seed=4)
        >>> pick_flow_run(states) in set(states["flow_run_id"])
        True
    """
    require_columns(states, ["flow_run_id"], caller="pick_flow_run")
    running = (nw.col("type").cast(nw.String()) == "RUNNING").cast(nw.Int64())
    ranked = (
        lazy(states, caller="pick_flow_run")
        .filter(~nw.col("flow_run_id").is_null())
        .group_by("flow_run_id")
        .agg(retries=running.sum() - nw.col(RUN).n_unique(), start=nw.col("timestamp").min())
        .sort("retries", "start", "flow_run_id", descending=True)
        .head(1)
    )
    top = to_polars(ranked.to_native())
    if top.is_empty():
        msg = "the states frame has no flow run. Hint: check that 'flow_run_id' is filled in."
        raise ConfigurationError(msg)
    return str(top["flow_run_id"][0])


def one_flow_run(states: Any, flow_run_id: str) -> pl.DataFrame:
    """The states of one flow run, filtered on ``states``' engine (any) and brought to Polars.

    Only the columns a timeline reads come back; ``type`` is the contract's Enum.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(100, seed=4)
        >>> one = one_flow_run(states, pick_flow_run(states))
        >>> one["flow_run_id"].n_unique(), one.height < states.height
        (1, True)
    """
    require_columns(states, ["flow_run_id"], caller="one_flow_run")
    frame = lazy(states, caller="one_flow_run")
    present = [c for c in _COLUMNS if c in frame.collect_schema().names()]
    one = to_polars(frame.filter(nw.col("flow_run_id") == flow_run_id).select(present).to_native())
    return one.with_columns(pl.col("type").cast(pl.String).cast(StateType))


def flow_run_segments(states: Any, flow_run_id: str) -> pl.DataFrame:
    """Cut one flow run's task runs into state segments: each state until the next one.

    Args:
        states: a states frame of any engine (the flow run's states are
            filtered there, :func:`one_flow_run`, and cut in Polars).
        flow_run_id: the flow run to draw.

    Returns:
        One row per state: ``task_run_id``, ``task_run`` (its name, else its
        id), ``type`` (as text), ``name``, ``attempt`` (1 for the first
        RUNNING state and what precedes it, 2 from the first retry on...),
        ``start``, ``end`` (the next state's timestamp; null for a run's
        last state), ``seconds``, ``label`` and ``terminal``.

    Raises:
        ConfigurationError: the flow run has no states in ``states``.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a"] * 5, "flow_run_id": ["f"] * 5,
        ...     "type": ["PENDING", "RUNNING", "SCHEDULED", "RUNNING", "COMPLETED"],
        ...     "name": ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"],
        ...     "timestamp": [t(0), t(2), t(5), t(9), t(10)],
        ... })
        >>> flow_run_segments(states, "f").select("name", "attempt", "seconds").rows()
        [('Pending', 1, 2.0), ('Running', 1, 3.0), ('AwaitingRetry', 1, 4.0), ('Retrying', 2, 1.0), ('Completed', 2, None)]
    """
    require_columns(states, ["flow_run_id"], caller="flow_run_segments")
    if isinstance(states, pl.DataFrame | pl.LazyFrame):
        one = states.lazy().filter(pl.col("flow_run_id") == flow_run_id)
    else:
        one = one_flow_run(states, flow_run_id).lazy()
    name = pl.col("task_run_name") if "task_run_name" in one.collect_schema() else pl.lit(None)
    intervals = state_intervals(one)
    assert isinstance(intervals, pl.LazyFrame)
    segments = (
        intervals.with_columns(
            task_run=pl.coalesce(name.cast(pl.String), pl.col(RUN)),
            start=pl.col("start_time"),
            end=pl.col("end_time"),
            terminal=pl.col("type").is_in(TERMINAL_TYPES),
            seconds=seconds(pl.col("duration")),
        )
        .select(
            RUN,
            "task_run",
            pl.col("type").cast(pl.String),
            "name",
            "attempt",
            "start",
            "end",
            "seconds",
            label=pl.coalesce(human("seconds"), pl.lit("")),
            terminal="terminal",
        )
        .collect()
    )
    if segments.is_empty():
        msg = (
            f"flow run {flow_run_id!r} has no states in this frame. Hint: pick one from "
            "states['flow_run_id'].unique(), or call pick_flow_run(states)."
        )
        raise ConfigurationError(msg)
    return segments


def timeline_chart(
    states: Any,
    flow_run_id: str | None = None,
    *,
    title: str | None = None,
    max_rows: int = 40,
) -> AnyChart:
    """Draw one flow run as a Gantt chart: a row per task run, a bar per state.

    Each RUNNING bar is one attempt (Running, then Retrying...); the orange
    bars between them are the waits before a retry (AwaitingRetry), grey the
    time pending. A run's last state is a marker in its state's colour
    (a terminal state has no duration).

    Args:
        states: a states frame of any engine.
        flow_run_id: the flow run to draw; default: :func:`pick_flow_run`.
        title: the chart title (default: the flow and flow run names).
        max_rows: the most task runs drawn, so that a large flow run stays
            readable: the runs with the most attempts, then the earliest;
            the subtitle says how many are left out.

    Returns:
        A layered Altair chart with one row of data per state of the flow run.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(80, seed=5)
        >>> spec = timeline_chart(states).to_dict()
        >>> [layer["mark"]["type"] for layer in spec["layer"]]
        ['bar', 'point']
        >>> spec["layer"][0]["encoding"]["color"]["field"]
        'type'
    """
    run_id = flow_run_id if flow_run_id is not None else pick_flow_run(states)
    one = one_flow_run(states, run_id)
    data = flow_run_segments(one, run_id)
    return draw_timeline(data, run_id, title=title or _flow_title(one, run_id), max_rows=max_rows)


def draw_timeline(
    data: pl.DataFrame, flow_run_id: str, *, title: str = "Flow run timeline", max_rows: int = 40
) -> AnyChart:
    """Draw :func:`flow_run_segments`' rows as :func:`timeline_chart` does.

    Examples:
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(80, seed=5)
        >>> run = pick_flow_run(states)
        >>> len(draw_timeline(flow_run_segments(states, run), run).layer)
        2
    """
    run_id = flow_run_id
    rows, hidden = _rows(data, max_rows)
    data = data.filter(pl.col(RUN).is_in(rows[RUN].implode()))
    # rows are keyed by id (names collide: Prefect's 3-character suffixes repeat) and
    # labelled by name through a lookup table in the axis' label expression
    names = dict(zip(rows[RUN].to_list(), rows["task_run"].to_list(), strict=True))
    y = alt.Y(
        f"{RUN}:N",
        sort=rows[RUN].to_list(),
        title=None,
        axis=alt.Axis(labelLimit=220, labelExpr=f"{json.dumps(names)}[datum.value]"),
    )
    types = data["type"].unique().to_list()
    color = alt.Color(
        "type:N", title="state", scale=state_scale(types), legend=alt.Legend(orient="top")
    )
    tooltip = [
        alt.Tooltip("task_run:N", title="task run"),
        alt.Tooltip("name:N", title="state"),
        alt.Tooltip("type:N", title="type"),
        alt.Tooltip("attempt:Q", title="attempt"),
        alt.Tooltip("from_utc:N", title="from (UTC)"),
        alt.Tooltip("to_utc:N", title="to (UTC)"),
        alt.Tooltip("label:N", title="lasted"),
    ]
    origin, unit, data = _offsets(data)
    x = alt.X(
        "x0:Q",
        title=f"{unit} since the flow run's first task-run state ({origin:%Y-%m-%d %H:%M:%S} UTC)",
        axis=alt.Axis(labelAngle=0, tickCount=8),
        scale=alt.Scale(nice=False, zero=True),
    )
    bars = (
        alt.Chart()
        .transform_filter("isValid(datum.end)")
        .mark_bar(height={"band": 0.65}, stroke="white", strokeWidth=1, cornerRadius=2)
        .encode(x=x, x2="x1:Q", y=y, color=color, tooltip=tooltip)
    )
    ends = (
        alt.Chart()
        .transform_filter("!isValid(datum.end)")
        .mark_point(
            shape="diamond", filled=True, size=110, opacity=1, stroke="white", strokeWidth=1
        )
        .encode(x=x, y=y, color=color, tooltip=tooltip)
    )
    return alt.layer(bars, ends, data=data).properties(
        title=alt.TitleParams(
            title,
            subtitle=[
                "One row per task run. Blue bars: attempts; orange: waiting (scheduled, "
                "awaiting retry); grey: pending; diamonds: final states.",
                f"Flow run {run_id}."
                + (f" {hidden} more task runs not shown (max_rows={max_rows})." if hidden else ""),
            ],
        ),
        width=620,
        height=alt.Step(24),
    )


def _offsets(data: pl.DataFrame) -> tuple[datetime, str, pl.DataFrame]:
    """Add ``x0``/``x1`` (time since the first state, in a unit fit for the span) and text times.

    Numbers, not timestamps: a flow run of a second needs sub-millisecond positions, which
    a browser's date parsing would round.

    Examples:
        >>> from datetime import UTC, datetime, timedelta
        >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
        >>> data = pl.DataFrame({"start": [t0, t0 + timedelta(minutes=3)],
        ...                      "end": [t0 + timedelta(minutes=3), None]})
        >>> origin, unit, out = _offsets(data)
        >>> unit, out["x0"].to_list(), out["x1"].to_list(), out["to_utc"].to_list()
        ('minutes', [0.0, 3.0], [3.0, None], ['00:03:00.000', None])
    """
    origin = data["start"].min()
    assert isinstance(origin, datetime)
    ends = pl.max_horizontal(pl.col("start"), pl.col("end"))
    span = data.select(seconds(ends.max() - pl.col("start").min())).item() or 0.0
    unit, size = ("seconds", 1.0) if span < 120 else ("minutes", 60.0)
    if span >= 7200:
        unit, size = "hours", 3600.0
    since = seconds(pl.col("start") - origin) / size
    until = seconds(pl.col("end") - origin) / size
    out = data.with_columns(
        x0=since,
        x1=until,
        from_utc=pl.col("start").dt.strftime("%H:%M:%S%.3f"),
        to_utc=pl.col("end").dt.strftime("%H:%M:%S%.3f"),
    )
    return origin, unit, out


def _flow_title(states: pl.DataFrame, flow_run_id: str) -> str:
    names = [c for c in ("flow_name", "flow_run_name") if c in states.lazy().collect_schema()]
    if not names:
        return "Flow run timeline"
    row = (
        states.lazy()
        .filter(pl.col("flow_run_id") == flow_run_id)
        .select(pl.col(names).drop_nulls().first())
        .collect()
        .row(0, named=True)
    )
    parts = [str(row[c]) for c in names if row[c] is not None]
    return " / ".join(parts) + " — timeline" if parts else "Flow run timeline"


def _rows(data: pl.DataFrame, max_rows: int) -> tuple[pl.DataFrame, int]:
    """Pick the task runs drawn (most attempts first, then earliest) in start order.

    Returns them (``task_run_id``, ``task_run`` name) and how many were left out.
    """
    check_top(max_rows)
    runs = data.group_by(RUN).agg(
        pl.col("task_run").first(), start=pl.col("start").min(), attempts=pl.col("attempt").max()
    )
    kept = runs.sort(["attempts", "start", RUN], descending=[True, False, False]).head(max_rows)
    return kept.sort("start", RUN).select(RUN, "task_run"), runs.height - kept.height

"""Helpers the chart modules share: seconds, readable durations, bucket widths, top groups."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, overload

import altair as alt
import narwhals as nw
import polars as pl

from trs_analytics._format import auto_every, axis_time_format, duration_expr, seconds
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.metrics import as_list, to_polars
from trs_analytics.metrics._frames import lazy

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "auto_every",
    "check_top",
    "human",
    "log_seconds",
    "one_group",
    "seconds",
    "time_axis",
    "time_bounds",
    "time_span",
    "top_groups",
]


@overload
def one_group(by: str | Sequence[str]) -> str: ...
@overload
def one_group(by: None) -> None: ...
@overload
def one_group(by: str | Sequence[str] | None) -> str | None: ...
def one_group(by: str | Sequence[str] | None) -> str | None:
    """The one column a chart groups by: ``by`` as a name, a sequence of one name, or ``None``.

    A chart draws one group per colour or row, so a sequence of several names is
    refused (the metrics take several).

    Raises:
        ConfigurationError: ``by`` names more than one column.

    Examples:
        >>> one_group("task_name"), one_group(["task_name"]), one_group(None)
        ('task_name', 'task_name', None)
        >>> one_group(["flow_name", "task_name"])
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: by=['flow_name', 'task_name'] names 2 columns; a chart draws one group column. Hint: chart one of them, or add a column that joins them (pl.concat_str) and pass its name.
    """
    if by is None:
        return None
    keys = as_list(by)
    if len(keys) != 1:
        msg = (
            f"by={keys!r} names {len(keys)} columns; a chart draws one group column. Hint: "
            "chart one of them, or add a column that joins them (pl.concat_str) and pass its name."
        )
        raise ConfigurationError(msg)
    return keys[0]


def human(column: str | pl.Expr) -> pl.Expr:
    """Format float seconds as readable text (:func:`trs_analytics._format.duration_text`).

    Examples:
        >>> pl.DataFrame({"s": [0.0005, 0.25, 4.24, 185.0, 7500.0, None]}).select(
        ...     human("s"))["s"].to_list()
        ['0.5 ms', '250 ms', '4.2 s', '3 min 5 s', '2 h 5 min', None]
    """
    return duration_expr(pl.col(column) if isinstance(column, str) else column)


def time_bounds(frame: Any, column: str = "timestamp") -> tuple[datetime, datetime] | None:
    """Return the first and last value of a time column of any engine's frame (``None``: no rows).

    Examples:
        >>> from datetime import UTC, datetime
        >>> t = [datetime(2026, 1, d, tzinfo=UTC) for d in (3, 1)]
        >>> [d.day for d in time_bounds(pl.DataFrame({"timestamp": t}))]
        [1, 3]
    """
    frame = lazy(frame, caller="time_bounds")
    ends = frame.select(first=nw.col(column).min(), last=nw.col(column).max())
    first, last = to_polars(ends.to_native()).row(0)
    if isinstance(first, datetime) and isinstance(last, datetime):
        return first, last
    return None


def time_span(frame: Any, column: str = "timestamp") -> timedelta | None:
    """Return the span of a time column (last minus first) of any engine's frame; ``None``
    for no rows."""
    bounds = time_bounds(frame, column)
    return None if bounds is None else bounds[1] - bounds[0]


def time_axis(span: timedelta | None, **axis: Any) -> Any:
    """An ``alt.X`` time axis in UTC, labelled for ``span`` (no date on every tick of one day)."""
    return alt.Axis(format=axis_time_format(span), labelAngle=0, **axis)


def check_top(top: int) -> int:
    """Refuse a ``top`` that is not a positive number of groups."""
    if top < 1:
        msg = f"top={top} must be at least 1. Hint: top is how many groups the chart shows."
        raise ConfigurationError(msg)
    return top


def top_groups(frame: pl.DataFrame, key: str, score: str, top: int) -> list[str]:
    """Return, as text, the ``top`` values of ``key`` with the highest ``score`` (ties by key).

    Null groups are left out. Filter with ``pl.col(key).cast(pl.String).is_in(...)``.
    """
    ranked = frame.filter(pl.col(key).is_not_null()).sort(
        [score, key], descending=[True, False], nulls_last=True
    )
    return ranked[key].cast(pl.String).head(top).to_list()


#: Ticks of a logarithmic seconds axis, with their labels.
_LOG_TICKS: Final = (
    (0.001, "1 ms"),
    (0.01, "10 ms"),
    (0.1, "100 ms"),
    (1.0, "1 s"),
    (10.0, "10 s"),
    (60.0, "1 min"),
    (600.0, "10 min"),
    (3600.0, "1 h"),
    (36000.0, "10 h"),
    (86400.0, "1 d"),
    (864000.0, "10 d"),
)


def log_seconds(low: float | None, high: float | None, title: str) -> tuple[Any, Any]:
    """Return a log ``alt.Scale`` and ``alt.Axis`` for seconds from ``low`` to ``high``.

    Ticks sit at readable durations (1 ms, 1 s, 1 min, 1 h...) and the domain
    starts and ends on a tick, so no box is cut off.

    Examples:
        >>> scale, axis = log_seconds(0.5, 90.0, "Run time")
        >>> scale.domain, axis.values
        ([0.1, 600.0], [0.1, 1.0, 10.0, 60.0, 600.0])
    """
    ticks = [v for v, _ in _LOG_TICKS]
    lo = max([v for v in ticks if low is not None and v <= low] or [ticks[0]])
    hi = min([v for v in ticks if high is not None and v >= high] or [ticks[-1]])
    values = [v for v in ticks if lo <= v <= hi]
    labels = " : ".join(f"datum.value == {v} ? '{text}'" for v, text in _LOG_TICKS)
    scale = alt.Scale(type="log", domain=[lo, hi], clamp=True)
    axis = alt.Axis(values=values, labelExpr=f"{labels} : ''", title=title, grid=True)
    return scale, axis

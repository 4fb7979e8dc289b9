"""Shared plumbing of the metrics: input checks, the run timeline, selectors.

Every metric starts from :func:`timeline`, which turns a states frame into
one clean, ordered history per task run:

1. the required columns are checked (:func:`trs_analytics.schema.require_columns`);
2. ``type`` is cast to the contract's Enum and ``timestamp`` to UTC microseconds
   (a naive ``timestamp`` is refused: its time zone is unknown);
3. duplicated states are dropped: rows with the same ``id`` (when the frame has
   an ``id`` column), otherwise rows with the same ``type``, ``name`` and
   ``timestamp`` within a task run;
4. each run's states are ordered by ``timestamp``, ties broken by the state
   type's lifecycle order and then by ``id``;
5. states without a ``task_run_id`` (they belong to no run) or without a
   ``timestamp`` (they cannot be placed) are dropped.

The timeline also has helper columns: ``_run`` (an integer per run, in
``task_run_id`` order), ``_first`` and ``_last`` (the run's first/last state).

Everything here builds lazy expressions; nothing is collected.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Final, TypeVar

import polars as pl

from trs_analytics.exceptions import ConfigurationError, SchemaError
from trs_analytics.schema import (
    REQUIRED_METRIC_COLUMNS,
    STATE_TYPES,
    TERMINAL_TYPES,
    UTC_US,
    StateType,
    require_columns,
)

__all__ = [
    "ANY",
    "RUN",
    "RUN_COLUMNS",
    "TERMINAL",
    "Frame",
    "Selector",
    "as_list",
    "carried",
    "cum_in_run",
    "explode_tags",
    "join_run_columns",
    "like",
    "match",
    "next_in_run",
    "parse_every",
    "timeline",
    "total_in_run",
    "with_run_columns",
]

#: A metric returns the kind of frame it was given.
Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

#: A state selector: a state type (``"RUNNING"``), a state name (``"AwaitingRetry"``),
#: ``"TERMINAL"``, ``"*"``, a collection of those, or a boolean expression.
Selector = str | Collection[str] | pl.Expr

#: Selector token matching every state.
ANY: Final = "*"

#: Selector token matching the four terminal state types.
TERMINAL: Final = "TERMINAL"

#: The column that identifies a task run.
RUN: Final = "task_run_id"

#: Per-run attributes carried from the states into the metric outputs, when present.
RUN_COLUMNS: Final = (
    "flow_run_id",
    "task_run_name",
    "task_key",
    "task_name",
    "dynamic_key",
    "tags",
    "expected_start_time",
    "flow_run_name",
    "flow_name",
    "deployment_id",
    "work_pool_name",
)


def as_list(value: str | Sequence[str] | None) -> list[str]:
    """Turn ``None``, one name or a sequence of names into a list of names."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def like(template: Frame, result: pl.LazyFrame) -> Frame:
    """Return ``result`` as the kind of frame ``template`` is (collect only for a DataFrame)."""
    if isinstance(template, pl.DataFrame):
        return result.collect()
    return result


def _schema(frame: pl.DataFrame | pl.LazyFrame) -> pl.Schema:
    return frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema


def carried(frame: pl.DataFrame | pl.LazyFrame, extra: Sequence[str] = ()) -> list[str]:
    """Name the per-run columns of ``frame`` that metric outputs carry through.

    Args:
        frame: the states frame.
        extra: more columns to carry (for example a ``by`` column); they must exist.
    """
    names = _schema(frame).names()
    out: list[str] = [c for c in RUN_COLUMNS if c in names]
    out += [c for c in extra if c not in out and c not in (RUN, "type", "name", "timestamp")]
    return out


def _utc_timestamp(dtype: pl.DataType, caller: str) -> pl.Expr:
    if not isinstance(dtype, pl.Datetime):
        msg = (
            f"{caller}() needs column 'timestamp' of type Datetime, found {dtype}. "
            "Hint: parse it with pl.col('timestamp').str.to_datetime(time_zone='UTC')."
        )
        raise SchemaError(msg)
    if dtype.time_zone is None:
        msg = (
            f"{caller}() needs a time-zone-aware 'timestamp', found {dtype} without a "
            "time zone. Hint: if the values are UTC, use "
            "pl.col('timestamp').dt.replace_time_zone('UTC')."
        )
        raise SchemaError(msg)
    return pl.col("timestamp").dt.convert_time_zone("UTC").cast(UTC_US)


def timeline(
    frame: pl.DataFrame | pl.LazyFrame, *, caller: str, needs: Sequence[str] = ()
) -> pl.LazyFrame:
    """Return the de-duplicated states of ``frame``, ordered per task run, as a LazyFrame.

    Args:
        frame: a states frame.
        caller: the public function's name, for error messages.
        needs: columns needed beyond :data:`REQUIRED_METRIC_COLUMNS`.

    Raises:
        SchemaError: a required column is missing, or ``timestamp`` is not a
            time-zone-aware Datetime.
    """
    require_columns(frame, [*REQUIRED_METRIC_COLUMNS, *needs], caller=caller)
    schema = _schema(frame)
    ts = _utc_timestamp(schema["timestamp"], caller)
    lf = frame.lazy().with_columns(ts, pl.col("type").cast(StateType))
    lf = lf.filter(pl.col(RUN).is_not_null() & pl.col("timestamp").is_not_null())
    has_id = "id" in schema.names()
    # ties of one run at one instant: lifecycle order, then id (or name without ids);
    # a string key costs a third of the sort, so name is not added when id decides
    tie = "id" if has_id else "name"
    lf = lf.sort([RUN, "timestamp", pl.col("type").to_physical(), tie], nulls_last=True)
    same_run = pl.col(RUN) == pl.col(RUN).shift(1)
    if has_id:
        duplicate = same_run & (pl.col("id") == pl.col("id").shift(1))
    else:
        duplicate = same_run & pl.all_horizontal(
            pl.col(c).eq_missing(pl.col(c).shift(1)) for c in ("timestamp", "type", "name")
        )
    lf = lf.filter(~duplicate.fill_null(value=False))
    return lf.with_columns(
        _first=pl.col(RUN).ne_missing(pl.col(RUN).shift(1)),
        _last=pl.col(RUN).ne_missing(pl.col(RUN).shift(-1)),
    ).with_columns(_run=pl.col("_first").cast(pl.UInt32).cum_sum())


def with_run_columns(tl: pl.LazyFrame, agg: pl.LazyFrame, carry: Sequence[str]) -> pl.LazyFrame:
    """Put ``task_run_id`` and the ``carry`` columns beside ``agg``, one row per run.

    ``agg`` must have exactly one row for every run of the timeline ``tl``,
    keyed by ``_run`` (as a ``group_by("_run")`` over ``tl`` gives). Placing
    the run's first row beside it is several times faster than carrying
    strings through the ``group_by`` or joining them back. The result is
    ordered by ``_run``, that is by ``task_run_id``.
    """
    firsts = tl.filter(pl.col("_first")).select(RUN, *carry)
    return pl.concat([firsts, agg.sort("_run")], how="horizontal")


def join_run_columns(tl: pl.LazyFrame, agg: pl.LazyFrame, carry: Sequence[str]) -> pl.LazyFrame:
    """Like :func:`with_run_columns` for an ``agg`` with any number of rows per ``_run``.

    The result keeps ``agg``'s order.
    """
    firsts = tl.filter(pl.col("_first")).select("_run", RUN, *carry)
    return agg.join(firsts, on="_run", how="left", maintain_order="left")


def next_in_run(mask: pl.Expr, value: pl.Expr) -> pl.Expr:
    """``value`` at the first *later* row of the same run where ``mask`` holds, else null.

    Works on a :func:`timeline` (rows of a run are contiguous and ordered)
    with global shifts and fills, which are much faster than ``.over()``
    with millions of runs.
    """
    position = pl.int_range(pl.len(), dtype=pl.UInt32)
    target = pl.when(mask).then(position).shift(-1).backward_fill()
    owner = pl.col("_run").gather(target)
    return pl.when(owner == pl.col("_run")).then(value.gather(target))


def cum_in_run(x: pl.Expr) -> pl.Expr:
    """Cumulative sum of ``x`` within each run of a :func:`timeline` (this row included)."""
    total = x.cum_sum()
    return total - pl.when(pl.col("_first")).then(total - x).forward_fill()


def total_in_run(x: pl.Expr) -> pl.Expr:
    """Sum of ``x`` over each run of a :func:`timeline`, on every row of the run."""
    return pl.when(pl.col("_last")).then(cum_in_run(x)).backward_fill()


def _token(token: str) -> pl.Expr:
    if token == ANY:
        return pl.lit(value=True)
    if token == TERMINAL:
        return pl.col("type").is_in(TERMINAL_TYPES)
    if token in STATE_TYPES:
        return pl.col("type") == token
    return pl.col("name") == token


def match(selector: Selector, *, argument: str) -> pl.Expr:
    """Build the boolean expression that picks the states ``selector`` names.

    A string is a state type when it is one of the nine upper-case types
    (``"RUNNING"``), all terminal types for ``"TERMINAL"``, every state for
    ``"*"``, and otherwise an exact state name (``"AwaitingRetry"``). A
    collection matches any of its members; an expression is used as it is.

    Raises:
        ConfigurationError: ``selector`` is an empty collection or not a selector.

    Examples:
        >>> import polars as pl
        >>> states = pl.DataFrame({"type": ["PENDING", "RUNNING"], "name": ["Pending", "Retrying"]})
        >>> states.select(m=match(["PENDING", "Retrying"], argument="start"))["m"].to_list()
        [True, True]
    """
    if isinstance(selector, pl.Expr):
        return selector
    tokens: list[object] = [selector] if isinstance(selector, str) else []
    if isinstance(selector, Collection) and not isinstance(selector, str):
        tokens = list(selector)
    if not tokens or not all(isinstance(t, str) for t in tokens):
        msg = (
            f"{argument}= must name at least one state type or state name, got {selector!r}. "
            f"Hint: use a type such as 'RUNNING', a name such as 'AwaitingRetry', "
            f"'{TERMINAL}', '{ANY}', a list of them, or a boolean pl.Expr."
        )
        raise ConfigurationError(msg)
    return pl.any_horizontal(_token(str(t)) for t in tokens)


def parse_every(every: str) -> str:
    """Check a bucket width such as ``"1d"`` or ``"6h"`` and return it.

    Raises:
        ConfigurationError: ``every`` is not a positive Polars duration string.
    """
    try:
        probe = pl.select(pl.lit(0).cast(UTC_US).dt.truncate(every)).item()
    except (pl.exceptions.PolarsError, ValueError, TypeError) as err:
        msg = f"every={every!r} is not a duration. Hint: use a string such as '1h', '1d' or '1w'."
        raise ConfigurationError(msg) from err
    if probe is None or every.strip().startswith(("-", "0")):
        msg = f"every={every!r} must be a positive duration. Hint: use '1h', '1d' or '1w'."
        raise ConfigurationError(msg)
    return every


def explode_tags(lf: pl.LazyFrame, by: Sequence[str]) -> pl.LazyFrame:
    """Give a run one row per tag when ``tags`` is a grouping column.

    A run with no tags gets one row whose ``tags`` is null, so it is still counted.
    """
    if "tags" not in by:
        return lf
    return lf.explode("tags", empty_as_null=True, keep_nulls=True)

"""Shared plumbing of the metrics: input checks, the run timeline, selectors.

Every metric starts from :func:`timeline`, which turns a states frame of any
engine into one clean history per task run:

1. the required columns are checked (:func:`trs_analytics.schema.require_columns`);
2. ``timestamp`` must be time-zone aware (a naive one is refused: its zone is
   unknown); it is read as integer microseconds since the epoch (``_us``), and
   ``type`` gets its lifecycle rank (``_rank``);
3. states without a ``task_run_id`` (they belong to no run) or without a
   ``timestamp`` (they cannot be placed) are dropped;
4. duplicated states are dropped: rows with the same ``id`` (rows without an
   ``id``, or frames without the column, are de-duplicated on ``task_run_id``,
   ``timestamp``, ``type`` and ``name``). This is a hash de-duplication: no sort.

A run's states are *ordered* by :data:`ORDER`: timestamp, then the type's
lifecycle rank, then name, then id. Metrics that need the order (durations
between consecutive states) use it in ``over(..., order_by=ORDER)`` windows;
metrics that don't (counts, outcomes, rates) use hash aggregates only: a run's
latest state is the maximum of the integer key ``_us * 16 + _rank``.

Everything here builds lazy narwhals expressions; nothing is computed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Final

import narwhals as nw
import polars as pl

from trs_analytics.exceptions import ConfigurationError
from trs_analytics.metrics._frames import (
    RUN_KEY,
    distinct,
    lazy,
    require_utc,
    schema_of,
    with_micros,
)
from trs_analytics.schema import (
    FAILURE_TYPES,
    REQUIRED_METRIC_COLUMNS,
    STATE_TYPES,
    TERMINAL_TYPES,
    require_columns,
    run_id_column,
)

if TYPE_CHECKING:
    from trs_analytics.metrics._frames import Frame

__all__ = [
    "ANY",
    "ORDER",
    "RANK_BITS",
    "RUN",
    "RUN_COLUMNS",
    "TERMINAL",
    "Selector",
    "as_list",
    "carried",
    "explode_tags",
    "final_names",
    "final_values",
    "group_keys",
    "is_type",
    "match",
    "outcomes",
    "timeline",
    "type_of_rank",
    "with_polars_selectors",
]

#: A state selector: a state type (``"RUNNING"``), a state name (``"AwaitingRetry"``),
#: ``"TERMINAL"``, ``"*"``, a collection of those, or a boolean expression (a
#: ``narwhals`` expression on any engine, a ``polars`` expression on Polars frames).
Selector = str | Collection[str] | nw.Expr | pl.Expr

#: Selector token matching every state.
ANY: Final = "*"

#: Selector token matching the four terminal state types.
TERMINAL: Final = "TERMINAL"

#: The timeline's run key: ``task_run_id`` of task-run states, ``flow_run_id``
#: of flow-run states (:func:`trs_analytics.schema.run_id_column`), renamed
#: so that one definition serves both; :func:`~._frames.finish` names it back.
RUN: Final = RUN_KEY

#: How a run's states are ordered: timestamp, lifecycle rank, name, id.
ORDER: Final = ("_us", "_rank", "name", "id")

#: The lifecycle rank takes the low bits of the ordering key ``_us * 16 + _rank``.
RANK_BITS: Final = 16

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
    "flow_id",
    "flow_name",
    "deployment_id",
    "deployment_name",
    "work_pool_name",
    "work_queue_name",
    "parent_task_run_id",
)

#: Timestamps among the carried columns (read as microseconds, like ``timestamp``).
_CARRIED_TIMESTAMPS: Final = ("expected_start_time",)


def as_list(value: str | Sequence[str] | None) -> list[str]:
    """Turn ``None``, one name or a sequence of names into a list of names.

    Examples:
        >>> as_list("task_name"), as_list(None), as_list(("a", "b"))
        (['task_name'], [], ['a', 'b'])
    """
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def group_keys(keys: Sequence[str]) -> list[str]:
    """The grouping columns a per-run aggregate carries (the run id itself excluded)."""
    return [k for k in dict.fromkeys(keys) if k not in (RUN, "type", "name", "timestamp")]


def carried(frame: Any, extra: Sequence[str] = ()) -> list[str]:
    """Name the per-run columns of ``frame`` that metric outputs carry through.

    Args:
        frame: the states frame (any engine).
        extra: more columns to carry (for example a ``by`` column); they must exist.
    """
    names = schema_of(frame).names()
    own = run_id_column(names)
    out: list[str] = [c for c in RUN_COLUMNS if c in names and c != own]
    out += [c for c in extra if c not in out and c not in (own, RUN, "type", "name", "timestamp")]
    return out


def _rank() -> nw.Expr:
    """The state type's position in the lifecycle (0 = SCHEDULED ... 8 = CRASHED)."""
    ranks = {t: i for i, t in enumerate(STATE_TYPES)}
    return (
        nw.col("type")
        .cast(nw.String())
        .replace_strict(ranks, default=None, return_dtype=nw.Int64())
    )


def type_of_rank(rank: nw.Expr) -> nw.Expr:
    """The state type (a string) of a lifecycle rank: the inverse of the timeline's ``_rank``."""
    expr: nw.Expr = nw.lit(None, dtype=nw.String())
    for i, name in reversed(list(enumerate(STATE_TYPES))):
        expr = nw.when(rank == i).then(nw.lit(name)).otherwise(expr)
    return expr


def is_type(*types: str) -> nw.Expr:
    """Whether a timeline row's state type is one of ``types`` (compared by rank)."""
    return nw.col("_rank").is_in([STATE_TYPES.index(t) for t in types])


def _deduplicated(lf: nw.LazyFrame[Any], *, has_id: bool) -> nw.LazyFrame[Any]:
    """Drop repeated states: by ``id``; rows without one by run, timestamp, type and name."""
    by_content = [RUN, "timestamp", "type", "name"]
    if not has_id:
        return distinct(lf, by_content)
    with_id = distinct(lf.filter(~nw.col("id").is_null()), ["id"])
    without_id = distinct(lf.filter(nw.col("id").is_null()), by_content)
    return nw.concat([with_id, without_id], how="vertical")


def timeline(states: Any, *, caller: str, needs: Sequence[str] = ()) -> nw.LazyFrame[Any]:
    """Return the de-duplicated states of ``states`` as a narwhals LazyFrame.

    Adds ``_us`` (the timestamp in microseconds since the epoch), ``_rank``
    (the type's lifecycle rank) and ``_key`` (``_us * 16 + _rank``, whose
    per-run maximum is the run's latest state). Carried timestamps
    (``expected_start_time``) are read as microseconds too.

    Args:
        states: a states frame of any supported engine.
        caller: the public function's name, for error messages.
        needs: columns needed beyond :data:`REQUIRED_METRIC_COLUMNS`.

    Raises:
        SchemaError: a required column is missing, or ``timestamp`` is not a
            time-zone-aware Datetime.
    """
    lf = lazy(states, caller=caller)
    names = lf.collect_schema().names()
    own = run_id_column(names)
    required = [own if c == "task_run_id" else c for c in REQUIRED_METRIC_COLUMNS]
    require_columns(lf, [*required, *needs], caller=caller)
    require_utc(lf, "timestamp", caller=caller)
    lf = lf.rename({own: RUN})
    lf = lf.filter(~nw.col(RUN).is_null() & ~nw.col("timestamp").is_null())
    lf = _deduplicated(lf, has_id="id" in names)
    stamps = {"_us": "timestamp"} | {f"_{c}": c for c in _CARRIED_TIMESTAMPS if c in names}
    lf = with_micros(lf, timestamps=stamps)
    carried_us = [nw.col(f"_{c}").alias(c) for c in _CARRIED_TIMESTAMPS if c in names]
    lf = lf.with_columns(*carried_us, _rank=_rank())
    if "id" not in names:
        lf = lf.with_columns(id=nw.lit(None, dtype=nw.String()))
    return lf.with_columns(_key=nw.col("_us") * RANK_BITS + nw.col("_rank"))


def outcomes(
    tl: nw.LazyFrame[Any], carry: Sequence[str], *, extra: dict[str, nw.Expr] | None = None
) -> nw.LazyFrame[Any]:
    """Aggregate a :func:`timeline` into one row per task run, with hash aggregates only.

    Columns: ``task_run_id``, the ``carry`` columns, ``attempts``,
    ``retries``, ``final_type``, ``terminal``, ``first_attempt_failed``,
    ``rescued``, ``start_time``, ``end_time`` (microseconds), in no order.
    """
    runs = (
        tl.with_columns(
            _running=is_type("RUNNING").cast(nw.Int64()),
            _failure=is_type(*FAILURE_TYPES).cast(nw.Int64()),
        )
        .group_by(RUN)
        .agg(
            *(nw.col(c).any_value() for c in carry),
            attempts=nw.col("_running").sum(),
            _failures=nw.col("_failure").sum(),
            _last_key=nw.col("_key").max(),
            start_time=nw.col("_us").min(),
            end_time=nw.col("_us").max(),
            **(extra or {}),
        )
    )
    final_rank = nw.col("_last_key") % RANK_BITS
    runs = runs.with_columns(final_type=type_of_rank(final_rank))
    final = nw.col("final_type")
    final_failed = final.is_in(FAILURE_TYPES)
    retried = nw.col("attempts") > 1
    failed_before_end = (nw.col("_failures") - final_failed.cast(nw.Int64())) > 0
    return runs.with_columns(
        retries=nw.when(retried).then(nw.col("attempts") - 1).otherwise(nw.lit(0)),
        terminal=final.is_in(TERMINAL_TYPES),
        first_attempt_failed=retried | final_failed,
        rescued=(final == "COMPLETED") & (retried | failed_before_end),
    )


def final_values(
    tl: nw.LazyFrame[Any], runs: nw.LazyFrame[Any], columns: dict[str, str]
) -> nw.LazyFrame[Any]:
    """Add columns of each run's latest state (``{"final_name": "name"}``) to :func:`outcomes`.

    The latest state is the one with the run's largest ``_key``; among states
    tied on it, the largest value (the :data:`ORDER` breaks such ties by name).
    """
    if not columns:
        return runs
    lasts = (
        tl.select(RUN, "_key", *dict.fromkeys(columns.values()))
        .join(runs.select(RUN, "_last_key"), on=RUN, how="inner")
        .filter(nw.col("_key") == nw.col("_last_key"))
        .group_by(RUN)
        .agg(*(nw.col(source).max().alias(name) for name, source in columns.items()))
    )
    return runs.join(lasts, on=RUN, how="left")


def final_names(tl: nw.LazyFrame[Any], runs: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """Add ``final_name`` (the name of each run's latest state) to :func:`outcomes`' rows."""
    return final_values(tl, runs, {"final_name": "name"})


def _token(token: str) -> nw.Expr:
    if token == ANY:
        return nw.lit(value=True)
    if token == TERMINAL:
        return is_type(*TERMINAL_TYPES)
    if token in STATE_TYPES:
        return is_type(token)
    return nw.col("name") == token


def match(selector: Selector, *, argument: str) -> nw.Expr:
    """Build the boolean expression that picks the states ``selector`` names.

    A string is a state type when it is one of the nine upper-case types
    (``"RUNNING"``), all terminal types for ``"TERMINAL"``, every state for
    ``"*"``, and otherwise an exact state name (``"AwaitingRetry"``). A
    collection matches any of its members; a narwhals expression is used as
    it is (a Polars expression is turned into a column beforehand by
    :func:`with_polars_selectors`).

    Raises:
        ConfigurationError: ``selector`` is an empty collection or not a selector.

    Examples:
        >>> import narwhals as nw
        >>> import polars as pl
        >>> states = nw.from_native(pl.DataFrame(
        ...     {"type": ["PENDING", "RUNNING"], "name": ["Pending", "Retrying"], "_rank": [1, 2]}))
        >>> states.select(m=match(["PENDING", "Retrying"], argument="start"))["m"].to_list()
        [True, True]
    """
    if isinstance(selector, nw.Expr):
        return selector
    tokens: list[object] = [selector] if isinstance(selector, str) else []
    if isinstance(selector, Collection) and not isinstance(selector, str):
        tokens = list(selector)
    if not tokens or not all(isinstance(t, str) for t in tokens):
        msg = (
            f"{argument}= must name at least one state type or state name, got {selector!r}. "
            f"Hint: use a type such as 'RUNNING', a name such as 'AwaitingRetry', "
            f"'{TERMINAL}', '{ANY}', a list of them, or a boolean expression."
        )
        raise ConfigurationError(msg)
    return nw.any_horizontal(*(_token(str(t)) for t in tokens), ignore_nulls=True)


def with_polars_selectors(
    states: Frame, selectors: dict[str, Selector], *, caller: str
) -> tuple[Frame, dict[str, Selector]]:
    """Evaluate Polars-expression selectors as columns of a Polars frame.

    A ``pl.Expr`` cannot travel through narwhals, so it is computed on the
    user's own Polars frame (as a column ``_sel_<argument>``) and the selector
    becomes that column.

    Raises:
        ConfigurationError: a ``pl.Expr`` selector on a frame of another engine.
    """
    out = dict(selectors)
    for argument, selector in selectors.items():
        if not isinstance(selector, pl.Expr):
            continue
        if not isinstance(states, pl.DataFrame | pl.LazyFrame):
            msg = (
                f"{caller}({argument}=...) got a Polars expression for a "
                f"{type(states).__name__}. Hint: write it with narwhals "
                "(import narwhals as nw; nw.col('name') == 'Retrying'), which runs on every engine."
            )
            raise ConfigurationError(msg)
        column = f"_sel_{argument}"
        states = states.with_columns(selector.alias(column))  # type: ignore[assignment]
        out[argument] = nw.col(column)
    return states, out


def explode_tags(frame: Any, by: Sequence[str]) -> Any:
    """Give a run one row per tag when ``tags`` is a grouping column.

    A run with no tags (or null tags) gets one row whose ``tags`` is null, so
    it is still counted. Takes and returns a narwhals LazyFrame or any
    engine's native frame.

    Examples:
        >>> import polars as pl
        >>> runs = pl.DataFrame({"task_run_id": ["a", "b"], "tags": [["x", "y"], []]})
        >>> explode_tags(runs, ["tags"]).rows()
        [('a', 'x'), ('a', 'y'), ('b', None)]
    """
    if "tags" not in by:
        return frame
    if isinstance(frame, nw.LazyFrame):
        return frame.explode("tags")
    return nw.from_native(frame).explode("tags").to_native()

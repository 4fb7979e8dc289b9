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
    aggregate,
    distinct,
    from_native,
    has_ordered_last,
    is_spark,
    lazy,
    require_utc,
    schema_of,
    with_first_seen,
    with_micros,
    with_rank,
)
from trs_analytics.schema import (
    EXPECTED_START,
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
    "TIME_ORDER",
    "Selector",
    "as_list",
    "attempt_count",
    "carried",
    "carried_timestamps",
    "check_level",
    "distinct_count",
    "explode_tags",
    "group_keys",
    "in_run",
    "is_type",
    "keeps_copies",
    "match",
    "narrow_windows",
    "next_us",
    "once_closed",
    "outcomes",
    "run_aggregate",
    "timeline",
    "type_of_rank",
    "with_carried",
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

#: An order that suffices for a window that reads only timestamps and types
#: from neighbouring states (the time to the next state, summed over states
#: of one type): states tied on ``_key`` have the same timestamp and type, so
#: their order cannot change such a sum, and one integer sorts faster than
#: :data:`ORDER`'s four columns. Anything that reads a neighbour's name or id
#: uses :data:`ORDER`.
TIME_ORDER: Final = ("_key",)

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
    EXPECTED_START,
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
_CARRIED_TIMESTAMPS: Final = (EXPECTED_START,)


def as_list(value: str | Sequence[str] | None) -> list[str]:
    """Turn ``None``, one name or a sequence of names into a list of names.

    Examples:
        >>> as_list("task_name"), as_list(None), as_list(("a", "b"))
        (['task_name'], [], ['a', 'b'])
    """
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def check_level(level: str) -> None:
    """Refuse a ``level`` other than ``"type"`` (state types) or ``"name"`` (state names).

    Examples:
        >>> check_level("name")
        >>> check_level("state")
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: level='state' is not 'type' or 'name'. Hint: use level='type' or level='name'.
    """
    if level not in ("type", "name"):
        msg = f"level={level!r} is not 'type' or 'name'. Hint: use level='type' or level='name'."
        raise ConfigurationError(msg)


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


def carried_timestamps(carry: Sequence[str]) -> list[str]:
    """The timestamps among the carried columns ``carry`` (for ``finish(timestamps=...)``).

    Examples:
        >>> carried_timestamps(["task_name", "expected_start_time"])
        ['expected_start_time']
    """
    return [c for c in carry if c in _CARRIED_TIMESTAMPS]


def type_of_rank(rank: nw.Expr) -> nw.Expr:
    """The state type (a string) of a lifecycle rank: the inverse of the timeline's ``_rank``."""
    expr: nw.Expr = nw.lit(None, dtype=nw.String())
    for i, name in reversed(list(enumerate(STATE_TYPES))):
        expr = nw.when(rank == i).then(nw.lit(name)).otherwise(expr)
    return expr


def is_type(*types: str) -> nw.Expr:
    """Whether a timeline row's state type is one of ``types`` (compared by rank)."""
    return nw.col("_rank").is_in([STATE_TYPES.index(t) for t in types])


def _deduplicated(lf: nw.LazyFrame[Any], *, has_id: bool, copies: bool) -> nw.LazyFrame[Any]:
    """Drop repeated states: by ``id``; rows without one by run, timestamp, type and name.

    With ``copies``, rows that have an ``id`` are all kept (see :func:`timeline`).
    """
    by_content = [RUN, "timestamp", "type", "name"]
    if not has_id:
        return distinct(lf, by_content)
    with_id = lf.filter(~nw.col("id").is_null())
    if not copies:
        with_id = distinct(with_id, ["id"])
    without_id = distinct(lf.filter(nw.col("id").is_null()), by_content)
    return nw.concat([with_id, without_id], how="vertical")


def keeps_copies(frame: nw.LazyFrame[Any]) -> bool:
    """Whether a timeline on ``frame``'s engine keeps copies when asked (``copies=True``).

    Polars and DuckDB count distinct ids in a group-by cheaply; Spark plans an
    ``Expand`` for each ``count(DISTINCT ...)``, which copies every row once
    per distinct count: its failure rates took much longer that way than
    de-duplicating first (benchmarks/results), so on Spark the
    timeline always drops copies and counts are plain sums (:func:`attempt_count`).
    """
    return not is_spark(frame.implementation)


def attempt_count(tl: nw.LazyFrame[Any]) -> nw.Expr:
    """Count a run's attempts in ``tl`` (a timeline): its RUNNING states, each state once.

    A group-by aggregate. Where the timeline keeps copies of a state
    (:func:`timeline`'s ``copies``), each counts once:

    - on a Polars LazyFrame the timeline marks the first row of each RUNNING
      state (``_attempt``, :func:`~._frames.with_first_seen`): one hash set
      of ids, where a group-by's distinct count keeps one per run: those
      sets were most of the memory of ``retry_counts`` and ``failure_rates``
      from Parquet (benchmarks/README.md, section 2);
    - on a Polars DataFrame, already in memory, and on DuckDB it is
      :func:`distinct_count`: on a DataFrame the marks cost more time than
      they save memory (the frame itself is most of the peak).

    Where the timeline cannot keep copies (Spark, :func:`keeps_copies`), a plain sum.
    """
    running = is_type("RUNNING")
    if "_attempt" in tl.collect_schema().names():
        return nw.col("_attempt").cast(nw.Int64()).sum()
    if keeps_copies(tl):
        return distinct_count(running)
    return running.cast(nw.Int64()).sum()


def distinct_count(flag: nw.Expr) -> nw.Expr:
    """Count a run's states for which ``flag`` holds, each state ``id`` once.

    An aggregate of a :func:`timeline`'s group-by that gives the same count
    whether copies of a state are still in it (``copies=True``) or not:
    distinct ids among the flagged rows that have one, plus the flagged rows
    without one (those are de-duplicated by content in every timeline). It
    is ``count(DISTINCT id) FILTER (WHERE flag)``, the aggregate a DuckDB
    expert writes; narwhals' ``n_unique`` counts the null of the rows not
    flagged as one value, which is taken off again.
    """
    has_id = ~nw.col("id").is_null()
    with_id = flag & has_id
    ids = nw.when(with_id).then(nw.col("id")).n_unique()
    others = (~with_id).cast(nw.Int64()).max()
    without_id = (flag & ~has_id).cast(nw.Int64()).sum()
    return ids - others + without_id


def timeline(
    states: Any, *, caller: str, needs: Sequence[str] = (), copies: bool = False
) -> nw.LazyFrame[Any]:
    """Return the de-duplicated states of ``states`` as a narwhals LazyFrame.

    Adds ``_us`` (the timestamp in microseconds since the epoch), ``_rank``
    (the type's lifecycle rank) and ``_key`` (``_us * 16 + _rank``, whose
    per-run maximum is the run's latest state). Carried timestamps
    (``expected_start_time``) are read as microseconds too.

    Args:
        states: a states frame of any supported engine.
        caller: the public function's name, for error messages.
        needs: columns needed beyond :data:`REQUIRED_METRIC_COLUMNS`.
        copies: keep copies of a state (rows with the same ``id``: the same
            state delivered twice, equal in run, timestamp, type and name).
            Only for metrics whose aggregates give the same answer with or
            without them, which skips the de-duplication of every id (on
            Polars the costliest step of a hash-aggregate metric): minima and
            maxima, :func:`attempt_count`, and sums of the time to the next
            state (a copy sits next to its state in the run's order, so one of
            the two lasts zero). Rows without an ``id`` are de-duplicated by
            content either way, and on Spark every row is (:func:`keeps_copies`).
            On a Polars LazyFrame the timeline then marks each RUNNING
            state's first row (``_attempt``), for :func:`attempt_count`.

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
    lf = _deduplicated(lf, has_id="id" in names, copies=copies and keeps_copies(lf))
    stamps = {"_us": "timestamp"} | {f"_{c}": c for c in _CARRIED_TIMESTAMPS if c in names}
    lf = with_micros(lf, timestamps=stamps)
    carried_us = [nw.col(f"_{c}").alias(c) for c in _CARRIED_TIMESTAMPS if c in names]
    if carried_us:
        lf = lf.with_columns(*carried_us)
    lf = with_rank(lf, "type", STATE_TYPES, name="_rank")
    if "id" not in names:
        lf = lf.with_columns(id=nw.lit(None, dtype=nw.String()))
    if copies and lf.implementation.is_polars() and not isinstance(states, pl.DataFrame):
        lf = with_first_seen(lf, flag=is_type("RUNNING"), column="id", name="_attempt")
    return lf.with_columns(_key=nw.col("_us") * RANK_BITS + nw.col("_rank"))


def in_run(expr: nw.Expr, *, order: Sequence[str] = ORDER) -> nw.Expr:
    """``expr`` evaluated along each run's ordered states (a window over the run).

    ``order`` is :data:`ORDER`, or :data:`TIME_ORDER` for a window that reads
    only timestamps and types of neighbouring states.
    """
    return expr.over(RUN, order_by=list(order))


def next_us(*, order: Sequence[str] = ORDER) -> nw.Expr:
    """When the run's next state came, in microseconds (null for its latest state).

    The time a state lasts is ``next_us() - _us``. Summed over a run's states
    of one type, it is the same whichever order states tied on ``_key`` take,
    and a copy of a state adds zero: such sums use ``order=TIME_ORDER`` (one
    integer to sort by) on a timeline that keeps copies.
    """
    return in_run(nw.col("_us").shift(-1), order=order)


#: Per-run aggregates of the time spent in flagged states, over a frame with
#: ``_flag`` and ``_next`` (the time of the run's next state): see :func:`run_aggregate`.
_SPENT: Final = {
    "_time": nw.when(nw.col("_flag")).then(nw.col("_next") - nw.col("_us")).sum(),
    "_end": nw.when(nw.col("_flag")).then(nw.col("_next")).max(),
    "_open": (nw.col("_flag") & nw.col("_next").is_null()).cast(nw.Int64()).sum(),
}


def once_closed(column: str) -> nw.Expr:
    """A ``spent`` aggregate of :func:`run_aggregate` (``_time``, ``_end``), null while
    the run is still in one of the flagged states (``_open``): not known yet."""
    return nw.when(nw.col("_open") == 0).then(nw.col(column))


def narrow_windows(frame: nw.LazyFrame[Any]) -> bool:
    """Whether windows on ``frame``'s engine should read a few columns, the rest joined.

    On DuckDB and Spark (engines for data larger than memory) a window keeps
    every column it carries until it is done, so with the run attributes in
    the window DuckDB spills every attribute of every state, many times what
    the run id and two integers cost (benchmarks/README.md, section 2b).
    There the window reads those few columns and the run attributes come
    from a hash aggregate, joined (:func:`run_aggregate`, :func:`with_carried`).
    In Polars, in memory, the join costs more time than the one pass it
    replaces.
    """
    return not frame.implementation.is_polars()


def run_aggregate(
    tl: nw.LazyFrame[Any],
    carry: Sequence[str],
    aggs: dict[str, nw.Expr],
    *,
    spent: nw.Expr | None = None,
) -> nw.LazyFrame[Any]:
    """Aggregate a :func:`timeline` by run: the ``aggs``, the ``carry`` attributes.

    With ``spent`` (a state flag), also the time the run's flagged states
    lasted: ``_time`` (the sum of :func:`next_us` ``- _us`` over them,
    microseconds; copies of a state may stay in ``tl``, a copy lasts zero),
    ``_end`` (when the last of them ended; null when there is none) and
    ``_open`` (flagged states with no next state yet: the run is still in
    one). One pass on Polars; on other engines the window runs on the run
    key and the ordering key alone and its per-run sums are joined
    (:func:`narrow_windows`).
    """
    if spent is None:
        return aggregate(tl, [RUN], carry=carry, aggs=aggs)
    flag = spent.fill_null(value=False)
    if not narrow_windows(tl):
        steps = tl.with_columns(_flag=flag, _next=next_us(order=TIME_ORDER))
        return aggregate(steps, [RUN], carry=carry, aggs={**aggs, **_SPENT})
    steps = tl.select(RUN, "_us", "_key", _flag=flag).with_columns(_next=next_us(order=TIME_ORDER))
    spans = steps.group_by(RUN).agg(**_SPENT)
    return aggregate(tl, [RUN], carry=carry, aggs=aggs).join(spans, on=RUN, how="left")


def with_carried(
    frame: nw.LazyFrame[Any], tl: nw.LazyFrame[Any], carry: Sequence[str]
) -> nw.LazyFrame[Any]:
    """Join each run's ``carry`` attributes (one row per run of ``tl``) to ``frame``.

    For metrics whose windows run on a few columns of the timeline (on the
    engines of :func:`narrow_windows`): the per-run attributes (names, tags,
    deployment...) come from a hash aggregate instead of travelling through
    the window.
    """
    if not carry:
        return frame
    attributes = aggregate(tl, [RUN], carry=carry, aggs={})
    return frame.join(attributes, on=RUN, how="left")


def outcomes(
    tl: nw.LazyFrame[Any],
    carry: Sequence[str],
    *,
    extra: dict[str, nw.Expr] | None = None,
    finals: dict[str, str] | None = None,
    spent: nw.Expr | None = None,
) -> nw.LazyFrame[Any]:
    """Aggregate a :func:`timeline` into one row per task run, with hash aggregates only.

    Columns: ``task_run_id``, the ``carry`` columns, ``attempts``,
    ``retries``, ``final_type``, ``terminal``, ``first_attempt_failed``,
    ``rescued``, ``start_time``, ``end_time`` (microseconds), the ``extra``
    aggregates, for each ``finals`` item (``{"final_name": "name"}``) the
    value of that column in the run's latest state, and with ``spent`` (a
    state flag) ``_run_us``, the time the run's flagged states lasted
    (:func:`run_aggregate`), in no order.

    The latest state is the one with the run's largest ``_key``; among states
    tied on it, the largest value (the :data:`ORDER` breaks such ties by name).
    It is an ordered aggregate (``last(order_by=...)``), computed in the same
    pass as the counts, on the engines that have one (Polars, DuckDB); on
    Spark, whose narwhals backend lacks it, the latest states are joined back.
    """
    finals = finals or {}
    ordered_last = has_ordered_last(tl)
    last = {
        name: nw.col(source).last(order_by=["_key", source])
        for name, source in finals.items()
        if ordered_last
    }
    runs = run_aggregate(
        tl,
        carry,
        {
            "attempts": attempt_count(tl),
            # any failure state: all of them came before the end when the run completed
            "_failed": is_type(*FAILURE_TYPES).cast(nw.Int64()).max(),
            "_last_key": nw.col("_key").max(),
            "start_time": nw.col("_us").min(),
            "end_time": nw.col("_us").max(),
            **last,
            **(extra or {}),
        },
        spent=spent,
    )
    if not ordered_last:
        runs = _joined_finals(tl, runs, finals)
    if spent is not None:
        runs = runs.with_columns(_run_us=nw.col("_time").fill_null(0))
    final_rank = nw.col("_last_key") % RANK_BITS
    runs = runs.with_columns(final_type=type_of_rank(final_rank))
    final = nw.col("final_type")
    final_failed = final.is_in(FAILURE_TYPES)
    retried = nw.col("attempts") > 1
    return runs.with_columns(
        retries=nw.when(retried).then(nw.col("attempts") - 1).otherwise(nw.lit(0)),
        terminal=final.is_in(TERMINAL_TYPES),
        first_attempt_failed=retried | final_failed,
        # a completed run's failure states all precede its latest state (the latest
        # key has COMPLETED's rank), so "failed before the end" is "ever failed"
        rescued=(final == "COMPLETED") & (retried | (nw.col("_failed") > 0)),
    )


def _joined_finals(
    tl: nw.LazyFrame[Any], runs: nw.LazyFrame[Any], finals: dict[str, str]
) -> nw.LazyFrame[Any]:
    """:func:`outcomes`' final values by a join of each run's latest states."""
    if not finals:
        return runs
    lasts = (
        tl.select(RUN, "_key", *dict.fromkeys(finals.values()))
        .join(runs.select(RUN, "_last_key"), on=RUN, how="inner")
        .filter(nw.col("_key") == nw.col("_last_key"))
        .group_by(RUN)
        .agg(*(nw.col(source).max().alias(name) for name, source in finals.items()))
    )
    return runs.join(lasts, on=RUN, how="left")


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


def explode_tags(frame: Any, by: str | Sequence[str] | None) -> Any:
    """Give a run one row per tag when ``tags`` is a grouping column.

    A run with no tags (or null tags) gets one row whose ``tags`` is null, so
    it is still counted. Takes and returns a narwhals LazyFrame or any
    engine's native frame.

    Examples:
        >>> import polars as pl
        >>> runs = pl.DataFrame({"task_run_id": ["a", "b"], "tags": [["x", "y"], []]})
        >>> explode_tags(runs, ["tags"]).rows()
        [('a', 'x'), ('a', 'y'), ('b', None)]
        >>> explode_tags(runs, "tags").equals(explode_tags(runs, ["tags"]))
        True
    """
    if "tags" not in as_list(by):
        return frame
    if isinstance(frame, nw.LazyFrame):
        return frame.explode("tags")
    return from_native(frame, caller="explode_tags").explode("tags").to_native()

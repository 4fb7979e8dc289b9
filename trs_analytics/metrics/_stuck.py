"""Stuck runs: runs that sit in a RUNNING- or PENDING-type state far longer than usual.

A run is *open* when its latest state is RUNNING-type (Running, Retrying) or
PENDING-type (Pending). Its *age* is ``now`` minus the time it entered that
latest state (``since``). The usual time of the same phase comes from the
group's *finished* runs (latest state terminal):

- RUNNING: the run time, summed over attempts (as :func:`run_time`);
- PENDING: the queue wait, from the run's first SCHEDULED/PENDING state to its
  first RUNNING state (as :func:`queue_wait`).

An open run is stuck when its age exceeds ``k`` times the group's
``quantile`` (p99 by default, linear interpolation) of that phase, or when it
exceeds ``limit``. The quantile comes from the first of these with at least
``min_history`` finished runs: the run's own group (its task); then each
``fallback`` group in order (its deployment's, then its flow's runs, of the
same phase); otherwise ``default`` is the bound. So a task with little
history is still watched from its first run. Everything is a hash aggregate
and one window per run (the next state's time): no sort but the final
ordering of the few flagged runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import narwhals as nw

from trs_analytics._time import micros_at
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.metrics._buckets import duration_micros
from trs_analytics.metrics._common import (
    RUN,
    as_list,
    carried,
    carried_timestamps,
    explode_tags,
    group_keys,
    is_type,
    outcomes,
)
from trs_analytics.metrics._frames import finish, group_quantiles
from trs_analytics.metrics._run_table import per_run

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime, timedelta

    from trs_analytics.metrics._frames import Frame

__all__ = ["stuck_runs"]

#: The phases an open run can be stuck in, and the state types of each.
PHASES: Final = {"RUNNING": ("RUNNING",), "PENDING": ("PENDING",)}

#: The groups whose history stands in for a group with too little, in order (when present).
FALLBACK: Final = ("deployment_id", "flow_name")


def _check(k: float, quantile: float, min_history: int) -> None:
    if not k > 0 or not 0 < quantile <= 1 or min_history < 1:
        msg = (
            f"stuck_runs() needs k > 0, 0 < quantile <= 1 and min_history >= 1, got k={k}, "
            f"quantile={quantile}, min_history={min_history}. Hint: the defaults are k=3.0, "
            "quantile=0.99, min_history=5."
        )
        raise ConfigurationError(msg)


def _per_run(tl: nw.LazyFrame[Any], keys: list[str]) -> nw.LazyFrame[Any]:
    """One row per run: outcome, latest state, run time and queue wait (microseconds)."""
    running = is_type("RUNNING")
    waiting = is_type("SCHEDULED", "PENDING")
    extra = {
        "_ran": running.cast(nw.Int64()).max(),
        "_wait_from": nw.when(waiting).then(nw.col("_us")).min(),
        "_run_from": nw.when(running).then(nw.col("_us")).min(),
    }
    return outcomes(tl, keys, extra=extra, finals={"final_name": "name"}, spent=running)


def _history(runs: nw.LazyFrame[Any], keys: list[str], quantile: float) -> nw.LazyFrame[Any]:
    """Per group: finished runs, and the quantile of their run time and queue wait."""
    finished = runs.filter(nw.col("terminal"))
    wait = nw.col("_run_from") - nw.col("_wait_from")
    finished = finished.with_columns(
        _run=nw.when(nw.col("_ran") > 0).then(nw.col("_run_us")),
        _wait=nw.when(wait >= 0).then(wait),
    )
    return group_quantiles(
        finished, keys, {"_p_run": "_run", "_p_wait": "_wait"}, quantile, count="_history"
    )


def stuck_runs(
    states: Frame,
    *,
    now: datetime | None = None,
    by: str | Sequence[str] | None = "task_name",
    k: float = 3.0,
    quantile: float = 0.99,
    limit: str | timedelta | None = None,
    min_history: int = 5,
    fallback: str | Sequence[str] | None = FALLBACK,
    default: str | timedelta | None = None,
) -> Frame:
    """Find runs stuck in a RUNNING- or PENDING-type state for far longer than usual.

    Args:
        states: a states frame of any supported engine.
        now: the time to measure ages at (time-zone aware); default: the
            current UTC time. Pass it for reproducible answers.
        by: the group whose finished runs give the usual time (``task_name``,
            ``task_key``, ``flow_name``, ``deployment_id``...); ``None`` for
            all runs together. A run counts in each of its ``tags``.
        k: how many times the group's quantile an age may reach.
        quantile: the quantile of the group's finished runs (0.99: p99).
        limit: an absolute limit on the age (``"2h"``), whatever the history;
            ``None``: none.
        min_history: finished runs a group needs before its quantile is used.
        fallback: the columns whose groups (the run's deployment, then its
            flow, by default) give the usual time, in order, when the run's
            own group has fewer than ``min_history`` finished runs; a column
            the frame lacks is skipped. ``None``: no fallback.
        default: the bound (``"30m"``) of a run none of whose groups has
            enough history; ``None``: such a run is only held to ``limit``.

    Returns:
        The kind of frame given, one row per stuck run (in each of its tags
        with ``by="tags"``), the oldest first: ``task_run_id``, the run's
        columns, the ``by`` columns, ``state_type`` (``RUNNING`` or
        ``PENDING``), ``state`` (its name), ``since`` (when it entered it),
        ``age``, ``threshold`` (the smaller of ``k`` x the quantile, or
        ``default``, and ``limit``), ``usual`` (the quantile used, null
        without enough history), ``basis`` (the column of the group it came
        from: a ``by`` column, a ``fallback`` one, or null), ``history``
        (finished runs of that group; of its own group when none had enough)
        and ``reason`` (``"k x p99"``, ``"k x p99 of flow_name"``,
        ``"default"`` or ``"limit"``: which bound it broke first).

    Raises:
        SchemaError: a required or ``by`` column is missing.
        ConfigurationError: a bad ``k``, ``quantile``, ``min_history``,
            ``limit`` or a naive ``now``.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> runs = {f"r{i}": [("Running", t(i)), ("Completed", t(i + 1))] for i in range(5)}
        >>> runs["slow"] = [("Pending", t(10)), ("Running", t(11))]
        >>> states = pl.DataFrame(
        ...     [{"task_run_id": r, "task_name": "etl", "name": n,
        ...       "type": n.upper(), "timestamp": ts} for r, h in runs.items() for n, ts in h])
        >>> ta.stuck_runs(states, now=t(20)).select(
        ...     "task_run_id", "state", "age", "threshold", "reason").rows()
        [('slow', 'Running', datetime.timedelta(seconds=9), datetime.timedelta(seconds=3), 'k x p99')]
    """
    _check(k, quantile, min_history)
    bounds = _Bounds(
        k=k,
        quantile=quantile,
        min_history=min_history,
        limit_us=None if limit is None else duration_micros(limit, argument="limit"),
        default_us=None if default is None else duration_micros(default, argument="default"),
    )
    now_us = micros_at(now)
    keys = as_list(by)
    carry = carried(states, keys)
    runs_of = per_run(
        states,
        caller="stuck_runs",
        needs=keys,
        build=lambda tl: _per_run(tl, group_keys([*carry, *keys])),
    )
    runs = explode_tags(runs_of, keys)
    phase = nw.col("final_type")
    open_runs = runs.filter(phase.is_in(list(PHASES)))
    open_runs = (
        open_runs.join(_history(runs, keys, quantile), on=keys, how="left")
        if keys
        else open_runs.join(_history(runs, keys, quantile), how="cross")
    )
    backups = [c for c in as_list(fallback) if c in carry and c not in keys]
    for i, column in enumerate(backups):
        own = _history(runs_of, [column], quantile)
        renamed = own.rename({c: f"{c}_{i}" for c in ("_history", "_p_run", "_p_wait")})
        open_runs = open_runs.join(renamed, on=column, how="left")
    bases = [(",".join(keys) or "all", ""), *((c, f"_{i}") for i, c in enumerate(backups))]
    return finish(
        _flagged(open_runs, now_us, bounds, bases, carry, keys),
        states,
        timestamps=["since", *carried_timestamps(carry)],
        durations=["age", "threshold", "usual"],
        counts=["history"],
    )


@dataclass(frozen=True)
class _Bounds:
    """The options that bound an open run's age (microseconds)."""

    k: float
    quantile: float
    min_history: int
    limit_us: int | None
    default_us: int | None


def _usual(bases: list[tuple[str, str]], min_history: int, label: str) -> dict[str, nw.Expr]:
    """The quantile, basis, history and reason of the first group with enough history.

    ``bases`` are (column, suffix of its history columns), the run's own group first.
    """
    running = nw.col("final_type") == "RUNNING"
    usual: nw.Expr = nw.lit(None, dtype=nw.Float64())
    basis: nw.Expr = nw.lit(None, dtype=nw.String())
    history: nw.Expr = nw.col("_history").fill_null(0)
    why: nw.Expr = nw.lit("default")
    for i, (column, suffix) in reversed(list(enumerate(bases))):
        enough = nw.col(f"_history{suffix}") >= min_history
        phase = nw.when(running).then(nw.col(f"_p_run{suffix}"))
        quantile = phase.otherwise(nw.col(f"_p_wait{suffix}")).cast(nw.Float64())
        usual = nw.when(enough).then(quantile).otherwise(usual)
        basis = nw.when(enough).then(nw.lit(column, dtype=nw.String())).otherwise(basis)
        history = nw.when(enough).then(nw.col(f"_history{suffix}")).otherwise(history)
        reason = nw.lit(label if i == 0 else f"{label} of {column}")
        why = nw.when(enough).then(reason).otherwise(why)
    return {"usual": usual, "basis": basis, "history": history, "_why": why}


def _flagged(
    runs: nw.LazyFrame[Any],
    now_us: int,
    bounds: _Bounds,
    bases: list[tuple[str, str]],
    carry: list[str],
    keys: list[str],
) -> nw.LazyFrame[Any]:
    """Compare each open run's age with its group's bound and the limit; keep the stuck."""
    none = nw.lit(None, dtype=nw.Float64())
    default = none if bounds.default_us is None else nw.lit(float(bounds.default_us))
    by_history = (
        nw.when(nw.col("usual").is_null()).then(default).otherwise(nw.col("usual") * bounds.k)
    )
    by_limit = none if bounds.limit_us is None else nw.lit(float(bounds.limit_us))
    label = f"k x p{bounds.quantile * 100:g}"
    history_bound, limit_bound = nw.col("_by_history"), nw.col("_by_limit")
    threshold = (
        nw.when(history_bound.is_null())
        .then(limit_bound)
        .otherwise(
            nw.when(limit_bound.is_null() | (history_bound <= limit_bound))
            .then(history_bound)
            .otherwise(limit_bound)
        )
    )
    flagged = (
        runs.with_columns(since=nw.col("end_time"), age=nw.lit(now_us) - nw.col("end_time"))
        .with_columns(**_usual(bases, bounds.min_history, label))
        .with_columns(_by_history=by_history, _by_limit=by_limit)
        .with_columns(threshold=threshold)
        .filter(nw.col("age").cast(nw.Float64()) > nw.col("threshold"))
        .with_columns(
            reason=nw.when(nw.col("_by_history") == nw.col("threshold"))
            .then(nw.col("_why"))
            .otherwise(nw.lit("limit"))
        )
    )
    columns = [RUN, *carry, *[c for c in keys if c not in carry]]
    out = (
        "state_type",
        "state",
        "since",
        "age",
        "threshold",
        "usual",
        "basis",
        "history",
        "reason",
    )
    return (
        flagged.with_columns(state_type=nw.col("final_type"), state=nw.col("final_name"))
        .select(*columns, *out)
        .sort(["age", RUN, *keys], descending=[True] + [False] * (1 + len(keys)), nulls_last=True)
    )

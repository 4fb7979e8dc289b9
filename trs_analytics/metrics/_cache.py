"""Cache hits: how often a task's runs ended ``Cached``, and the run time that saved.

A run is *cached* when its latest state is the COMPLETED-type ``Cached``
(Prefect found a valid result for its cache key and did not run it). Its
*run time* is the time spent in RUNNING-type states, every attempt included,
each lasting until the run's next state. The time saved is estimated from the
same group's *fresh* runs (finished COMPLETED, not cached) in the frame:
``cached * median fresh run time``. Everything is a hash aggregate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import narwhals as nw

from trs_analytics.metrics._common import (
    as_list,
    explode_tags,
    group_keys,
    is_type,
    next_us,
    outcomes,
)
from trs_analytics.metrics._frames import finish, quantile
from trs_analytics.metrics._runs import run_timeline
from trs_analytics.schema import TERMINAL_TYPES

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trs_analytics.metrics._frames import Frame

__all__ = ["cache_hits"]


def cache_hits(states: Frame, *, by: str | Sequence[str] | None = "task_name") -> Frame:
    """Count cached runs per task and estimate the run time the cache saved.

    Args:
        states: a task-run states frame of any supported engine (flow-run
            states work too).
        by: the grouping column(s), ``None`` for all runs together. A run
            counts once in each of its ``tags`` when ``tags`` is among them.

    Returns:
        The kind of frame given, one row per group, ordered by group: the
        ``by`` columns, ``runs`` (finished runs: latest state terminal),
        ``cached`` (latest state named ``Cached``), ``hit_share``
        (``cached / runs``), ``fresh`` (COMPLETED runs not cached),
        ``median_run_time`` (of the fresh runs; null without any) and
        ``time_saved`` (``cached * median_run_time``).

    Raises:
        SchemaError: a required or ``by`` column is missing.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda s: datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "a", "b", "b", "c", "d"],
        ...     "task_name": ["load"] * 6,
        ...     "type": ["RUNNING", "COMPLETED", "RUNNING", "COMPLETED", "COMPLETED", "COMPLETED"],
        ...     "name": ["Running", "Completed", "Running", "Completed", "Cached", "Cached"],
        ...     "timestamp": [t(0), t(4), t(0), t(6), t(1), t(2)],
        ... })
        >>> ta.cache_hits(states).select("task_name", "runs", "cached", "hit_share", "time_saved")
        shape: (1, 5)
        ┌───────────┬──────┬────────┬───────────┬──────────────┐
        │ task_name ┆ runs ┆ cached ┆ hit_share ┆ time_saved   │
        │ ---       ┆ ---  ┆ ---    ┆ ---       ┆ ---          │
        │ str       ┆ u32  ┆ u32    ┆ f64       ┆ duration[μs] │
        ╞═══════════╪══════╪════════╪═══════════╪══════════════╡
        │ load      ┆ 4    ┆ 2      ┆ 0.5       ┆ 10s          │
        └───────────┴──────┴────────┴───────────┴──────────────┘
    """
    keys = as_list(by)
    tl, _ = run_timeline(states, caller="cache_hits", needs=keys)
    running = nw.col("_next_us") - nw.col("_us")
    tl = tl.with_columns(_next_us=next_us()).with_columns(
        _run_us=nw.when(is_type("RUNNING")).then(running).otherwise(0).fill_null(0)
    )
    runs = outcomes(
        tl,
        group_keys(keys),
        extra={"_run_us": nw.col("_run_us").sum()},
        finals={"final_name": "name"},
    ).filter(nw.col("final_type").is_in(TERMINAL_TYPES))
    cached = nw.col("final_name") == "Cached"
    fresh = (nw.col("final_type") == "COMPLETED") & ~cached
    runs = explode_tags(runs, keys).with_columns(
        _cached=cached.cast(nw.Int64()),
        _fresh=fresh.cast(nw.Int64()),
        _fresh_us=nw.when(fresh).then(nw.col("_run_us")),
    )
    stats = {
        "runs": nw.len(),
        "cached": nw.col("_cached").sum(),
        "fresh": nw.col("_fresh").sum(),
        "median_run_time": quantile(nw.col("_fresh_us"), 0.5),
    }
    if keys:
        counted = runs.group_by(*keys, drop_null_keys=False).agg(**stats)
    else:
        counted = runs.select(**stats)
    # the median rounded to the microsecond as finish() rounds it, so the two columns agree
    median = (nw.col("median_run_time").round(3) + 0.5).floor()
    result = counted.with_columns(
        hit_share=nw.col("cached") / nw.col("runs"),
        median_run_time=median,
        time_saved=nw.col("cached") * median,
    ).select(*keys, "runs", "cached", "hit_share", "fresh", "median_run_time", "time_saved")
    if keys:
        result = result.sort(keys, nulls_last=True)
    return finish(
        result,
        states,
        durations=["median_run_time", "time_saved"],
        counts=["runs", "cached", "fresh"],
    )

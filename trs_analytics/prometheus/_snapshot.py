"""One refresh: the small per-group aggregates every metric family is drawn from.

:func:`compute_snapshot` runs the metric functions on the frame it is given
(Polars, DuckDB or Spark: the engine computes, only one row per group comes
back into Polars) and returns a :class:`Snapshot`. Nothing here serves or
writes: :mod:`trs_analytics.prometheus._families` turns a snapshot into
metric families, :mod:`trs_analytics.prometheus._serve` refreshes it.

Two spans are measured:

- **the whole dataset**, for the counters (``trs_task_runs_total``,
  ``trs_task_run_retries_total``) and the histograms (``_bucket``/``_sum``/
  ``_count``): they only grow as the dataset grows, so ``rate()`` works;
- **the window** ``(at - window, at]``, for the exact quantiles and the
  failure rates: the task runs with a state in it, each with its whole history
  up to ``at``. ``at`` is ``now`` when given, else the dataset's cursor (the
  time up to which its export has read everything), else its newest state:
  the window follows the data, not the wall clock, so an export that stalls
  neither empties the window nor makes every open run look stuck (the stall
  is alerted on by itself, through ``trs_dataset_cursor_timestamp_seconds``).

Series are bounded: past ``max_series`` groups, the groups with the fewest
runs (over the whole dataset) are summed into one group whose labels are all
``"(other)"``. Counts and histograms are summed; the window quantiles and
failure rates of that group are computed on its runs together.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import narwhals as nw
import polars as pl

from trs_analytics._time import EPOCH, epoch_micros, micros_at, parse_duration
from trs_analytics.check import run_check
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.metrics import (
    failure_rates,
    kept_run_table,
    lateness,
    retry_distribution,
    run_time,
    stuck_runs,
    summarize,
    to_polars,
)
from trs_analytics.metrics._frames import lazy, with_micros

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "BUCKETS",
    "FLOW_KEYS",
    "OTHER",
    "TASK_KEYS",
    "Snapshot",
    "compute_snapshot",
]

logger = logging.getLogger("trs_analytics.prometheus")

#: The labels of a task group and of a flow-run group.
TASK_KEYS: Final = ("flow_name", "task_name")
FLOW_KEYS: Final = ("flow_name", "deployment_name", "work_pool_name")

#: The label value of the groups summed together past ``max_series``.
OTHER: Final = "(other)"

#: Histogram bucket bounds in seconds: 1 ms to 1 day, about three a decade.
BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
)  # fmt: skip

#: The window quantiles published, and the summarize column of each.
QUANTILES: Final = {"0.5": "p50", "0.95": "p95", "0.99": "p99"}

_US: Final = 1_000_000


@dataclass(frozen=True)
class Snapshot:
    """What one refresh computed: small Polars frames, one row per group.

    Attributes:
        at: the window's end.
        window: the window's width.
        states: task-run states in the dataset.
        last_state: the newest task-run state's time (None: no states).
        cursor: the dataset's cursor (None: a plain Parquet file or folder).
        task_runs: ``flow_name``, ``task_name``, ``final_type``, ``runs``: finished
            task runs by final state type, over the whole dataset.
        task_retries: ``flow_name``, ``task_name``, ``retries`` of finished runs.
        task_run_time: the run-time histogram per task: ``count``, ``sum``
            (seconds) and ``le_0``... (cumulative counts at :data:`BUCKETS`).
        task_window: per task, over the window: ``p50``, ``p95``, ``p99``,
            ``measured`` (runs with a run time) and their ``total`` (seconds), ``runs`` (finished and not cancelled), ``failed``,
            ``failure_rate``, ``ci_low``, ``ci_high`` (Wilson, 95%).
        stuck: ``flow_name``, ``task_name``, ``stuck``: runs stuck at ``at``.
        findings: open findings of the check at ``at`` by kind.
        flow_runs: as ``task_runs``, by ``flow_name``, ``deployment_name``,
            ``work_pool_name``.
        flow_run_time: the flow runs' run-time histogram.
        flow_lateness: the flow runs' lateness histogram (first Running state
            minus the expected start; runs that seemingly started early are
            left out).
        folded: groups summed into ``"(other)"``: ``{"task": n, "flow": m}``.
        seconds: how long the computation took.
    """

    at: datetime
    window: timedelta
    states: int
    last_state: datetime | None
    cursor: datetime | None
    task_runs: pl.DataFrame
    task_retries: pl.DataFrame
    task_run_time: pl.DataFrame
    task_window: pl.DataFrame
    stuck: pl.DataFrame
    findings: dict[str, int]
    flow_runs: pl.DataFrame
    flow_run_time: pl.DataFrame
    flow_lateness: pl.DataFrame
    folded: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _window(window: str | timedelta) -> timedelta:
    span = window if isinstance(window, timedelta) else parse_duration(window)
    if span is None or span <= timedelta(0):
        msg = f"window={window!r} is not a positive duration. Hint: use '1d', '6h' or '30m'."
        raise ConfigurationError(msg)
    return span


def _us(at: datetime) -> int:
    return epoch_micros(at)


def _dataset_stats(states: Any) -> tuple[int, datetime | None]:
    frame = with_micros(lazy(states, caller="metrics"), timestamps={"_ts": "timestamp"})
    row = to_polars(frame.select(n=nw.len(), last=nw.col("_ts").max()).to_native()).row(0)
    last = None if row[1] is None else EPOCH + timedelta(microseconds=int(row[1]))
    return int(row[0]), last


def _kept(
    totals: pl.DataFrame, keys: Sequence[str], max_series: int
) -> set[tuple[Any, ...]] | None:
    """The groups that keep their own series (None: all of them), the busiest first."""
    if totals.height <= max_series:
        return None
    ranked = totals.sort([pl.col("total"), *keys], descending=[True, *[False] * len(keys)])
    return set(ranked.head(max_series - 1).select(keys).iter_rows())


def _fold(
    frame: pl.DataFrame, keys: Sequence[str], kept: set[tuple[Any, ...]] | None
) -> pl.DataFrame:
    """Sum the rows of the groups not kept into one ``(other)`` group (counts only); sort."""
    groups = [c for c in frame.columns if frame.schema[c] == pl.String]
    if kept is None or frame.is_empty():
        return frame.sort(groups)
    own = pl.Series([tuple(r) in kept for r in frame.select(keys).iter_rows()], dtype=pl.Boolean)
    others = frame.filter(~own).with_columns(pl.lit(OTHER).alias(k) for k in keys)
    summed = others.group_by(groups).agg(pl.exclude(groups).sum())
    folded = pl.concat([frame.filter(own), summed.select(frame.columns)], how="vertical_relaxed")
    return folded.sort(groups)


def _relabel(states: Any, keys: Sequence[str], kept: set[tuple[Any, ...]] | None) -> Any:
    """Rename, on the engine, the groups not kept to ``(other)`` (before a non-summable metric)."""
    if kept is None:
        return states
    frame = lazy(states, caller="metrics")
    key = nw.concat_str([nw.col(k).fill_null("\x00") for k in keys], separator="\x1f")
    names = ["\x1f".join("\x00" if v is None else str(v) for v in group) for group in kept]
    own = key.is_in(names)
    return frame.with_columns(
        nw.when(own).then(nw.col(k)).otherwise(nw.lit(OTHER)).alias(k) for k in keys
    ).to_native()


def _outcomes(states: Any, keys: Sequence[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Finished runs by final type (long), and every group's total runs (for the ranking)."""
    rates = to_polars(failure_rates(states, by=list(keys)))
    counts = rates.select(
        *keys,
        COMPLETED=pl.col("completed"),
        FAILED=pl.col("failed") - pl.col("crashed"),
        CRASHED=pl.col("crashed"),
        CANCELLED=pl.col("cancelled"),
    )
    long = counts.unpivot(index=list(keys), variable_name="final_type", value_name="runs")
    totals = rates.select(*keys, total=pl.col("runs") + pl.col("cancelled") + pl.col("unfinished"))
    return long.with_columns(pl.col("runs").cast(pl.Int64)), totals


def _histogram(runs: Any, keys: Sequence[str], value: str) -> pl.DataFrame:
    """Cumulative bucket counts, count and sum (seconds) of a duration column, per group."""
    frame = with_micros(lazy(runs, caller="metrics"), durations={"_v": value})
    frame = frame.filter(~nw.col("_v").is_null())
    buckets = [
        (nw.col("_v") <= round(le * _US)).cast(nw.Int64()).sum().alias(f"le_{i}")
        for i, le in enumerate(BUCKETS)
    ]
    stats = [nw.len().alias("count"), nw.col("_v").sum().alias("_sum"), *buckets]
    found = to_polars(frame.group_by(*keys, drop_null_keys=False).agg(*stats).to_native())
    return found.with_columns(
        pl.col("count").cast(pl.Int64),
        *(pl.col(f"le_{i}").cast(pl.Int64) for i in range(len(BUCKETS))),
        sum=pl.col("_sum").cast(pl.Float64) / _US,
    ).drop("_sum")


def _retries(states: Any, keys: Sequence[str]) -> pl.DataFrame:
    spread = to_polars(retry_distribution(states, by=list(keys)))
    return spread.group_by(list(keys)).agg(
        retries=(pl.col("retries").cast(pl.Int64) * pl.col("runs").cast(pl.Int64)).sum()
    )


def _in_window(states: Any, since: datetime, at: datetime) -> Any:
    """The states up to ``at`` of the task runs with a state in ``(since, at]``, on the engine."""
    frame = with_micros(lazy(states, caller="metrics"), timestamps={"_ts": "timestamp"})
    upto = frame.filter(nw.col("_ts") <= _us(at))
    recent = upto.filter(nw.col("_ts") > _us(since)).select("task_run_id").unique()
    return upto.join(recent, on="task_run_id", how="semi").drop("_ts").to_native()


def _window_stats(states: Any) -> pl.DataFrame:
    """Exact quantiles of run time and failure rates with Wilson bounds, per task."""
    keys = list(TASK_KEYS)
    times = to_polars(summarize(run_time(states), by=keys))
    quantiles = times.select(
        *keys,
        *(pl.col(c).dt.total_microseconds() / _US for c in QUANTILES.values()),
        measured=pl.col("count").cast(pl.Int64),
        total=pl.col("mean").dt.total_microseconds() * pl.col("count") / _US,
    )
    rates = to_polars(failure_rates(states, by=keys)).select(
        *keys, "runs", "failed", "failure_rate", "ci_low", "ci_high"
    )
    joined = rates.join(quantiles, on=keys, how="full", coalesce=True, nulls_equal=True)
    return joined.sort(keys)


def _stuck(states: Any, at: datetime, kept: set[tuple[Any, ...]] | None) -> pl.DataFrame:
    found = to_polars(stuck_runs(states, now=at))
    counted = found.group_by(list(TASK_KEYS)).agg(stuck=pl.len().cast(pl.Int64))
    return _fold(counted, TASK_KEYS, kept)


def compute_snapshot(
    states: Any,
    *,
    flow_run_states: Any = None,
    window: str | timedelta = "1d",
    now: datetime | None = None,
    cursor: datetime | None = None,
    max_series: int = 200,
) -> Snapshot:
    """Compute every metric family's values from a states frame of any engine.

    Args:
        states: task-run states (Polars, DuckDB or Spark; see :func:`~trs_analytics.scan_states`).
        flow_run_states: the flow-run states, or None for no flow-run families.
        window: the width of the window of the quantiles, failure rates and check.
        now: the window's end (aware); default: ``cursor``, else the newest state.
        cursor: the dataset's cursor (:func:`~trs_analytics.read_dataset_info`).
        max_series: the most groups (``flow_name``, ``task_name``; and of flow
            runs) that keep their own series; the rest are summed into ``(other)``.

    Raises:
        ConfigurationError: a bad ``window`` or ``max_series``, or a naive ``now``.

    Examples:
        >>> from datetime import UTC, datetime
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(500, seed=1, start=datetime(2026, 1, 1, tzinfo=UTC), days=2)
        >>> snap = compute_snapshot(states, window="1d", now=datetime(2026, 1, 3, tzinfo=UTC))
        >>> snap.states == states.height, snap.task_runs["runs"].sum() <= 500
        (True, True)
        >>> snap.task_window.columns[:4]
        ['flow_name', 'task_name', 'runs', 'failed']
    """
    started = time.perf_counter()
    span = _window(window)
    if max_series < 1:
        msg = f"max_series={max_series} must be at least 1. Hint: the default is 200."
        raise ConfigurationError(msg)
    if now is not None:
        micros_at(now)  # refuses a naive one
    count, last = _dataset_stats(states)
    at = (now or cursor or last or datetime.now(UTC)).astimezone(UTC)
    # each run's states reduced to one row once, kept on the engine, read by every
    # whole-dataset family (the window's families read the window's own states)
    with kept_run_table(states) as runs:
        task_runs, totals = _outcomes(runs, TASK_KEYS)
        kept = _kept(totals, TASK_KEYS, max_series)
        retries = _fold(_retries(runs, TASK_KEYS), TASK_KEYS, kept)
        times = _fold(_histogram(run_time(runs), TASK_KEYS, "duration"), TASK_KEYS, kept)
        stuck = _stuck(runs, at, kept)
    del runs  # let the table go before the check builds its own
    window_states = _relabel(_in_window(states, at - span, at), TASK_KEYS, kept)
    flows = _flow_families(flow_run_states, max_series)
    recent = span if isinstance(window, timedelta) else str(window)
    check = run_check(states, now=at, recent=_recent_text(recent))
    return Snapshot(
        at=at,
        window=span,
        states=count,
        last_state=last,
        cursor=cursor,
        task_runs=_fold(task_runs, TASK_KEYS, kept),
        task_retries=retries,
        task_run_time=times,
        task_window=_window_stats(window_states),
        stuck=stuck,
        findings=check.counts(),
        flow_runs=flows[0],
        flow_run_time=flows[1],
        flow_lateness=flows[2],
        folded={"task": _folded(totals, kept), "flow": flows[3]},
        seconds=time.perf_counter() - started,
    )


def _recent_text(span: str | timedelta) -> str:
    """The check's ``recent`` for a window (it takes text).

    Examples:
        >>> _recent_text(timedelta(hours=6)), _recent_text("1d")
        ('21600s', '1d')
    """
    if isinstance(span, str):
        return span
    return f"{int(span.total_seconds())}s"


def _folded(totals: pl.DataFrame, kept: set[tuple[Any, ...]] | None) -> int:
    return 0 if kept is None else totals.height - len(kept)


def _flow_families(
    flow_run_states: Any, max_series: int
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, int]:
    """Flow runs by final type, and their run-time and lateness histograms (whole dataset)."""
    keys = FLOW_KEYS
    if flow_run_states is None:
        empty = pl.DataFrame(schema=dict.fromkeys(keys, pl.String))
        return empty, empty, empty, 0
    runs, totals = _outcomes(flow_run_states, keys)
    kept = _kept(totals, keys, max_series)
    times = _fold(_histogram(run_time(flow_run_states), keys, "duration"), keys, kept)
    late = _fold(_histogram(lateness(flow_run_states), keys, "duration"), keys, kept)
    return _fold(runs, keys, kept), times, late, _folded(totals, kept)

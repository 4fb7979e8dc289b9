"""Durations as seconds, for tables that people read."""

from __future__ import annotations

from typing import TYPE_CHECKING

import narwhals as nw

from trs_analytics.metrics._frames import finish, is_duration, lazy, with_micros

if TYPE_CHECKING:
    from trs_analytics.metrics._frames import Frame

__all__ = ["in_seconds"]


def in_seconds(frame: Frame) -> Frame:
    """Every duration column ``x`` as ``x_s``: its seconds, a float, in the same place.

    Polars prints a duration as ``2s 3027µs``; ``2.003027`` reads better in a
    table and sorts, sums and plots as a number. The durations are exact to the
    microsecond, as every metric computes them. Other columns are kept as they are.

    Args:
        frame: any frame, typically what :func:`summarize` or a duration metric returns.

    Returns:
        The kind of frame given, each duration column replaced by a ``Float64``
        (``DOUBLE`` on DuckDB and Spark) column of seconds named with ``_s``.

    Examples:
        >>> from datetime import timedelta
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> runs = pl.DataFrame({
        ...     "task_name": ["a", "a", "b"],
        ...     "duration": [timedelta(seconds=2, microseconds=3027), timedelta(seconds=4), None],
        ... })
        >>> summary = ta.summarize(runs, by="task_name").select("task_name", "count", "p50", "max")
        >>> summary["p50"].to_list()[0]
        datetime.timedelta(seconds=3, microseconds=1514)
        >>> ta.in_seconds(summary)
        shape: (2, 4)
        ┌───────────┬───────┬──────────┬───────┐
        │ task_name ┆ count ┆ p50_s    ┆ max_s │
        │ ---       ┆ ---   ┆ ---      ┆ ---   │
        │ str       ┆ u32   ┆ f64      ┆ f64   │
        ╞═══════════╪═══════╪══════════╪═══════╡
        │ a         ┆ 2     ┆ 3.001514 ┆ 4.0   │
        │ b         ┆ 0     ┆ null     ┆ null  │
        └───────────┴───────┴──────────┴───────┘
    """
    lf = lazy(frame, caller="in_seconds")
    names = lf.collect_schema().names()
    spans = {f"_us_{c}": c for c in names if is_duration(lf, c)}
    micros = {c: us for us, c in spans.items()}
    lf = with_micros(lf, durations=spans)
    columns = [
        (nw.col(micros[c]).cast(nw.Float64) / 1_000_000).alias(f"{c}_s")
        if c in micros
        else nw.col(c)
        for c in names
    ]
    return finish(lf.select(columns), frame)

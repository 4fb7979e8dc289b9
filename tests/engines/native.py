"""Moving a states frame onto each engine, and any engine's result back to Polars.

- :func:`spark_session`: the one local SparkSession of the test process
  (``local[2]``, no UI, 4 shuffle partitions, session time zone UTC, quiet).
- :func:`to_native`: a Polars states frame -> that engine's native frame.
- :func:`to_polars`: any engine's result -> a Polars DataFrame (through narwhals).
- :func:`assert_same`: a result equals a Polars reference, engine-tolerantly.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, Final

import polars as pl

import trs_analytics as ta
from trs_analytics.engines import engine_of

if TYPE_CHECKING:
    import duckdb
    from pyspark.sql import SparkSession

#: The ``engine`` fixture's parameters: where a metric's input lives.
ENGINE_IDS: Final = ("polars-eager", "polars-lazy", "duckdb", "spark")

#: What a metric must return for an input on each engine.
KIND_OF: Final = {
    "polars-eager": "polars.DataFrame",
    "polars-lazy": "polars.LazyFrame",
    "duckdb": "duckdb",
    "spark": "spark",
}

REL_TOL: Final = 1e-9


@functools.cache
def spark_session() -> SparkSession:
    """The test process's one SparkSession (JVM start-up is ~10 s, so share it)."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("trs_analytics-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        # small frames: compiling generated code costs more than interpreting it
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def _portable(states: pl.DataFrame) -> pl.DataFrame:
    """What DuckDB and Spark hold: no Enum (``type`` is a string)."""
    return states.with_columns(
        pl.col(c).cast(pl.String) for c, t in states.schema.items() if isinstance(t, pl.Enum)
    )


def to_native(
    states: pl.DataFrame,
    engine: str,
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
    spark: SparkSession | None = None,
) -> Any:
    """``states`` as a native frame of ``engine`` (one of :data:`ENGINE_IDS`)."""
    if engine == "polars-eager":
        return states
    if engine == "polars-lazy":
        return states.lazy()
    table = _portable(states).to_arrow(compat_level=pl.CompatLevel.oldest())
    if engine == "duckdb":
        assert connection is not None
        return connection.from_arrow(table)
    if engine == "spark":
        return (spark or spark_session()).createDataFrame(table)
    msg = f"unknown engine {engine!r}"
    raise ValueError(msg)


def kind(frame: object) -> str:
    """``polars.DataFrame``, ``polars.LazyFrame``, ``duckdb`` or ``spark``."""
    if isinstance(frame, pl.DataFrame):
        return "polars.DataFrame"
    if isinstance(frame, pl.LazyFrame):
        return "polars.LazyFrame"
    return str(engine_of(frame))


def to_polars(result: object) -> pl.DataFrame:
    """Any engine's frame as a Polars DataFrame (the package's own conversion)."""
    return ta.to_polars(result)


def _normal_form(frame: pl.DataFrame) -> pl.DataFrame:
    """Engine-neutral dtypes: strings, Int64 counts, Float64, microseconds, UTC."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Enum | pl.Categorical):
            col = col.cast(pl.String)
        elif isinstance(dtype, pl.Duration):
            col = col.dt.total_microseconds()
        elif isinstance(dtype, pl.Datetime):
            assert dtype.time_zone in ("UTC", "Etc/UTC"), f"{name} is {dtype}, expected UTC"
            col = col.dt.epoch("us")
        elif dtype.is_integer():
            col = col.cast(pl.Int64)
        elif dtype.is_float() or isinstance(dtype, pl.Decimal):
            col = col.cast(pl.Float64)
        elif isinstance(dtype, pl.List):
            col = col.list.sort()
        exprs.append(col.alias(name))
    return frame.select(exprs)


def assert_same(result: object, reference: object, *, ordered: bool = False) -> None:
    """``result`` equals ``reference``: exact but for floats (1e-9 relative).

    Counts, ids, strings and states compare exactly (integer widths aside),
    durations as integer microseconds, timestamps as UTC microseconds. Rows are
    compared as a multiset unless ``ordered`` (the metric documents its order).
    """
    got, want = _normal_form(to_polars(result)), _normal_form(to_polars(reference))
    assert got.columns == want.columns, f"columns {got.columns} != {want.columns}"
    assert got.height == want.height, f"{got.height} rows, expected {want.height}"
    floats = [c for c, t in want.schema.items() if t == pl.Float64]
    keys = [c for c in want.columns if c not in floats]
    if not ordered and keys:
        got, want = got.sort(keys, nulls_last=True), want.sort(keys, nulls_last=True)
    for column in keys:
        a, b = got[column], want[column]
        if not a.cast(b.dtype, strict=False).equals(b, check_dtypes=False, check_names=False):
            diff = pl.DataFrame({"got": a, "expected": b}).with_row_index()
            bad = diff.filter(pl.col("got").ne_missing(pl.col("expected")))
            raise AssertionError(f"column {column!r} differs:\n{bad.head(10)}")
    for column in floats:
        for i, (x, y) in enumerate(zip(got[column], want[column], strict=True)):
            same = (x is None and y is None) or (
                x is not None
                and y is not None
                and (
                    (math.isnan(x) and math.isnan(y))
                    or math.isclose(x, y, rel_tol=REL_TOL, abs_tol=1e-12)
                )
            )
            assert same, f"column {column!r} row {i}: {x} != {y}"

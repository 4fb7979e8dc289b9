"""Engines: how a metric takes any engine's frame and gives back the same kind.

Every metric is written once, with narwhals expressions, on a
:class:`narwhals.LazyFrame`. This module is the only place that knows the
engines apart:

- :func:`lazy` wraps a Polars ``DataFrame``/``LazyFrame``, a DuckDB relation
  or a PySpark ``DataFrame`` as a narwhals ``LazyFrame``;
- :func:`finish` turns the metric's lazy result back into the kind of frame
  it was given, and gives its columns their engine's types.

Time is computed in integer microseconds since the epoch inside every metric
(:data:`US`): engines disagree on casting timestamps to integers and on
interval arithmetic, but all of them subtract two timestamps and read the
microseconds of the difference the same way. :func:`finish` turns the
microsecond columns back into timestamps and durations:

============  ========================  ==================  =====================
kind          Polars                    DuckDB              Spark
============  ========================  ==================  =====================
timestamp     ``Datetime("us", "UTC")`` ``TIMESTAMPTZ``     ``TIMESTAMP`` (UTC)
duration      ``Duration("us")``        ``INTERVAL``        ``INTERVAL DAY TO SECOND``
count         ``UInt32``                ``BIGINT``          ``BIGINT``
state type    ``Enum`` (the contract)   ``VARCHAR``         ``STRING``
============  ========================  ==================  =====================
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import narwhals as nw
import polars as pl

from trs_analytics._time import EPOCH
from trs_analytics.engines import sql_name, sql_text
from trs_analytics.exceptions import ConfigurationError, SchemaError
from trs_analytics.schema import UTC_US, StateType, run_id_column

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from types import FrameType

    from narwhals.typing import IntoFrame

__all__ = [
    "EPOCH",
    "RUN_KEY",
    "Frame",
    "aggregate",
    "collect_shared",
    "describe",
    "distinct",
    "finish",
    "from_micros",
    "from_native",
    "has_ordered_last",
    "in_group_sets",
    "is_duration",
    "is_spark",
    "lazy",
    "materialized",
    "materialized_by_run",
    "narrowed",
    "quantile",
    "reused",
    "schema_of",
    "to_polars",
    "with_first_seen",
    "with_micros",
    "with_rank",
]

#: A metric returns the kind of frame it was given: Polars DataFrame or LazyFrame,
#: DuckDB relation (``duckdb.DuckDBPyRelation``) or PySpark ``DataFrame``.
Frame = TypeVar("Frame")


#: The run key inside a metric (``task_run_id`` or ``flow_run_id`` outside).
RUN_KEY: Final = "_run"


def is_spark(impl: nw.Implementation) -> bool:
    """Whether a frame of this implementation is Spark's (classic or Spark Connect)."""
    return bool(impl.is_pyspark() or impl.is_pyspark_connect())


def lazy(frame: IntoFrame | Any, *, caller: str) -> nw.LazyFrame[Any]:
    """Wrap any supported engine's frame as a narwhals LazyFrame.

    Raises:
        ConfigurationError: ``frame`` is not a frame of a supported engine.

    Examples:
        >>> import polars as pl
        >>> lazy(pl.DataFrame({"a": [1]}), caller="demo").implementation.name
        'POLARS'
    """
    if isinstance(frame, nw.LazyFrame):
        return frame
    wrapped = from_native(frame, caller=caller)
    return wrapped.lazy() if isinstance(wrapped, nw.DataFrame) else wrapped


def narrowed(frame: Any, columns: Sequence[str], *, caller: str) -> Any:
    """``frame`` with only those of ``columns`` it has, lazily, on its own engine.

    What a job reads, said once: a column left out is never read from the
    scan, nor carried through a pass over the states (a Polars DataFrame
    comes back as a LazyFrame).

    Examples:
        >>> import polars as pl
        >>> narrowed(pl.DataFrame({"a": [1], "b": [2]}), ["b", "c"], caller="demo").collect().columns
        ['b']
    """
    if isinstance(frame, pl.DataFrame | pl.LazyFrame):  # no narwhals round trip
        present = frame.lazy().collect_schema().names()
        return frame.lazy().select([c for c in columns if c in present])
    wrapped = lazy(frame, caller=caller)
    present = wrapped.collect_schema().names()
    return wrapped.select([c for c in columns if c in present]).to_native()


def from_native(frame: Any, *, caller: str) -> Any:
    """``nw.from_native(frame)``; anything but a supported engine's frame is a
    ConfigurationError naming the public function called and its argument.

    The one guard of every metric's frame argument: the function and the
    argument are read from the call stack, on the error path only.

    Examples:
        >>> from_native("states.parquet", caller="run_time")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: run_time() needs a Polars DataFrame ..., got str. Hint: ...
        >>> import trs_analytics as ta
        >>> ta.run_time("states.parquet")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: run_time(states=...) needs a Polars DataFrame ..., got str. Hint: ...
    """
    try:
        return nw.from_native(frame)
    except TypeError as err:
        msg = (
            f"{_called(frame, caller)} needs a Polars DataFrame or LazyFrame, a DuckDB relation "
            f"or a PySpark DataFrame, got {type(frame).__name__}. Hint: read states with "
            "trs_analytics.scan_states(path, engine=...)."
        )
        raise ConfigurationError(msg) from err


def _called(value: object, caller: str) -> str:
    """``name(argument=...)``: the outermost public metric that was given ``value``.

    Walks the call stack out through :mod:`trs_analytics.metrics` (a public
    metric may call others); ``caller()`` when no argument holds ``value``.
    """
    found = f"{caller}()"
    at: FrameType | None = sys._getframe(2)  # from_native's caller
    while at is not None and at.f_globals.get("__name__", "").startswith(__package__ or "-"):
        code = at.f_code
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        held = [n for n in names if at.f_locals.get(n) is value]
        if held and not code.co_name.startswith("_"):
            found = f"{code.co_name}({held[0]}=...)"
        at = at.f_back
    return found


def schema_of(frame: Any) -> nw.Schema:
    """The column names and narwhals dtypes of any supported frame (without computing it).

    Examples:
        >>> import polars as pl
        >>> schema_of(pl.LazyFrame({"a": [1]})).names()
        ['a']
    """
    native = frame if isinstance(frame, nw.LazyFrame) else from_native(frame, caller="a metric")
    return native.collect_schema()


def with_micros(
    frame: nw.LazyFrame[Any],
    *,
    timestamps: dict[str, str] | None = None,
    durations: dict[str, str] | None = None,
) -> nw.LazyFrame[Any]:
    """Add integer-microsecond columns read from timestamps (since the epoch) and durations.

    Engines disagree on turning time into integers (the one trap that
    narwhals does not cover on every engine), so each is done natively here.

    Args:
        frame: a narwhals LazyFrame.
        timestamps: new column -> aware timestamp column (any time zone).
        durations: new column -> duration (interval) column.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> frame = lazy(pl.DataFrame({"t": [datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)]}), caller="x")
        >>> with_micros(frame, timestamps={"us": "t"}).collect()["us"].to_list()
        [1000000]
    """
    stamps, spans = timestamps or {}, durations or {}
    impl = frame.implementation
    if impl.is_polars():
        native: pl.LazyFrame = frame.to_native()
        return nw.from_native(
            native.with_columns(
                *(pl.col(c).dt.epoch("us").alias(new) for new, c in stamps.items()),
                *(pl.col(c).dt.total_microseconds().alias(new) for new, c in spans.items()),
            )
        )
    if impl.is_duckdb():
        rel = frame.to_native()
        exprs = [
            *(f"epoch_us({sql_name(c)}) AS {sql_name(new)}" for new, c in stamps.items()),
            *(f"epoch_us({sql_name(c)}) AS {sql_name(new)}" for new, c in spans.items()),
        ]
        return nw.from_native(rel.project(", ".join(["*", *exprs]))) if exprs else frame
    if is_spark(impl):
        from pyspark.sql import functions as F

        df = frame.to_native()
        for new, c in stamps.items():
            df = df.withColumn(new, F.unix_micros(F.col(c)))
        for new, c in spans.items():
            epoch = F.expr("TIMESTAMP '1970-01-01 00:00:00 UTC'")
            df = df.withColumn(new, F.unix_micros(epoch + F.col(c)))
        return cast("nw.LazyFrame[Any]", nw.from_native(df))
    msg = f"engine {impl.name} is not supported. Hint: use Polars, DuckDB or PySpark frames."
    raise ConfigurationError(msg)


def with_rank(
    frame: nw.LazyFrame[Any], column: str, order: Sequence[str], *, name: str
) -> nw.LazyFrame[Any]:
    """Add ``name``: the position of ``column``'s value in ``order`` (null when not in it).

    On Polars, a ``column`` that is an ``Enum`` of exactly ``order`` (the
    contract's state type) holds that position as its physical code, read
    without comparing a string on every row.

    Examples:
        >>> import polars as pl
        >>> frame = lazy(pl.DataFrame({"t": ["b", "z"]}), caller="x")
        >>> with_rank(frame, "t", ["a", "b"], name="r").collect()["r"].to_list()
        [1, None]
    """
    dtype = frame.collect_schema()[column]
    if (
        frame.implementation.is_polars()
        and isinstance(dtype, nw.Enum)
        and list(dtype.categories) == list(order)
    ):
        native: pl.LazyFrame = frame.to_native()
        rank = pl.col(column).to_physical().cast(pl.Int64).alias(name)
        return nw.from_native(native.with_columns(rank))
    ranks = {value: i for i, value in enumerate(order)}
    rank_expr = (
        nw.col(column)
        .cast(nw.String())
        .replace_strict(ranks, default=None, return_dtype=nw.Int64())
    )
    return frame.with_columns(rank_expr.alias(name))


def with_first_seen(
    frame: nw.LazyFrame[Any], *, flag: nw.Expr, column: str, name: str
) -> nw.LazyFrame[Any]:
    """Polars: add ``name``, true on the rows where ``flag`` holds and ``column`` is
    null or has a value no earlier flagged row had (in the frame's order).

    A hash set of the flagged values, kept once for the whole frame, where a
    group-by's ``n_unique`` keeps one per group: counting a run's distinct
    RUNNING ids this way holds one set instead of one per run: much less
    memory for a little more time (benchmarks/README.md, section 2).
    Only on Polars: narwhals refuses an order-dependent expression on a lazy
    frame, and the first of a set of copies needs no order (they are equal).

    Examples:
        >>> import narwhals as nw
        >>> import polars as pl
        >>> frame = lazy(pl.DataFrame({"id": ["a", "a", None, "b", "a"],
        ...                            "f": [True, True, True, False, True]}), caller="x")
        >>> with_first_seen(frame, flag=nw.col("f"), column="id", name="new").collect()[
        ...     "new"].to_list()
        [True, False, True, False, False]
    """
    if not frame.implementation.is_polars():
        msg = f"with_first_seen() is for Polars frames, got {frame.implementation.name}"
        raise ConfigurationError(msg)
    flagged = frame.with_columns(_flagged=flag.fill_null(value=False))
    native: pl.LazyFrame = flagged.to_native()
    value = pl.col(column)
    seen = pl.when(pl.col("_flagged") & value.is_not_null()).then(value)
    first = pl.col("_flagged") & (value.is_null() | seen.is_first_distinct())
    return nw.from_native(native.with_columns(first.alias(name)).drop("_flagged"))


def from_micros(
    result: nw.LazyFrame[Any],
    *,
    timestamps: Sequence[str] = (),
    durations: Sequence[str] = (),
) -> nw.LazyFrame[Any]:
    """Turn integer-microsecond columns back into timestamps and durations.

    The only engine-specific expressions of the metrics live here: narwhals
    has no portable way to build a timestamp or an interval from an integer.
    Fractional microseconds (means, interpolated quantiles) are rounded half
    up, ``floor(round(x, 3) + 0.5)``, the same on every engine: engines
    interpolate quantiles with different float rounding, and a value such as
    39945.5 may arrive as 39945.4999999; a nanosecond snap first makes them agree.
    """
    if not timestamps and not durations:
        return result
    impl = result.implementation
    if impl.is_polars():
        native = result.to_native()
        native = native.with_columns(
            *(pl.col(c).cast(pl.Int64).cast(UTC_US) for c in timestamps),
            *(
                (pl.col(c).round(3) + 0.5).floor().cast(pl.Int64).cast(pl.Duration("us"))
                for c in durations
            ),
        )
        return cast("nw.LazyFrame[Any]", nw.from_native(native))
    if impl.is_duckdb():
        import duckdb

        native = result.to_native()
        exprs = [
            *(
                f"make_timestamptz(CAST({sql_name(c)} AS BIGINT)) AS {sql_name(c)}"
                for c in timestamps
            ),
            *(
                f"to_microseconds(CAST(floor(round({sql_name(c)}, 3) + 0.5) AS BIGINT)) AS {sql_name(c)}"
                for c in durations
            ),
        ]
        replaced = ", ".join(exprs)
        rel = native.project(f"* REPLACE ({replaced})")
        assert isinstance(rel, duckdb.DuckDBPyRelation)
        return nw.from_native(rel)
    if is_spark(impl):
        from pyspark.sql import functions as F

        native = result.to_native()
        for c in timestamps:
            native = native.withColumn(c, F.timestamp_micros(F.col(c).cast("bigint")))
        for c in durations:
            # exact: whole microseconds as a decimal number of seconds
            whole = F.floor(F.round(F.col(c), 3) + F.lit(0.5)).cast("decimal(20,0)")
            seconds = (whole / F.lit(1_000_000)).cast("decimal(18,6)")
            native = native.withColumn(c, F.make_dt_interval(secs=seconds))
        return cast("nw.LazyFrame[Any]", nw.from_native(native))
    msg = f"engine {impl.name} is not supported. Hint: use Polars, DuckDB or PySpark frames."
    raise ConfigurationError(msg)


def finish(
    result: nw.LazyFrame[Any],
    template: Frame,
    *,
    timestamps: Sequence[str] = (),
    durations: Sequence[str] = (),
    counts: Sequence[str] = (),
    state_types: Sequence[str] = (),
) -> Frame:
    """Return ``result`` as the kind of frame ``template`` is, with its engine's types.

    Args:
        result: the metric's lazy result.
        template: the frame the metric was given.
        timestamps: integer-microsecond columns to turn into UTC timestamps.
        durations: integer- (or float-) microsecond columns to turn into durations.
        counts: counts, ``UInt32`` on Polars (``BIGINT`` elsewhere).
        state_types: state-type columns, the contract's ``Enum`` on Polars.
    """
    result = from_micros(result, timestamps=timestamps, durations=durations)
    if RUN_KEY in result.collect_schema().names():
        result = result.rename({RUN_KEY: run_id_column(schema_of(template).names())})
    if not result.implementation.is_polars():
        return cast("Frame", result.to_native())
    native: pl.LazyFrame = result.to_native()
    native = native.with_columns(
        *(pl.col(c).cast(pl.UInt32) for c in counts),
        *(pl.col(c).cast(StateType) for c in state_types),
    )
    return cast("Frame", native.collect() if isinstance(template, pl.DataFrame) else native)


def aggregate(
    frame: nw.LazyFrame[Any],
    keys: Sequence[str],
    *,
    carry: Sequence[str] = (),
    aggs: dict[str, nw.Expr],
) -> nw.LazyFrame[Any]:
    """Group ``frame`` by ``keys``: the ``aggs``, and any value of each ``carry`` column.

    ``carry`` holds per-run attributes (``task_name``, ``tags``...), the same
    on every row of a group, taken with ``any_value`` in the group-by. Polars
    gathers strings and lists in a group-by slowly, so there the group-by
    keeps each group's first row number and the carried columns are joined
    back on it, one integer key; columns a query does not read are pruned
    from the join: the group-by moves one integer per group instead of every
    carried string and list, which the metrics that carry many attributes
    (``run_time``, ``retry_counts``) feel most.
    """
    if not carry or not frame.implementation.is_polars():
        return frame.group_by(*keys).agg(*(nw.col(c).any_value() for c in carry), **aggs)
    native: pl.LazyFrame = frame.to_native().with_row_index("_row")
    grouped = nw.from_native(native).group_by(*keys).agg(_row=nw.col("_row").min(), **aggs)
    joined = grouped.to_native().join(native.select("_row", *carry), on="_row", how="left")
    return nw.from_native(joined.select(*keys, *carry, *aggs))


def reused(frame: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """Mark ``frame`` as read more than once in one query (joined with itself, say).

    Polars then computes it once per query (``LazyFrame.cache``) instead of
    once per read: ``detect_anomalies(metric="run_time")`` reads its per-run
    points twice (the bucket medians and the training window), and without
    it computed them twice from the scan. Other engines plan the query as
    they see fit.
    """
    if not frame.implementation.is_polars():
        return frame
    native: pl.LazyFrame = frame.to_native()
    return nw.from_native(native.cache())


def collect_shared(
    shared: nw.LazyFrame[Any], queries: Callable[[nw.LazyFrame[Any]], dict[str, Any]]
) -> dict[str, pl.DataFrame]:
    """Compute several small results that all read one costly frame, computing it once.

    ``queries`` builds each result from ``shared`` (as native frames of its
    engine); they come back as Polars DataFrames. ``shared`` is computed once:
    on Polars cached (``LazyFrame.cache``) and every query collected together
    (``pl.collect_all``), one plan; on DuckDB and Spark kept by
    :func:`materialized` while the queries read it.
    """
    if shared.implementation.is_polars():
        cached: pl.LazyFrame = shared.to_native().cache()
        built = queries(nw.from_native(cached))
        frames = pl.collect_all([frame.lazy() for frame in built.values()])
        return dict(zip(built, frames, strict=True))
    with materialized(shared.to_native()) as kept:
        return {k: to_polars(v) for k, v in queries(nw.from_native(kept)).items()}


def _repeated_text(frame: pl.DataFrame) -> list[str]:
    """The text columns of ``frame`` whose values repeat: fewer than half of them distinct."""
    return [
        c
        for c, dtype in frame.schema.items()
        if dtype == pl.String and frame[c].n_unique() * 2 < frame.height
    ]


def _as_categories(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """``columns`` kept as categories: each distinct text once, a 4-byte code per row.

    A Polars text value takes a 16-byte view plus its bytes beyond 12; a run
    table's flow run, deployment, flow and task names repeat across its
    rows, and stored as text they took most of its memory.
    """
    return frame.with_columns(pl.col(c).cast(pl.Categorical) for c in columns)


def _as_text(frame: pl.LazyFrame, columns: Sequence[str]) -> pl.LazyFrame:
    """``columns`` read back as text (as they were built): each query decodes what it reads."""
    return frame.with_columns(pl.col(c).cast(pl.String) for c in columns)


@contextmanager
def materialized(frame: Any) -> Iterator[Any]:
    """Compute ``frame`` once and keep it, for the block, where reading it again is cheap.

    For a frame that several later queries read (a :func:`run_table`, say):

    - Polars: collected into a DataFrame, yielded as a LazyFrame over it (so
      each query is planned whole: ``summarize(run_time(kept))`` skips the
      sort ``run_time`` gives its rows); text columns whose values repeat are
      kept as categories and read back as text;
    - DuckDB: written to a Parquet file of a temporary folder (``TMPDIR``),
      removed after the block, which the block reads (an ``INTERVAL`` stored
      as its microseconds: Parquet's own keeps milliseconds). A temporary
      table of an in-memory database, and a table of an attached database
      file too, keeps its blocks in the memory ``memory_limit`` bounds: with
      either, the 6.3M-run table of a 20M-state check left its anomaly
      queries no room at 512MB ("failed to pin block"), and they passed
      reading the same rows from Parquet;
    - Spark: persisted on disk (``DISK_ONLY``) and counted, unpersisted after
      the block. Kept in memory as well (``MEMORY_AND_DISK``), the run table
      and the report's per-run outcomes of 20M states ran a local 2 GiB
      driver out of heap (``java.lang.OutOfMemoryError``) while caching the
      second; on disk only, the same steps took a minute.

    Yields the kept frame, of the engine given.

    Examples:
        >>> import duckdb
        >>> with materialized(duckdb.sql("SELECT 1 AS a")) as kept:
        ...     kept.fetchall()
        [(1,)]
    """
    impl = lazy(frame, caller="materialized").implementation
    if impl.is_polars():
        kept = frame if isinstance(frame, pl.DataFrame) else frame.collect()
        repeated = _repeated_text(kept)
        yield _as_text(_as_categories(kept, repeated).lazy(), repeated)
        return
    if impl.is_duckdb():
        name = f"_trs_kept_{uuid.uuid4().hex}"
        # Parquet keeps an INTERVAL in milliseconds: intervals go as their microseconds
        spans = [c for c, t in zip(frame.columns, frame.types, strict=True) if t == "INTERVAL"]
        stored = read = "*"
        if spans:
            stored, read = _replaced("epoch_us", spans), _replaced("to_microseconds", spans)
        with tempfile.TemporaryDirectory(prefix="trs-analytics-runs-") as folder:
            path = sql_text(str(Path(folder) / "kept.parquet"))
            frame.query(name, f"COPY (SELECT {stored} FROM {name}) TO {path} (FORMAT parquet)")
            yield frame.query(f"{name}_read", f"SELECT {read} FROM read_parquet({path})")
        return
    if is_spark(impl):
        from pyspark import StorageLevel

        # on disk only: kept in memory, two kept frames of 6.3M runs (the run table and
        # the report's per-run outcomes) ran a 2 GiB driver out of heap while caching
        persisted = frame.persist(StorageLevel.DISK_ONLY)
        persisted.count()  # computed now, once, not by the first query that reads it
        try:
            yield persisted
        finally:
            persisted.unpersist()
        return
    msg = f"engine {impl.name} is not supported. Hint: use Polars, DuckDB or PySpark frames."
    raise ConfigurationError(msg)


def _replaced(function: str, columns: Sequence[str]) -> str:
    """DuckDB's ``* REPLACE (function(c) AS c, ...)``: every column, ``columns`` through ``function``.

    Examples:
        >>> _replaced("epoch_us", ["run_time"])
        '* REPLACE (epoch_us("run_time") AS "run_time")'
    """
    quoted = [sql_name(c) for c in columns]
    return f"* REPLACE ({', '.join(f'{function}({c}) AS {c}' for c in quoted)})"


#: States per set when a Polars frame is reduced a set of runs at a time.
STATES_PER_PART: Final = 2_500_000


def parts_for(states: int, *, per_part: int = STATES_PER_PART) -> int:
    """How many sets of runs ``states`` states are reduced in on Polars (one up to ``per_part``).

    Examples:
        >>> parts_for(300), parts_for(20_000_000), parts_for(20_000_000, per_part=1_000_000)
        (1, 8, 20)
    """
    return max(1, -(-states // per_part))


@contextmanager
def materialized_by_run(
    states: Any, build: Callable[[Any], Any], *, run: str, parts: int | None = None
) -> Iterator[Any]:
    """:func:`materialized` ``build(states)``, where ``build`` gives one row per run.

    On a Polars ``LazyFrame`` with ``parts`` > 1 the runs are split by a hash
    of their ``run`` id into ``parts`` disjoint sets, and ``build`` runs on
    each set's states in turn (the streaming engine, reading the scan again
    each time), its rows written to a Parquet file of a temporary folder
    (``TMPDIR``), removed after the block; the block reads them back as one
    scan. A run's states are all in one set, so the rows are those of one
    ``build`` over every state, while only one set's states are held at once
    and the rows are not held at all: each query reads the columns it needs
    from the files. ``parts=None``: one set per 2.5M states (:func:`parts_for`;
    counting them reads one column's metadata).

    Other engines, and Polars in one set: ``materialized(build(states))`` (on
    DuckDB a Parquet file; Spark spills and spreads the work itself).

    Examples:
        >>> import polars as pl
        >>> frame = pl.LazyFrame({"run": ["a", "b", "a", "c"], "x": [1, 2, 3, 4]})
        >>> sums = lambda f: f.group_by("run").agg(pl.col("x").sum())
        >>> with materialized_by_run(frame, sums, run="run", parts=2) as kept:
        ...     kept.sort("run").collect().rows()
        [('a', 4), ('b', 2), ('c', 4)]
    """
    if parts is None and isinstance(states, pl.LazyFrame):
        parts = parts_for(states.select(pl.len()).collect().item())
    if parts is not None and parts > 1 and isinstance(states, pl.LazyFrame):
        key = pl.col(run).hash() % parts
        with tempfile.TemporaryDirectory(prefix="trs-analytics-runs-") as folder:
            files = [Path(folder) / f"part-{k:04d}.parquet" for k in range(parts)]
            for k, file in enumerate(files):
                build(states.filter(key == k)).sink_parquet(file, compression="lz4")
            yield pl.scan_parquet(files)
        return
    with materialized(build(states)) as kept:
        yield kept


def in_group_sets(
    frame: Any, column: str, parts: int, compute: Callable[[Any], Any]
) -> pl.DataFrame:
    """``to_polars(compute(frame))``, a set of ``column``'s values at a time.

    For a metric whose rows for a value of ``column`` depend on that value's
    rows alone, and are ordered by it (nulls last), as ``detect_anomalies(by=column)``'s:
    the distinct values, in order, are cut into ``parts`` runs of neighbours,
    ``compute`` runs on each run's rows in turn, and the results are put end to
    end: the rows of one ``compute`` over every row, while only a set's work
    is held at once (Polars) or spilled at once (DuckDB, whose spill files of
    one ``compute`` over every row can fill a disk; each set's rows are kept
    by :func:`materialized` first, read once from the frame). Spark too: one
    ``compute`` of the report's anomalies over the 6.3M runs of 20M states ran
    a local 2 GiB driver out of heap.

    Examples:
        >>> frame = pl.LazyFrame({"g": ["b", None, "a", "b"], "x": [1, 2, 3, 4]})
        >>> sums = lambda f: f.group_by("g").agg(pl.col("x").sum()).sort("g", nulls_last=True)
        >>> in_group_sets(frame, "g", 2, sums).rows()
        [('a', 3), ('b', 5), (None, 2)]
    """
    wrapped = lazy(frame, caller="in_group_sets")
    if parts <= 1:
        return to_polars(compute(frame))
    values = to_polars(wrapped.select(nw.col(column)).unique().to_native()).to_series()
    values = values.sort(nulls_last=True)
    size = -(-values.len() // parts)
    pieces = []
    for start in range(0, values.len(), size):
        chunk = values.slice(start, size)
        keep = nw.col(column).is_in(chunk.drop_nulls().to_list())
        if chunk.null_count():
            keep = keep | nw.col(column).is_null()
        rows = wrapped.filter(keep).to_native()
        if wrapped.implementation.is_polars():
            pieces.append(to_polars(compute(rows)))
            continue
        # DuckDB computes a relation each time a query reads it: a metric reading its
        # input several times would scan the whole frame each time (50 scans of a
        # 100M-state report's run table per set of tasks), so the set's rows are kept first
        # (Spark's too, on disk)
        with materialized(rows) as kept:
            pieces.append(to_polars(compute(kept)))
    return pl.concat(pieces, how="vertical")


def quantile(value: nw.Expr, q: float) -> nw.Expr:
    """Linear-interpolated quantile (NumPy's default, DuckDB's ``quantile_cont``)."""
    return value.quantile(q, interpolation="linear")


#: Polars computes grouped quantiles in this many sets of groups, one set at a time.
QUANTILE_SETS: Final = 8


def group_quantiles(
    frame: nw.LazyFrame[Any],
    keys: Sequence[str],
    values: dict[str, str],
    q: float,
    *,
    count: str,
) -> nw.LazyFrame[Any]:
    """Per group of ``keys`` (null keys dropped; no keys: all rows): ``count``, the
    number of rows, and for each ``name: column`` of ``values`` the linear-interpolated
    ``q`` quantile of the column's non-null values (null when it has none).

    A quantile aggregate holds every value of its group in memory, and DuckDB
    cannot spill it: ``stuck_runs``' six p99s (run time and queue wait, per
    task, deployment and flow) ran out of memory at 512MB on 20M states and at
    3GB on 100M. On DuckDB each quantile is therefore taken from its group's
    sorted values (a ``row_number`` window, which spills to disk): the
    ``floor`` and ``ceil`` of ``(n - 1) * q``, interpolated as
    ``quantile_cont`` does. One window and one grouping read the frame once
    for every value (DuckDB computes a relation read twice in one query
    twice). Spark does the same (:func:`_spark_quantiles`): its exact
    ``percentile`` serializes a group's values whole. Polars holds several
    times the values of the groups it aggregates (a quantile of 6.3M run
    times by task peaked at 660 MiB); it aggregates the groups in
    :data:`QUANTILE_SETS` sets by a hash of their keys, one after another
    (227 MiB), each group whole in one set.

    Examples:
        >>> import polars as pl
        >>> frame = lazy(pl.DataFrame({"g": ["a", "a", "a", "b"], "x": [1.0, 2.0, 4.0, None]}), caller="x")
        >>> group_quantiles(frame, ["g"], {"p": "x"}, 0.5, count="n").sort("g").collect().rows()
        [('a', 3, 2.0), ('b', 1, None)]
    """
    keys = list(keys)
    if is_spark(frame.implementation):
        return _group_quantiles_spark(frame, keys, values, q, count=count)
    if not frame.implementation.is_duckdb():
        stats = {count: nw.len(), **{n: quantile(nw.col(c), q) for n, c in values.items()}}
        if not keys:
            return frame.select(**stats)
        if not frame.implementation.is_polars():
            return frame.group_by(*keys, drop_null_keys=True).agg(**stats)
        # Polars: the groups in QUANTILE_SETS sets by a hash of their keys, one set after
        # another (a group's rows are all in one set: the same figures)
        key = pl.struct(keys).hash() if len(keys) > 1 else pl.col(keys[0]).hash()
        rows: pl.LazyFrame = frame.to_native()
        sets = [
            nw.from_native(rows.filter(key % QUANTILE_SETS == k))
            .group_by(*keys, drop_null_keys=True)
            .agg(**stats)
            .to_native()
            for k in range(QUANTILE_SETS)
        ]
        return nw.from_native(pl.concat(sets, parallel=False))
    name = f"_trs_q_{uuid.uuid4().hex}"
    quoted = [sql_name(k) for k in keys]
    listed = "".join(f"{k}, " for k in quoted)
    by = f"PARTITION BY {', '.join(quoted)}" if keys else ""
    present = " AND ".join(f"{k} IS NOT NULL" for k in quoted) or "TRUE"
    ranked, ends, picked = [], [], []
    for i, (out, column) in enumerate(values.items()):
        x = sql_name(column)
        # the value's rank in its group (nulls last) and (n - 1) * q over the n non-null ones
        ranked.append(
            f"CAST({x} AS DOUBLE) AS _x{i}, row_number() OVER ({by} ORDER BY {x} NULLS LAST) "
            f"AS _i{i}, (count({x}) OVER ({by}) - 1) * {float(q)!r} AS _h{i}"
        )
        ends.append(
            f"any_value(_h{i}) AS _h{i}, min(_x{i}) FILTER (WHERE _i{i} = floor(_h{i}) + 1) "
            f"AS _lo{i}, max(_x{i}) FILTER (WHERE _i{i} = ceil(_h{i}) + 1) AS _hi{i}"
        )
        picked.append(f"_lo{i} + (_hi{i} - _lo{i}) * (_h{i} - floor(_h{i})) AS {sql_name(out)}")
    sql = f'SELECT {listed}{", ".join(ranked)} FROM "{name}" WHERE {present}'
    grouped = f" GROUP BY {', '.join(quoted)}" if keys else ""
    sql = f"SELECT {listed}count(*) AS _n, {', '.join(ends)} FROM ({sql}){grouped}"
    sql = f"SELECT {listed}_n AS {sql_name(count)}, {', '.join(picked)} FROM ({sql})"
    native = frame.select(*keys, *dict.fromkeys(values.values())).to_native()
    result: nw.LazyFrame[Any] = nw.from_native(native.query(name, sql))
    return result


def _group_quantiles_spark(
    frame: nw.LazyFrame[Any], keys: list[str], values: dict[str, str], q: float, *, count: str
) -> nw.LazyFrame[Any]:
    """:func:`group_quantiles` on Spark, from sorted values (:func:`_spark_quantiles`)."""
    from pyspark.sql import functions as f

    native = frame.select(*keys, *dict.fromkeys(values.values())).to_native()
    present = native.dropna(subset=keys) if keys else native
    picks = {out: (column, q) for out, column in values.items()}
    grouped = _spark_quantiles(present, keys, picks, {count: f.count(f.lit(1))})
    quantiles: nw.LazyFrame[Any] = nw.from_native(grouped)
    return quantiles


def describe(
    frame: nw.LazyFrame[Any], keys: Sequence[str], value: str, quantiles: dict[str, float]
) -> nw.LazyFrame[Any]:
    """Per group of ``keys`` (or over all rows): ``count``, ``nulls``, ``mean``, ``min``,
    each of ``quantiles`` (linear interpolation) and ``max`` of the column ``value``.

    Groups with null keys are kept. A quantile holds every value of its group
    in memory, and DuckDB cannot spill it; narwhals asks DuckDB for one
    ``quantile_cont`` per quantile, each with its own copy of the values, so
    on DuckDB the quantiles are one ``quantile_cont(value, [q, ...])`` (the
    aggregate a DuckDB expert writes): with four, ``summarize(run_time(...))``
    ran out of memory at a ``memory_limit`` where it runs with one
    (benchmarks/README.md, section 2b).
    """
    if is_spark(frame.implementation):
        return _describe_spark(frame, keys, value, quantiles)
    if not frame.implementation.is_duckdb():
        x = nw.col(value)
        stats = [
            x.count().alias("count"),
            x.null_count().alias("nulls"),
            x.mean().alias("mean"),
            x.min().alias("min"),
            *(quantile(x, q).alias(n) for n, q in quantiles.items()),
            x.max().alias("max"),
        ]
        if keys:
            return frame.group_by(*keys, drop_null_keys=False).agg(*stats)
        return frame.select(*stats)
    v = sql_name(value)
    group = ", ".join(sql_name(k) for k in keys)
    qs = ", ".join(repr(float(q)) for q in quantiles.values())
    aggregates = ", ".join(
        [
            *([group] if keys else []),
            f'count({v}) AS "count"',
            f'count(*) - count({v}) AS "nulls"',
            f'avg({v}) AS "mean"',
            f'min({v}) AS "min"',
            f'quantile_cont({v}, [{qs}]) AS "_q"',
            f'max({v}) AS "max"',
        ]
    )
    native = frame.select(*keys, value).to_native().aggregate(aggregates, group)
    picked = ", ".join(f'"_q"[{i}] AS {sql_name(n)}' for i, n in enumerate(quantiles, start=1))
    columns = ", ".join([*(sql_name(k) for k in keys), '"count"', '"nulls"', '"mean"', '"min"'])
    described: nw.LazyFrame[Any] = nw.from_native(native.project(f'{columns}, {picked}, "max"'))
    return described


def _describe_spark(
    frame: nw.LazyFrame[Any], keys: Sequence[str], value: str, quantiles: dict[str, float]
) -> nw.LazyFrame[Any]:
    """:func:`describe` on Spark, its quantiles from sorted values (:func:`_spark_quantiles`)."""
    from pyspark.sql import functions as f

    native, x = frame.select(*keys, value).to_native(), f.col(value)
    stats = {
        "count": f.count(x),
        "nulls": f.count(f.lit(1)) - f.count(x),
        "mean": f.avg(x),
        "min": f.min(x),
        "max": f.max(x),
    }
    grouped = _spark_quantiles(native, keys, {n: (value, q) for n, q in quantiles.items()}, stats)
    columns = [*keys, "count", "nulls", "mean", "min", *quantiles, "max"]
    described: nw.LazyFrame[Any] = nw.from_native(grouped.select(*columns))
    return described


def _spark_quantiles(
    native: Any, keys: Sequence[str], picks: dict[str, tuple[str, float]], stats: dict[str, Any]
) -> Any:
    """Per group of ``keys`` of the Spark DataFrame ``native`` (null keys are a group;
    no keys: all rows): each ``name: aggregate`` of ``stats`` (a Spark column), then for each
    ``name: (column, q)`` of ``picks`` the linear-interpolated ``q`` quantile of the
    column's non-null values (null when it has none).

    Spark's exact ``percentile`` keeps every value of its group in one buffer,
    which it serializes whole into one byte array between the partial and the
    final aggregation: the report's run time over 20M states (6.3M runs, one
    group) ran out of a 2 GiB driver heap there, and in local mode a task's
    ``OutOfMemoryError`` stops the whole JVM. So, as :func:`group_quantiles`
    does on DuckDB, each quantile is read from its group's sorted values: one
    window per column ranks them (``row_number``, nulls last) and counts the
    non-null ones (the same window, so one sort, which spills to disk); the
    grouping keeps the values ranked ``floor`` and ``ceil`` of ``(n - 1) * q``
    and interpolates between them as ``quantile_cont`` does.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as f

    columns = list(dict.fromkeys(column for column, _ in picks.values()))
    rows = native
    for i, column in enumerate(columns):
        window = Window.partitionBy(*keys).orderBy(f.col(column).asc_nulls_last())
        whole = window.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
        rows = rows.select(
            "*",
            f.row_number().over(window).alias(f"_i{i}"),
            (f.count(column).over(whole) - 1).cast("double").alias(f"_n{i}"),
        )
    ends, picked = [], []
    for k, (name, (column, q)) in enumerate(picks.items()):
        i = columns.index(column)
        x, rank, h = f.col(column).cast("double"), f.col(f"_i{i}"), f.col(f"_n{i}") * float(q)
        ends += [
            f.max(f.when(rank == f.floor(h) + 1, x)).alias(f"_lo{k}"),
            f.max(f.when(rank == f.ceil(h) + 1, x)).alias(f"_hi{k}"),
            f.first(h).alias(f"_h{k}"),
        ]
        lo, hi, at = f.col(f"_lo{k}"), f.col(f"_hi{k}"), f.col(f"_h{k}")
        picked.append((lo + (hi - lo) * (at - f.floor(at))).alias(name))
    aggregates = [*(aggregate.alias(name) for name, aggregate in stats.items()), *ends]
    grouped = rows.groupBy(*keys).agg(*aggregates) if keys else rows.agg(*aggregates)
    return grouped.select(*keys, *stats, *picked)


def has_ordered_last(frame: nw.LazyFrame[Any]) -> bool:
    """Whether ``frame``'s engine aggregates ``last(order_by=...)`` in a group-by.

    Polars and DuckDB do; narwhals' PySpark backend does not (yet).
    """
    return not is_spark(frame.implementation)


def distinct(frame: nw.LazyFrame[Any], subset: Sequence[str]) -> nw.LazyFrame[Any]:
    """Keep one row (any) of each group of rows equal on ``subset``; nulls compare equal.

    A hash de-duplication on every engine. On Polars it is a filter on
    ``is_first_distinct``, which is many times faster than ``unique`` when the
    frame carries wide columns (a list of tags, long strings).
    """
    if not frame.implementation.is_polars():
        return frame.unique(subset=list(subset), keep="any")
    native: pl.LazyFrame = frame.to_native()
    if len(subset) > 1:
        return nw.from_native(native.filter(pl.struct(*subset).is_first_distinct()))
    # Hashing long strings (state ids) is cheap, comparing them is not: rows
    # whose 64-bit hash is unique are kept at once, and only the rows sharing
    # a hash (the true repeats, and any collision) are compared exactly.
    key = pl.col(subset[0])
    flagged = native.with_columns(_repeat=key.hash().is_duplicated())
    repeats = flagged.filter(pl.col("_repeat")).filter(key.is_first_distinct())
    kept = pl.concat([flagged.filter(~pl.col("_repeat")), repeats], how="vertical")
    return nw.from_native(kept.drop("_repeat"))


def to_polars(frame: Any, *, read_again: bool = False) -> pl.DataFrame:
    """Compute a frame of any supported engine into a Polars DataFrame.

    Small results (aggregates, what a chart draws) come to Polars this way.
    Durations stay durations: DuckDB's ``INTERVAL`` (which Polars cannot read
    from Arrow) is read through its microseconds. Whole decimals (DuckDB's
    ``sum`` of integers is a ``DECIMAL(38,0)``) become ``Int64`` counts, so a
    chart's JSON holds numbers, not strings.

    ``read_again``: a Polars plan that reads one part more than once reads
    it again each time, instead of computing it once and holding it (no
    common-subplan elimination; an explicit ``LazyFrame.cache`` still
    holds). For plans over files, where holding the part costs more memory
    than reading it again costs time: the check's SLA query over the run
    table of 20M states held 6.3M runs' columns (1,101 MiB, against 626).

    Examples:
        >>> import duckdb
        >>> to_polars(duckdb.sql("SELECT INTERVAL 90 SECOND AS d"))["d"].to_list()
        [datetime.timedelta(seconds=90)]
    """
    if isinstance(frame, pl.DataFrame):
        return frame
    if isinstance(frame, pl.LazyFrame):
        return frame.collect(optimizations=pl.QueryOptFlags(comm_subplan_elim=not read_again))
    wrapped = lazy(frame, caller="to_polars")
    spans = [c for c in wrapped.collect_schema().names() if is_duration(wrapped, c)]
    if spans and wrapped.implementation.is_duckdb():
        micros = wrapped.to_native().project(_replaced("epoch_us", spans))
        out = pl.from_arrow(micros.to_arrow_table())
        assert isinstance(out, pl.DataFrame)
        return _whole_counts(out.with_columns(pl.col(c).cast(pl.Duration("us")) for c in spans))
    collected: pl.DataFrame = wrapped.collect(backend="polars").to_native()
    return _whole_counts(collected)


def _whole_counts(frame: pl.DataFrame) -> pl.DataFrame:
    """Whole decimals (``DECIMAL(p, 0)``) as ``Int64``."""
    whole = [c for c, t in frame.schema.items() if isinstance(t, pl.Decimal) and t.scale == 0]
    return frame.with_columns(pl.col(whole).cast(pl.Int64)) if whole else frame


def is_duration(frame: nw.LazyFrame[Any], column: str) -> bool:
    """Whether ``column`` holds durations (narwhals does not map Spark's intervals)."""
    if isinstance(frame.collect_schema()[column], nw.Duration):
        return True
    if is_spark(frame.implementation):
        from pyspark.sql.types import DayTimeIntervalType

        return isinstance(frame.to_native().schema[column].dataType, DayTimeIntervalType)
    return False


def require_utc(frame: nw.LazyFrame[Any], column: str, *, caller: str) -> None:
    """Refuse a ``column`` that is not a time-zone-aware timestamp.

    Raises:
        SchemaError: naming the dtype found, with a hint on how to fix it.
    """
    dtype = frame.collect_schema()[column]
    if not isinstance(dtype, nw.Datetime):
        msg = (
            f"{caller}() needs column {column!r} of type Datetime, found {dtype}. "
            f"Hint: parse it with pl.col({column!r}).str.to_datetime(time_zone='UTC')."
        )
        raise SchemaError(msg)
    if dtype.time_zone is None:
        msg = (
            f"{caller}() needs a time-zone-aware {column!r}, found {dtype} without a "
            "time zone. Hint: if the values are UTC, use "
            f"pl.col({column!r}).dt.replace_time_zone('UTC') (DuckDB: TIMESTAMPTZ)."
        )
        raise SchemaError(msg)

"""The engines a states frame can live on: Polars (default), DuckDB and PySpark.

Polars is always installed; DuckDB and PySpark are optional extras
(``pip install 'trs-analytics[duckdb]'``, ``'trs-analytics[spark]'``). This
module names the engines, imports an optional one only when it is asked for
(with an error naming the extra when it is missing), and tells which engine a
native frame belongs to. It imports nothing from the other layers, so every
layer may use it.

Two traps every engine but Polars sets: there is no ``Enum`` (``type`` is a
plain string there), and a timestamp is shown and bucketed in the *session's*
time zone (DuckDB's ``TimeZone`` setting, Spark's ``spark.sql.session.timeZone``),
which must be UTC for days to be UTC days. :func:`check_duckdb_utc` and
:func:`check_spark_utc` refuse a connection or session that is not UTC.
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from trs_analytics.exceptions import ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "ENGINES",
    "UTC_NAMES",
    "Engine",
    "MissingDependencyError",
    "check_duckdb_utc",
    "check_engine",
    "check_spark_utc",
    "engine_of",
    "import_engine",
    "out_of_memory",
    "spark_session",
    "spark_size",
    "sql_name",
    "sql_text",
]

#: An engine name, as ``scan_states(..., engine=...)`` takes it.
Engine = Literal["polars", "duckdb", "spark"]

#: Every engine name, the default first.
ENGINES: Final[tuple[Engine, ...]] = get_args(Engine)

#: The module each engine needs, and the extra that installs it.
_MODULES: Final[dict[Engine, tuple[str, str]]] = {
    "polars": ("polars", ""),
    "duckdb": ("duckdb", "duckdb"),
    "spark": ("pyspark", "spark"),
}

#: Time-zone names that mean UTC, as DuckDB and Spark report them.
UTC_NAMES: Final = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z", "+00:00", "UTC+00:00"})


def check_engine(engine: str) -> Engine:
    """Return ``engine`` when it names an engine, or raise :class:`ConfigurationError`.

    Examples:
        >>> check_engine("duckdb")
        'duckdb'
        >>> check_engine("pandas")
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: engine='pandas' is not an engine trs_analytics runs on; expected one of 'polars', 'duckdb', 'spark'. Hint: convert a pandas frame with polars.from_pandas() and use engine='polars'.
    """
    if engine in ENGINES:
        return engine
    names = ", ".join(repr(e) for e in ENGINES)
    msg = (
        f"engine={engine!r} is not an engine trs_analytics runs on; expected one of {names}. "
        "Hint: convert a pandas frame with polars.from_pandas() and use engine='polars'."
    )
    raise ConfigurationError(msg)


def import_engine(engine: str) -> ModuleType:
    """Import and return the module behind ``engine`` (``polars``, ``duckdb``, ``pyspark``).

    Raises:
        ConfigurationError: ``engine`` is not an engine name.
        MissingDependencyError: the engine's package is not installed; the
            message names the extra that installs it.

    Examples:
        >>> import_engine("polars").__name__
        'polars'
        >>> import_engine("duckdb").__name__
        'duckdb'
    """
    module, extra = _MODULES[check_engine(engine)]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        msg = (
            f"engine={engine!r} needs {module}, which is not installed ({err}). "
            f"Hint: pip install 'trs-analytics[{extra}]'."
        )
        raise MissingDependencyError(msg) from err


def engine_of(frame: object) -> Engine | None:
    """The engine a native frame belongs to, or ``None`` for anything else.

    Polars DataFrame and LazyFrame give ``"polars"``, a DuckDB relation
    ``"duckdb"``, a PySpark DataFrame (classic or Connect) ``"spark"``. The
    test looks at the class's module, so it imports no optional package.

    Examples:
        >>> import duckdb, polars as pl
        >>> engine_of(pl.DataFrame({"a": [1]}).lazy())
        'polars'
        >>> engine_of(duckdb.sql("SELECT 1 AS a"))
        'duckdb'
        >>> engine_of([1, 2]) is None
        True
    """
    module = type(frame).__module__
    root = module.split(".", 1)[0]
    if root == "polars":
        return "polars"
    if root in ("duckdb", "_duckdb"):
        return "duckdb"
    if root == "pyspark" and type(frame).__name__ == "DataFrame":
        return "spark"
    return None


def check_duckdb_utc(connection: Any) -> None:
    """Raise :class:`ConfigurationError` unless the DuckDB connection's ``TimeZone`` is UTC.

    DuckDB truncates a ``TIMESTAMPTZ`` to days in the connection's time zone, so
    a non-UTC connection would put runs in the wrong day.

    Examples:
        >>> import duckdb
        >>> con = duckdb.connect()
        >>> _ = con.sql("SET TimeZone = 'Europe/Paris'")
        >>> check_duckdb_utc(con)
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: the DuckDB connection's TimeZone is 'Europe/Paris', expected UTC (days and hours are bucketed in it). Hint: run connection.sql("SET TimeZone = 'UTC'") first.
        >>> _ = con.sql("SET TimeZone = 'UTC'")
        >>> check_duckdb_utc(con)
    """
    rows = connection.sql("SELECT current_setting('TimeZone')").fetchall()
    zone = str(rows[0][0]) if rows else ""
    if zone not in UTC_NAMES:
        msg = (
            f"the DuckDB connection's TimeZone is {zone!r}, expected UTC (days and hours are "
            "bucketed in it). Hint: run connection.sql(\"SET TimeZone = 'UTC'\") first."
        )
        raise ConfigurationError(msg)


def spark_session(*, driver_memory: str | None = None) -> Any:
    """The SparkSession trs_analytics reads on: the active one, or a new local one in UTC.

    ``driver_memory`` (``"2GB"``, ``"512m"``) is the new session's
    ``spark.driver.memory``, the heap of the JVM that runs a local session's
    work: Spark's default, 1g, ran out of memory on the check of 20M states.
    It cannot change a session that is already running (its JVM has started).

    Raises:
        ConfigurationError: ``driver_memory`` is not a size, or is given while
            a session is already active; the active session is not in UTC.
    """
    memory = None if driver_memory is None else spark_size(driver_memory)
    pyspark_sql = import_engine("spark").sql  # the extra's presence, checked with its hint
    active = pyspark_sql.SparkSession.getActiveSession()
    if active is not None:
        if memory is not None:
            msg = (
                f"a SparkSession is already running, so its driver memory cannot be set to "
                f"{driver_memory!r}. Hint: set spark.driver.memory where that session is built "
                "(spark-submit --driver-memory), or leave out --memory-limit."
            )
            raise ConfigurationError(msg)
        check_spark_utc(active)
        return active
    builder = pyspark_sql.SparkSession.builder.appName("trs_analytics")
    builder = builder.config("spark.sql.session.timeZone", "UTC")
    if memory is not None:
        builder = builder.config("spark.driver.memory", memory)
    return builder.getOrCreate()


def spark_size(size: str) -> str:
    """A size such as ``2GB``, ``1.5GiB`` or ``512m`` as Spark writes one: whole MiB (``2048m``).

    Raises:
        ConfigurationError: ``size`` is not a number and a unit (k, m, g, t).

    Examples:
        >>> spark_size("2GB"), spark_size("1.5GiB"), spark_size("512m")
        ('2048m', '1536m', '512m')
    """
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt])(?:i?b)?\s*", size, flags=re.IGNORECASE)
    if found is None:
        msg = (
            f"{size!r} is not a size Spark understands. Hint: use a number and a unit, "
            "such as 2GB or 512MB."
        )
        raise ConfigurationError(msg)
    mib = float(found[1]) * {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024**2}[found[2].lower()]
    return f"{max(1, round(mib))}m"


_SPARK_MEMORY_HINT: Final = (
    "give the local session more with --memory-limit 4GB (spark.driver.memory), or submit "
    "the job to a cluster (docs/engines.md)."
)


def out_of_memory(err: BaseException) -> str | None:
    """What to tell a user whose engine ran out of memory (``err``); None for another error.

    Spark's JVM heap (a ``java.lang.OutOfMemoryError`` inside a Py4J error),
    Spark's execution memory (its ``SparkOutOfMemoryError``, e.g.
    ``AGGREGATE_OUT_OF_MEMORY``) and DuckDB's ``memory_limit``
    (``duckdb.OutOfMemoryException``).
    """
    try:
        text = " ".join(str(err).split())
    except Exception:  # a Py4J error's text is asked of its JVM, which may be gone
        text = ""
    name = type(err).__name__
    if name == "Py4JNetworkError" or (name.startswith("Py4J") and not text):
        return (
            "Spark's JVM stopped while the command ran: in local mode a task that runs out of "
            f"memory stops the whole JVM. Hint: {_SPARK_MEMORY_HINT}"
        )
    if name == "Py4JJavaError" and "java.lang.OutOfMemoryError" in text:
        return f"Spark ran out of memory (java.lang.OutOfMemoryError in its JVM). Hint: {_SPARK_MEMORY_HINT}"
    if name.startswith("Py4J") and "SparkOutOfMemoryError" in text:
        # Spark's own: an operator got no more execution memory (AGGREGATE_OUT_OF_MEMORY, ...)
        return (
            f"Spark ran out of execution memory (SparkOutOfMemoryError). Hint: {_SPARK_MEMORY_HINT}"
        )
    module = type(err).__module__.lstrip("_")  # DuckDB's exceptions live in _duckdb
    if name == "OutOfMemoryException" and module.startswith("duckdb"):
        return (
            f"DuckDB ran out of memory ({text[:200]}). Hint: raise --memory-limit, or free "
            "room in the temporary folder it spills to (TMPDIR)."
        )
    return None


def check_spark_utc(spark: Any) -> None:
    """Raise :class:`ConfigurationError` unless ``spark.sql.session.timeZone`` is UTC.

    Spark reads a Parquet UTC timestamp as an instant but shows it, casts it to
    a date and truncates it in the session time zone (the JVM's zone unless
    set), so a non-UTC session would put runs in the wrong day.
    """
    zone = str(spark.conf.get("spark.sql.session.timeZone"))
    if zone not in UTC_NAMES:
        msg = (
            f"the SparkSession's spark.sql.session.timeZone is {zone!r}, expected UTC (days and "
            "hours are bucketed in it). Hint: spark.conf.set('spark.sql.session.timeZone', "
            "'UTC'), or build the session with .config('spark.sql.session.timeZone', 'UTC')."
        )
        raise ConfigurationError(msg)


def sql_name(name: str) -> str:
    """``name`` as a quoted DuckDB SQL identifier: any name, a double quote in it doubled.

    Examples:
        >>> print(sql_name("task_name"), sql_name('a"b'))
        "task_name" "a""b"
    """
    return '"' + name.replace('"', '""') + '"'


def sql_text(text: str) -> str:
    """``text`` as a DuckDB SQL string literal (a path, a setting): a single quote in it doubled.

    Examples:
        >>> print(sql_text("/tmp/it's/kept.parquet"))
        '/tmp/it''s/kept.parquet'
    """
    return "'" + text.replace("'", "''") + "'"

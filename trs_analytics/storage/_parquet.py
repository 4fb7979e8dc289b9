"""Parquet files and folders of states, written atomically, read lazily.

Every reader and writer here takes a :class:`~trs_analytics.schema.RunKind`:
:func:`scan_states` and :func:`scan_flow_run_states` (and the two writers) are
two-line wrappers around one path.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast, overload

import polars as pl

from trs_analytics._atomic import atomic_write
from trs_analytics.engines import (
    Engine,
    check_duckdb_utc,
    check_engine,
    check_spark_utc,
    import_engine,
    spark_session,
    sql_name,
)
from trs_analytics.exceptions import ConfigurationError, SchemaError, StorageError
from trs_analytics.schema import FLOW_RUNS, SCHEMA_VERSION, TASK_RUNS, validate_states

if TYPE_CHECKING:
    from collections.abc import Iterator

    import duckdb
    import pyspark.sql

    from trs_analytics.schema import RunKind

__all__ = [
    "FLOW_RUN_TABLE",
    "SCHEMA_VERSION_KEY",
    "atomic_write_parquet",
    "check_path",
    "find_damaged_file",
    "list_parquet_files",
    "read_marker",
    "read_states_files",
    "require_parquet",
    "scan_flow_run_states",
    "scan_states",
    "write_flow_run_states",
    "write_states",
]

#: The sub-folder of a dataset that holds its flow-run states table
#: (``FLOW_RUNS.folder``). Its name starts with ``_`` so that every reader of
#: the task-run table (this module, Spark, pyarrow) skips it.
FLOW_RUN_TABLE = FLOW_RUNS.folder
#: The file that marks a folder as a trs_analytics dataset (see ``storage._dataset``).
MARKER_NAME = "_trs_dataset.json"
#: The marker's ``format`` and the newest ``format_version`` this package reads.
MARKER_FORMAT = "trs_analytics.dataset"
MARKER_VERSION = 1
#: The one name a folder of a dataset's rows has: ``day=YYYY-MM-DD``, a real UTC day.
_DAY_FOLDER = re.compile(r"day=(\d{4}-\d{2}-\d{2})")

logger = logging.getLogger("trs_analytics.storage")

#: Parquet key-value metadata entry holding :data:`trs_analytics.schema.SCHEMA_VERSION`.
SCHEMA_VERSION_KEY = "trs_analytics.schema_version"

Compression = Literal["zstd", "lz4", "snappy", "gzip", "brotli", "uncompressed"]


def atomic_write_parquet(
    frame: pl.DataFrame,
    path: Path,
    *,
    compression: Compression = "zstd",
    compression_level: int | None = None,
    schema_version: int = SCHEMA_VERSION,
) -> Path:
    """Write ``frame`` to ``path`` so that readers see the old file or the new one, never half.

    ``schema_version`` goes into the file's metadata (the flow-run table has its own).

    The frame goes to a hidden temporary file in the same folder, is flushed to
    disk, then renamed over ``path`` (see :mod:`trs_analytics._atomic`).

    Raises:
        StorageError: the file cannot be written (full disk, read-only folder).
    """

    def write(handle: BinaryIO) -> None:
        kept = _KeepsOSError(handle)
        try:
            frame.write_parquet(
                cast("BinaryIO", kept),
                compression=compression,
                compression_level=compression_level,
                metadata={SCHEMA_VERSION_KEY: str(schema_version)},
            )
        except pl.exceptions.ComputeError as err:
            if kept.error is not None:  # a full disk, an I/O error: a StorageError with its hint
                raise kept.error from err
            raise

    return atomic_write(path, write)


class _KeepsOSError:
    """A binary handle that keeps the ``OSError`` its writes raised.

    Polars reports a failed write to a file object (a full disk mid-file) as a
    ``ComputeError`` that no longer carries the ``OSError``; kept here, it is
    raised again so that :func:`~trs_analytics._atomic.atomic_write` turns it
    into a :class:`~trs_analytics.exceptions.StorageError` like any failed write.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        try:
            self.handle.flush()
        except OSError as err:
            self.error = err
            raise


def write_states(
    frame: pl.DataFrame,
    path: str | os.PathLike[str],
    *,
    compression: Compression = "zstd",
    compression_level: int | None = None,
) -> Path:
    """Write a states frame to one Parquet file, atomically, with the schema version.

    Args:
        frame: a frame in the contract's schema (:data:`trs_analytics.STATES_SCHEMA`).
        path: the file to write (its folder is created).
        compression: Parquet compression codec.
        compression_level: codec level, or the codec's default.

    Raises:
        SchemaError: when ``frame`` is not in the contract's schema.

    Examples:
        >>> import tempfile, trs_analytics as ta
        >>> folder = tempfile.mkdtemp()
        >>> path = ta.write_states(ta.empty_states(), f"{folder}/states.parquet")
        >>> ta.scan_states(path).collect_schema() == ta.STATES_SCHEMA
        True
    """
    return _write(TASK_RUNS, frame, path, compression, compression_level)


def write_flow_run_states(
    frame: pl.DataFrame,
    path: str | os.PathLike[str],
    *,
    compression: Compression = "zstd",
    compression_level: int | None = None,
) -> Path:
    """Write a flow-run states frame to one Parquet file, as :func:`write_states` does.

    Args: as :func:`write_states`; ``frame`` in :data:`trs_analytics.FLOW_RUN_STATES_SCHEMA`.

    Examples:
        >>> import tempfile, trs_analytics as ta
        >>> path = write_flow_run_states(ta.empty_flow_run_states(), f"{tempfile.mkdtemp()}/f.parquet")
        >>> ta.scan_flow_run_states(path).collect_schema() == ta.FLOW_RUN_STATES_SCHEMA
        True
    """
    return _write(FLOW_RUNS, frame, path, compression, compression_level)


def _write(
    kind: RunKind,
    frame: pl.DataFrame,
    path: str | os.PathLike[str],
    compression: Compression,
    compression_level: int | None,
) -> Path:
    validate_states(frame, kind)
    return atomic_write_parquet(
        frame.select(kind.schema.names()),
        Path(path),
        compression=compression,
        compression_level=compression_level,
        schema_version=kind.schema_version,
    )


def is_day_folder(name: str) -> bool:
    """Whether ``name`` is a valid day partition, ``day=`` and a real date.

    Examples:
        >>> is_day_folder("day=2026-01-31"), is_day_folder("day=2026-13-45"), is_day_folder("x")
        (True, False, False)
    """
    match = _DAY_FOLDER.fullmatch(name)
    if match is None:
        return False
    try:
        date.fromisoformat(match[1])
    except ValueError:
        return False
    return True


def _not_data(entry: Path, why: str) -> StorageError:
    msg = (
        f"{entry} {why}, so it is not read as data (it could hold rows twice). Hint: move it "
        "out of the dataset folder; a dataset holds only day=YYYY-MM-DD/part-NNNNN.parquet."
    )
    return StorageError(msg)


def list_parquet_files(folder: Path) -> list[Path]:
    """Every ``*.parquet`` below ``folder``, sorted, skipping hidden (``.``/``_``) names.

    The one place that decides which files are data. Below a dataset (a folder
    with a marker) only ``day=YYYY-MM-DD/part-*.parquet`` files are; anywhere,
    a folder named ``day=`` with no real date is refused.

    Raises:
        StorageError: a folder named like a partition but not one, or Parquet files
            in a dataset outside its day partitions.
    """
    dataset = (folder / MARKER_NAME).is_file()

    def walk(at: Path) -> Iterator[Path]:
        for entry in sorted(at.iterdir()):
            if entry.name.startswith((".", "_")):
                continue
            if entry.is_dir():
                if entry.name.startswith("day=") and not is_day_folder(entry.name):
                    raise _not_data(entry, "is named like a day partition but is not one")
                if dataset and at == folder and not entry.name.startswith("day="):
                    if any(entry.rglob("*.parquet")):
                        raise _not_data(entry, "holds Parquet files outside a day partition")
                    continue
                yield from walk(entry)
            elif entry.suffix == ".parquet":
                if dataset and at == folder:
                    raise _not_data(entry, "is a Parquet file outside a day partition")
                yield entry

    return list(walk(folder))


def require_parquet(path: str | os.PathLike[str], *, to: str = "read") -> None:
    """Raise :class:`StorageError` when the folder ``path`` holds no Parquet files to ``to``.

    A file, a URI or a folder with Parquet files passes. An empty folder (or a
    dataset with no states yet) is said first, instead of an empty result.

    Examples:
        >>> import tempfile
        >>> require_parquet("data/sample_states.parquet", to="check")
        >>> require_parquet(tempfile.mkdtemp(), to="check")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.StorageError: ... holds no Parquet files, so there is nothing to check (folder with no states yet). Hint: ...
    """
    folder = Path(path)
    if _is_uri(path) or not folder.is_dir() or list_parquet_files(folder):
        return
    kind = "dataset" if (folder / MARKER_NAME).is_file() else "folder"
    msg = (
        f"{folder} holds no Parquet files, so there is nothing to {to} ({kind} with no "
        "states yet). Hint: pass a Parquet file of states or a folder written by "
        "'trs-analytics export', such as data/sample_states.parquet."
    )
    raise StorageError(msg)


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The checked JSON object of ``folder``'s dataset marker; ``None`` when it has none.

    Every reader goes through this: ``export``, ``info``, ``report``, ``check``
    and the scans refuse the same markers.

    Raises:
        StorageError: the marker is a link, damaged, of another format or of a
            newer format version than this package reads.
    """
    marker = folder / MARKER_NAME
    if marker.is_symlink():
        msg = (
            f"{marker} is a symbolic link; a dataset's marker is never followed. "
            "Hint: replace the link by the file it points to, or export into a new folder."
        )
        raise StorageError(msg)
    if not marker.exists():
        return None
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        msg = (
            f"{marker} cannot be read as JSON ({err}). Hint: the dataset's marker is damaged; "
            "restore it from a backup, or export into a new folder."
        )
        raise StorageError(msg) from err
    if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT:
        msg = (
            f"{marker} is not a trs_analytics dataset marker (expected format "
            f"{MARKER_FORMAT!r}). Hint: export into a new folder."
        )
        raise StorageError(msg)
    version = data.get("format_version", 0)
    if not isinstance(version, int) or version > MARKER_VERSION:
        msg = (
            f"{marker} has format version {version!r}, newer than this trs_analytics "
            f"understands ({MARKER_VERSION}). Hint: upgrade trs_analytics."
        )
        raise StorageError(msg)
    return data


_MAGIC = b"PAR1"


def _check_file(file: Path, kind: RunKind = TASK_RUNS) -> None:
    try:
        with file.open("rb") as handle:
            head = handle.read(len(_MAGIC))
    except OSError as err:
        msg = f"cannot read {file}: {err.strerror}. Hint: check the path and its permissions."
        raise StorageError(msg) from err
    if head != _MAGIC:
        msg = (
            f"{file} is not a readable Parquet file: it is not Parquet at all (it does not "
            f"start with {_MAGIC.decode()}; a CSV or another format?). Hint: pass a Parquet "
            "file of states, or a folder written by 'trs-analytics export'."
        )
        raise StorageError(msg)
    try:
        schema = pl.read_parquet_schema(file)
    except Exception as err:  # polars raises several kinds for a damaged file
        msg = (
            f"{file} is not a readable Parquet file ({type(err).__name__}: {str(err)[:160]}). "
            "Hint: it may have been damaged; move it out of the dataset and export again."
        )
        raise StorageError(msg) from err
    added = {c: kind.schema[c] for c in kind.added_columns if c not in schema}
    try:
        validate_states(pl.LazyFrame(schema={**added, **schema}), kind)
    except SchemaError as err:
        msg = (
            f"{file} does not hold {kind.api.replace('_', ' ')} in the trs_analytics schema: {err}"
        )
        raise StorageError(msg) from err


def find_damaged_file(path: str | os.PathLike[str]) -> StorageError | None:
    """After an engine failed reading ``path``: the error that names its damaged file.

    Reads each Parquet file of ``path`` in full (slow, but only once something
    went wrong), and returns a :class:`StorageError` for the first that cannot
    be read; ``None`` when all can (the failure was something else).

    Examples:
        >>> find_damaged_file("data/sample_states.parquet") is None
        True
    """
    if _is_uri(path):
        return None
    root = Path(path)
    try:
        files = [root] if root.is_file() else list_parquet_files(root)
    except (OSError, StorageError):
        return None
    for file in files:
        try:
            pl.read_parquet(file, hive_partitioning=False)
        except Exception as err:  # polars raises several kinds for a damaged file
            msg = (
                f"{file} cannot be read: it is damaged ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:160] if str(err) else ''}). Hint: move it out of "
                "the dataset and export its days again with --since."
            )
            return StorageError(msg)
    return None


#: A path another engine reads itself: ``s3://``, ``gs://``, ``abfss://``, ``dbfs:/``, ...
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


def _is_uri(path: str | os.PathLike[str]) -> bool:
    return isinstance(path, str) and _URI.match(path) is not None


def check_path(path: object, name: str = "path") -> None:
    """``path`` is a ``str`` or an ``os.PathLike`` (else a ConfigurationError naming it).

    Examples:
        >>> check_path(123)
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: path must be a folder or file path (str or pathlib.Path), got int 123.
    """
    if not isinstance(path, str | os.PathLike) or isinstance(path, bytes):
        msg = (
            f"{name} must be a folder or file path (str or pathlib.Path), got "
            f"{type(path).__name__} {path!r:.40}."
        )
        raise ConfigurationError(msg)


def _local_files(path: str | os.PathLike[str], kind: RunKind) -> list[Path]:
    """The checked Parquet files of a local file or dataset folder."""
    check_path(path)
    root = Path(path)
    in_dataset = kind.folder and root.name == kind.folder and (root.parent / MARKER_NAME).exists()
    if in_dataset and not root.exists():
        return []  # a dataset exported before it had this kind's table
    if not root.exists():
        msg = f"{root} does not exist. Hint: export states there first, or check the path."
        raise StorageError(msg)
    if root.is_dir():
        read_marker(root)  # a marker this package cannot read: refuse, as export does
    files = [root] if root.is_file() else list_parquet_files(root)
    for file in files:
        _check_file(file, kind)
    return files


@overload
def scan_states(
    path: str | os.PathLike[str],
    engine: Literal["polars"] = ...,
    *,
    connection: None = ...,
    spark: None = ...,
) -> pl.LazyFrame: ...


@overload
def scan_states(
    path: str | os.PathLike[str],
    engine: Literal["duckdb"],
    *,
    connection: duckdb.DuckDBPyConnection | None = ...,
    spark: None = ...,
) -> duckdb.DuckDBPyRelation: ...


@overload
def scan_states(
    path: str | os.PathLike[str],
    engine: Literal["spark"],
    *,
    connection: None = ...,
    spark: pyspark.sql.SparkSession | None = ...,
) -> pyspark.sql.DataFrame: ...


@overload
def scan_states(
    path: str | os.PathLike[str],
    engine: Engine = ...,
    *,
    connection: duckdb.DuckDBPyConnection | None = ...,
    spark: pyspark.sql.SparkSession | None = ...,
) -> pl.LazyFrame | duckdb.DuckDBPyRelation | pyspark.sql.DataFrame: ...


def scan_states(
    path: str | os.PathLike[str],
    engine: Engine = "polars",
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
    spark: pyspark.sql.SparkSession | None = None,
) -> pl.LazyFrame | duckdb.DuckDBPyRelation | pyspark.sql.DataFrame:
    """Lazily read states from a Parquet file or a dataset folder, on one engine.

    A dataset is what ``trs-analytics export`` writes (``day=YYYY-MM-DD/part-*.parquet``);
    the ``day`` partition is not a column of the result. Hidden files (``.`` or
    ``_`` prefix, such as in-progress writes) are skipped, and every file's
    schema is checked against the contract before the scan is built.

    Every engine gives the contract's columns (:data:`~trs_analytics.STATES_SCHEMA`)
    with UTC timestamps. On DuckDB and Spark, which have no ``Enum``, ``type``
    is a string; timestamps are ``TIMESTAMP WITH TIME ZONE`` (DuckDB) or
    ``TimestampType`` (Spark), both shown in the session time zone, which must
    be UTC.

    Args:
        path: a ``.parquet`` file or a dataset folder. With ``engine="duckdb"``
            or ``"spark"`` it may also be a URI the engine reads itself
            (``s3://bucket/states/``, ``dbfs:/states/``); then the files are
            not checked here.
        engine: ``"polars"`` (a ``pl.LazyFrame``), ``"duckdb"`` (a
            ``duckdb.DuckDBPyRelation``) or ``"spark"`` (a ``pyspark.sql.DataFrame``).
        connection: the DuckDB connection to read on (its ``TimeZone`` must be
            UTC); by default a new in-memory connection set to UTC.
        spark: the SparkSession to read on (its ``spark.sql.session.timeZone``
            must be UTC); by default the active session, or a new local one,
            with the session time zone set to UTC.

    Raises:
        StorageError: the path does not exist, or a file is damaged or holds
            something other than states.
        ConfigurationError: an unknown engine, an argument for another engine,
            or a connection or session whose time zone is not UTC.
        MissingDependencyError: the engine's package is not installed.

    Examples:
        >>> import tempfile, trs_analytics as ta
        >>> ta.scan_states(tempfile.mkdtemp()).collect().height
        0
        >>> rel = ta.scan_states("data/sample_states.parquet", engine="duckdb")
        >>> rel.aggregate("count(*) AS states, count(DISTINCT task_run_id) AS runs").fetchall()
        [(8928, 2760)]
        >>> dict(zip(rel.columns, map(str, rel.types)))["timestamp"]
        'TIMESTAMP WITH TIME ZONE'
        >>> rel.filter("type = 'FAILED'").aggregate("min(timestamp)").fetchall()[0][0].tzname()
        'UTC'
    """
    return _scan(TASK_RUNS, path, engine, connection, spark)


def _table_path(path: str | os.PathLike[str], kind: RunKind) -> str | os.PathLike[str]:
    """``kind``'s table of a dataset folder, or ``path`` itself (a file, or a table folder)."""
    if not kind.folder:
        return path
    if _is_uri(path):
        text = str(path)
        return text if text.endswith(".parquet") else f"{text.rstrip('/')}/{kind.folder}/"
    table = Path(path) / kind.folder
    return table if table.is_dir() or (Path(path) / MARKER_NAME).is_file() else path


def _scan(
    kind: RunKind,
    path: str | os.PathLike[str],
    engine: Engine,
    connection: duckdb.DuckDBPyConnection | None,
    spark: pyspark.sql.SparkSession | None,
) -> pl.LazyFrame | duckdb.DuckDBPyRelation | pyspark.sql.DataFrame:
    """:func:`scan_states` for ``kind``'s table of ``path``."""
    engine = check_engine(engine)
    if connection is not None and engine != "duckdb":
        msg = f"connection= is a DuckDB connection, but engine={engine!r}. Hint: pass engine='duckdb'."
        raise ConfigurationError(msg)
    if spark is not None and engine != "spark":
        msg = f"spark= is a SparkSession, but engine={engine!r}. Hint: pass engine='spark'."
        raise ConfigurationError(msg)
    check_path(path)
    table = _table_path(path, kind)
    if engine == "duckdb":
        return _scan_duckdb(table, connection, kind)
    if engine == "spark":
        return _scan_spark(table, spark, kind)
    return _scan_polars(table, kind)


def _scan_polars(path: str | os.PathLike[str], kind: RunKind) -> pl.LazyFrame:
    schema = kind.schema
    files = _local_files(path, kind)
    if not files:
        return pl.LazyFrame(schema=schema)
    return pl.scan_parquet(
        files,
        schema=schema,
        hive_partitioning=False,
        extra_columns="ignore",
        missing_columns="insert",
    )


def _sql_type(dtype: pl.DataType) -> str:
    """The DuckDB / Spark SQL type of a contract column (no Enum: ``type`` is a string)."""
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP"  # Spark's; DuckDB's is TIMESTAMPTZ (see _duckdb_type)
    if isinstance(dtype, pl.List):
        return "ARRAY<STRING>"
    return {pl.Int64: "BIGINT", pl.Boolean: "BOOLEAN"}.get(type(dtype), "STRING")


def _duckdb_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ"
    if isinstance(dtype, pl.List):
        return "VARCHAR[]"
    return _sql_type(dtype).replace("STRING", "VARCHAR")


def _scan_duckdb(
    path: str | os.PathLike[str],
    connection: duckdb.DuckDBPyConnection | None,
    kind: RunKind,
) -> duckdb.DuckDBPyRelation:
    schema = kind.schema
    duckdb = import_engine("duckdb")
    if connection is None:
        connection = duckdb.connect()
        connection.sql("SET TimeZone = 'UTC'")
    check_duckdb_utc(connection)
    casts = [
        f"CAST({sql_name(c)} AS {_duckdb_type(t)}) AS {sql_name(c)}" for c, t in schema.items()
    ]
    hidden = False
    if _is_uri(path):
        hidden = not str(path).endswith(".parquet")
        source: Any = (
            f"{str(path).rstrip('/')}/**/*.parquet"
            if not str(path).endswith(".parquet")
            else str(path)
        )
    else:
        files = _local_files(path, kind)
        if not files:
            empty = ", ".join(
                f"CAST(NULL AS {_duckdb_type(t)}) AS {sql_name(c)}" for c, t in schema.items()
            )
            return connection.sql(f"SELECT {empty} WHERE false")
        source = [str(f) for f in files]
    relation = connection.read_parquet(
        source, hive_partitioning=False, union_by_name=True, filename=hidden
    )
    if hidden:  # a glob of a folder: skip hidden names (the flow-run table among them)
        relation = relation.filter(r"NOT regexp_matches(filename, '/[_.][^/]*/')")
    # columns added by later schema versions are absent from older files: nulls
    have = set(relation.columns)
    casts = [
        cast if c in have else f"CAST(NULL AS {_duckdb_type(t)}) AS {sql_name(c)}"
        for cast, (c, t) in zip(casts, schema.items(), strict=True)
    ]
    return relation.select(", ".join(casts))


def _spark_session(spark: pyspark.sql.SparkSession | None) -> pyspark.sql.SparkSession:
    if spark is not None:
        check_spark_utc(spark)
        return spark
    return spark_session()  # type: ignore[no-any-return]


def _scan_spark(
    path: str | os.PathLike[str],
    spark: pyspark.sql.SparkSession | None,
    kind: RunKind,
) -> pyspark.sql.DataFrame:
    schema = kind.schema
    session = _spark_session(spark)
    columns = ", ".join(f"{c} {_sql_type(t)}" for c, t in schema.items())
    casts = [f"CAST(`{c}` AS {_sql_type(t)}) AS `{c}`" for c, t in schema.items()]
    if _is_uri(path):
        # Spark lists the folder itself (hidden _/. names are skipped by Spark too)
        reader = session.read.option("recursiveFileLookup", "true")
        frame = reader.option("pathGlobFilter", "*.parquet").parquet(str(path))
        return frame.selectExpr(*_present(casts, frame.columns, schema))
    files = _local_files(path, kind)
    if not files:
        return session.createDataFrame([], schema=columns)
    frame = session.read.option("mergeSchema", "true").parquet(*(str(f) for f in files))
    return frame.selectExpr(*_present(casts, frame.columns, schema))


def _present(casts: list[str], columns: list[str], schema: pl.Schema) -> list[str]:
    """Spark casts, with nulls for the columns added since older files were written."""
    have = set(columns)
    return [
        cast if c in have else f"CAST(NULL AS {_sql_type(t)}) AS `{c}`"
        for cast, (c, t) in zip(casts, schema.items(), strict=True)
    ]


@overload
def scan_flow_run_states(
    path: str | os.PathLike[str],
    engine: Literal["polars"] = ...,
    *,
    connection: None = ...,
    spark: None = ...,
) -> pl.LazyFrame: ...


@overload
def scan_flow_run_states(
    path: str | os.PathLike[str],
    engine: Literal["duckdb"],
    *,
    connection: duckdb.DuckDBPyConnection | None = ...,
    spark: None = ...,
) -> duckdb.DuckDBPyRelation: ...


@overload
def scan_flow_run_states(
    path: str | os.PathLike[str],
    engine: Literal["spark"],
    *,
    connection: None = ...,
    spark: pyspark.sql.SparkSession | None = ...,
) -> pyspark.sql.DataFrame: ...


@overload
def scan_flow_run_states(
    path: str | os.PathLike[str],
    engine: Engine = ...,
    *,
    connection: duckdb.DuckDBPyConnection | None = ...,
    spark: pyspark.sql.SparkSession | None = ...,
) -> pl.LazyFrame | duckdb.DuckDBPyRelation | pyspark.sql.DataFrame: ...


def scan_flow_run_states(
    path: str | os.PathLike[str],
    engine: Engine = "polars",
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
    spark: pyspark.sql.SparkSession | None = None,
) -> pl.LazyFrame | duckdb.DuckDBPyRelation | pyspark.sql.DataFrame:
    """Lazily read flow-run states from a dataset (or a Parquet file of them), on one engine.

    The flow-run table of a dataset is its ``_flow_run_states/`` folder (written
    by ``trs-analytics export``; day partitions like the task-run table). ``path``
    may be the dataset folder, that table folder, or one Parquet file. A dataset
    exported before the table existed reads as an empty frame until its next
    export. Columns and types: :data:`~trs_analytics.FLOW_RUN_STATES_SCHEMA`,
    with ``type`` a string and timestamps UTC on DuckDB and Spark, as in
    :func:`scan_states`, whose arguments this takes.

    Raises:
        StorageError: the path does not exist, or a file is damaged or holds
            something other than flow-run states.
        ConfigurationError: an unknown engine, an argument for another engine,
            or a connection or session whose time zone is not UTC.
        MissingDependencyError: the engine's package is not installed.

    Examples:
        >>> import tempfile, trs_analytics as ta
        >>> ta.scan_flow_run_states(tempfile.mkdtemp()).collect_schema() == ta.FLOW_RUN_STATES_SCHEMA
        True
        >>> ta.scan_flow_run_states(tempfile.mkdtemp(), engine="duckdb").columns[:3]
        ['id', 'flow_run_id', 'type']
    """
    return _scan(FLOW_RUNS, path, engine, connection, spark)


def read_states_files(
    files: list[Path], columns: list[str] | None = None, kind: RunKind = TASK_RUNS
) -> pl.DataFrame:
    """Read states files (checked ones) eagerly, older versions' missing columns as nulls.

    Examples:
        >>> import tempfile, trs_analytics as ta
        >>> path = Path(tempfile.mkdtemp()) / "old.parquet"
        >>> ta.empty_states().drop("data").write_parquet(path)  # a version 1 file
        >>> read_states_files([path]).schema == ta.STATES_SCHEMA
        True
    """
    scan = pl.scan_parquet(
        files,
        schema=kind.schema,
        hive_partitioning=False,
        extra_columns="ignore",
        missing_columns="insert",
    )
    return scan.select(columns or kind.schema.names()).collect()

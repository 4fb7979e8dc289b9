"""Parquet files and folders of states, written atomically, read lazily."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import polars as pl

from trs_analytics.exceptions import SchemaError, StorageError
from trs_analytics.schema import (
    COLUMNS_ADDED,
    SCHEMA_VERSION,
    STATES_SCHEMA,
    empty_states,
    validate_states,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "SCHEMA_VERSION_KEY",
    "atomic_write_parquet",
    "list_parquet_files",
    "read_states_files",
    "scan_states",
    "write_states",
]

#: Columns that files of an older schema version may lack: read as nulls.
_ADDED = frozenset(c for columns in COLUMNS_ADDED.values() for c in columns)

#: Parquet key-value metadata entry holding :data:`trs_analytics.schema.SCHEMA_VERSION`.
SCHEMA_VERSION_KEY = "trs_analytics.schema_version"

Compression = Literal["zstd", "lz4", "snappy", "gzip", "brotli", "uncompressed"]


def atomic_write_parquet(
    frame: pl.DataFrame,
    path: Path,
    *,
    compression: Compression = "zstd",
    compression_level: int | None = None,
) -> Path:
    """Write ``frame`` to ``path`` so that readers see the old file or the new one, never half.

    The frame goes to a hidden temporary file in the same folder, is flushed to
    disk, then renamed over ``path`` (``os.replace`` is atomic on POSIX).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("wb") as handle:
            frame.write_parquet(
                handle,
                compression=compression,
                compression_level=compression_level,
                metadata={SCHEMA_VERSION_KEY: str(SCHEMA_VERSION)},
            )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    validate_states(frame)
    return atomic_write_parquet(
        frame.select(STATES_SCHEMA.names()),
        Path(path),
        compression=compression,
        compression_level=compression_level,
    )


def list_parquet_files(folder: Path) -> list[Path]:
    """Every ``*.parquet`` below ``folder``, sorted, skipping hidden (``.``/``_``) names."""

    def walk(at: Path) -> Iterator[Path]:
        for entry in sorted(at.iterdir()):
            if entry.name.startswith((".", "_")):
                continue
            if entry.is_dir():
                yield from walk(entry)
            elif entry.suffix == ".parquet":
                yield entry

    return list(walk(folder))


def _check_file(file: Path) -> None:
    try:
        schema = pl.read_parquet_schema(file)
    except Exception as err:  # polars raises several kinds for a damaged file
        msg = (
            f"{file} is not a readable Parquet file ({type(err).__name__}: {str(err)[:160]}). "
            "Hint: it may have been damaged; move it out of the dataset and export again."
        )
        raise StorageError(msg) from err
    upgraded = {**{c: STATES_SCHEMA[c] for c in _ADDED if c not in schema}, **schema}
    try:
        validate_states(pl.LazyFrame(schema=upgraded))
    except SchemaError as err:
        msg = f"{file} does not hold states in the trs_analytics schema: {err}"
        raise StorageError(msg) from err


def scan_states(path: str | os.PathLike[str]) -> pl.LazyFrame:
    """Lazily read states from a Parquet file or a folder of them (a dataset).

    Hidden files (``.`` or ``_`` prefix, such as in-progress writes) are skipped.
    Every file's schema is checked against the contract before the scan is built.
    Files of an older schema version read the columns added since as nulls
    (:data:`~trs_analytics.schema.COLUMNS_ADDED`), so a dataset may mix them.

    Raises:
        StorageError: when the path does not exist, or a file is damaged or
            holds something other than states.

    Examples:
        >>> import tempfile, trs_analytics as ta
        >>> ta.scan_states(tempfile.mkdtemp()).collect().height
        0
    """
    root = Path(path)
    if not root.exists():
        msg = f"{root} does not exist. Hint: export states there first, or check the path."
        raise StorageError(msg)
    files = [root] if root.is_file() else list_parquet_files(root)
    if not files:
        return empty_states().lazy()
    for file in files:
        _check_file(file)
    return pl.scan_parquet(
        files,
        schema=STATES_SCHEMA,
        hive_partitioning=False,
        extra_columns="ignore",
        missing_columns="insert",
    )


def read_states_files(files: list[Path], columns: list[str] | None = None) -> pl.DataFrame:
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
        schema=STATES_SCHEMA,
        hive_partitioning=False,
        extra_columns="ignore",
        missing_columns="insert",
    )
    return scan.select(columns or STATES_SCHEMA.names()).collect()

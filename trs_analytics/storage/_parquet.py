"""Parquet files and folders of states, written atomically, read lazily."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

import polars as pl

from trs_analytics._atomic import atomic_write
from trs_analytics.exceptions import SchemaError, StorageError
from trs_analytics.schema import SCHEMA_VERSION, STATES_SCHEMA, empty_states, validate_states

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator

__all__ = [
    "SCHEMA_VERSION_KEY",
    "atomic_write_parquet",
    "list_parquet_files",
    "scan_states",
    "write_states",
]

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
    disk, then renamed over ``path`` (see :mod:`trs_analytics._atomic`).

    Raises:
        StorageError: the file cannot be written (full disk, read-only folder).
    """

    def write(handle: BinaryIO) -> None:
        frame.write_parquet(
            handle,
            compression=compression,
            compression_level=compression_level,
            metadata={SCHEMA_VERSION_KEY: str(SCHEMA_VERSION)},
        )

    return atomic_write(path, write)


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


_MAGIC = b"PAR1"


def _check_file(file: Path) -> None:
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
    try:
        validate_states(pl.LazyFrame(schema=schema))
    except SchemaError as err:
        msg = f"{file} does not hold states in the trs_analytics schema: {err}"
        raise StorageError(msg) from err


def scan_states(path: str | os.PathLike[str]) -> pl.LazyFrame:
    """Lazily read states from a Parquet file or a folder of them (a dataset).

    Hidden files (``.`` or ``_`` prefix, such as in-progress writes) are skipped.
    Every file's schema is checked against the contract before the scan is built.

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
    return pl.scan_parquet(files, hive_partitioning=False, extra_columns="ignore").select(
        STATES_SCHEMA.names()
    )

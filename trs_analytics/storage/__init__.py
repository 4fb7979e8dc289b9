"""Storage layer: states frames <-> Parquet files and datasets."""

from __future__ import annotations

from trs_analytics.storage._parquet import (
    SCHEMA_VERSION_KEY,
    atomic_write_parquet,
    list_parquet_files,
    scan_states,
    write_states,
)

__all__ = [
    "SCHEMA_VERSION_KEY",
    "atomic_write_parquet",
    "list_parquet_files",
    "scan_states",
    "write_states",
]

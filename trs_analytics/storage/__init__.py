"""Storage layer: states frames <-> Parquet files and datasets (no network)."""

from __future__ import annotations

from trs_analytics.storage._dataset import (
    DEFAULT_OVERLAP,
    DEFAULT_SINCE,
    MARKER_NAME,
    Dataset,
    DatasetInfo,
    DatasetLockedError,
    DatasetProgress,
    ExportRecord,
    read_dataset_info,
)
from trs_analytics.storage._parquet import (
    FLOW_RUN_TABLE,
    SCHEMA_VERSION_KEY,
    atomic_write_parquet,
    find_damaged_file,
    list_parquet_files,
    read_marker,
    require_parquet,
    scan_flow_run_states,
    scan_states,
    write_flow_run_states,
    write_states,
)
from trs_analytics.storage._summary import StatesSummary, TableSummary, summarize_states

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_SINCE",
    "FLOW_RUN_TABLE",
    "MARKER_NAME",
    "SCHEMA_VERSION_KEY",
    "Dataset",
    "DatasetInfo",
    "DatasetLockedError",
    "DatasetProgress",
    "ExportRecord",
    "StatesSummary",
    "TableSummary",
    "atomic_write_parquet",
    "find_damaged_file",
    "list_parquet_files",
    "read_dataset_info",
    "read_marker",
    "require_parquet",
    "scan_flow_run_states",
    "scan_states",
    "summarize_states",
    "write_flow_run_states",
    "write_states",
]

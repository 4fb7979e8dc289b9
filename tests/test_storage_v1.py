"""Schema version 1 files and datasets stay readable under version 2 (issue 13.6).

Version 2 added ``data``, ``details_task_parameters_id``, ``details_run_input_keyset``
and ``details_traceparent``. A version 1 file lacks them: readers give nulls, and an
export into a version 1 dataset merges its new rows with the old ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

import trs_analytics as ta
from tests.clock import DISTANT
from tests.recorded import SINCE, UNTIL, Router
from trs_analytics.export import export_states
from trs_analytics.schema import COLUMNS_ADDED, STATES_SCHEMA
from trs_analytics.storage import SCHEMA_VERSION_KEY

API = "http://test/api"
V2_COLUMNS = list(COLUMNS_ADDED[2])
SAMPLE = Path(__file__).parent.parent / "data" / "sample_states.parquet"


def _as_version_1(file: Path) -> None:
    """Rewrite a states file as version 1 wrote it: without the version 2 columns."""
    frame = pl.read_parquet(file).drop(V2_COLUMNS)
    frame.write_parquet(file, metadata={SCHEMA_VERSION_KEY: "1"})


def _export(out: Path, **kwargs: Any) -> ta.export.ExportResult:
    with ta.PrefectClient(API, transport=httpx.MockTransport(Router())) as client:
        return export_states(out, client=client, source="events", **kwargs)


def test_the_bundled_version_1_sample_reads_with_null_new_columns() -> None:
    assert set(V2_COLUMNS).isdisjoint(pl.read_parquet_schema(SAMPLE))
    frame = ta.scan_states(SAMPLE).collect()
    assert frame.schema == STATES_SCHEMA
    assert frame.height > 0
    assert frame.select(V2_COLUMNS).null_count().row(0) == (frame.height,) * 4


def test_a_version_1_file_and_a_version_2_file_scan_as_one_table(tmp_path: Path) -> None:
    with ta.PrefectClient(API, transport=httpx.MockTransport(Router())) as client:
        states = ta.fetch_states(client=client, since=SINCE, until=UNTIL, source="events")
    assert states["data"].drop_nulls().len() == 2  # the cached run's result record, twice
    old, new = states.head(6), states.tail(states.height - 6)
    ta.write_states(old, tmp_path / "a.parquet")
    _as_version_1(tmp_path / "a.parquet")
    ta.write_states(new, tmp_path / "b.parquet")
    both = ta.scan_states(tmp_path).collect().sort("timestamp", "id")
    assert both.schema == STATES_SCHEMA
    assert both.height == states.height
    expected = states.with_columns(
        pl.when(pl.col("id").is_in(old["id"].implode())).then(None).otherwise(pl.col(c)).alias(c)
        for c in V2_COLUMNS
    )
    assert both.equals(expected.sort("timestamp", "id"))


@pytest.mark.clock(DISTANT)  # after the recording: an export never reads past now
def test_an_export_into_a_version_1_dataset_merges_new_rows_with_the_old(
    tmp_path: Path,
) -> None:
    out = tmp_path / "states"
    first = _export(out, since=SINCE, until="2026-11-28T13:35:53.210Z")
    assert first.states > 0
    parts = sorted(out.glob("day=*/part-*.parquet"))
    assert len(parts) == 1
    _as_version_1(parts[0])
    marker = out / "_trs_dataset.json"
    info = json.loads(marker.read_text())
    marker.write_text(json.dumps({**info, "schema_version": 1}))

    second = _export(out, since=SINCE, until=UNTIL)
    assert second.added == 13 - first.states
    merged = ta.scan_states(out).collect()
    assert merged.schema == STATES_SCHEMA
    assert merged.height == 13
    assert merged["id"].is_unique().all()
    assert sorted(out.glob("day=*/part-*.parquet")) == parts  # merged into the same part
    assert pl.read_parquet_metadata(parts[0])[SCHEMA_VERSION_KEY] == "2"  # rewritten as v2

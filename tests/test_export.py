"""export_states: the incremental, day-partitioned, crash-safe Parquet dataset.

The first half runs the real client over the recorded Prefect server
(:class:`recorded.Router` through ``httpx.MockTransport``: 4 task runs, 13
states), so the dataset's mechanics are checked in milliseconds. The second
half exports the known workload from a real Prefect server and checks the
dataset against its ground truth.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import polars as pl
import pytest

from tests.recorded import SINCE, UNTIL, Router
from trs_analytics.client import PrefectClient
from trs_analytics.exceptions import ConfigurationError, StorageError
from trs_analytics.fetch import parse_when
from trs_analytics.schema import STATES_SCHEMA, empty_states
from trs_analytics.storage import (
    DEFAULT_OVERLAP,
    MARKER_NAME,
    DatasetLockedError,
    DatasetProgress,
    ExportResult,
    export_states,
    read_dataset_info,
    scan_states,
)
from trs_analytics.storage._dataset import _locked, _Writer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth

API = "http://test/api"
DAY = "day=2026-11-28"


@pytest.fixture
def client() -> Iterator[PrefectClient]:
    with PrefectClient(API, transport=httpx.MockTransport(Router()), sleep=lambda _: None) as c:
        yield c


def export(out: Path, client: PrefectClient, **kwargs: Any) -> ExportResult:
    kwargs.setdefault("since", SINCE)
    kwargs.setdefault("until", UNTIL)
    kwargs.setdefault("source", "events")
    return export_states(out, client=client, **kwargs)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes (the lock file's holder note aside)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def states(ids: list[str], day: str = "2026-01-01") -> pl.DataFrame:
    """A small states frame: one state per id, a second apart, on ``day``."""
    start = datetime.fromisoformat(f"{day}T00:00:00+00:00")
    rows = [
        {
            "id": i,
            "task_run_id": f"run-{i}",
            "type": "COMPLETED",
            "name": "Completed",
            "timestamp": start + timedelta(seconds=n),
        }
        for n, i in enumerate(ids)
    ]
    return (
        pl.DataFrame(rows)
        .with_columns(
            [pl.lit(None, dtype).alias(c) for c, dtype in STATES_SCHEMA.items() if c not in rows[0]]
        )
        .cast(STATES_SCHEMA)
        .select(STATES_SCHEMA.names())
    )  # type: ignore[arg-type]


# -- the dataset, over the recorded server -----------------------------------------


def test_export_writes_one_file_per_day_and_moves_the_cursor(
    tmp_path: Path, client: PrefectClient
) -> None:
    out = tmp_path / "ds"
    result = export(out, client)
    assert (result.states, result.added, result.task_runs, result.rows) == (13, 13, 4, 13)
    assert result.source == "events"
    assert result.days == ("2026-11-28",)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet")) == [
        f"{DAY}/part-00000.parquet"
    ]
    frame = scan_states(out).collect()
    assert frame.schema == STATES_SCHEMA
    assert frame["id"].n_unique() == 13
    assert frame["timestamp"].is_sorted()
    info = read_dataset_info(out)
    assert info["cursor"] == UNTIL
    assert info["filters"] == {}
    assert [h["added"] for h in info["history"]] == [13]


def test_exporting_twice_adds_and_rewrites_nothing(tmp_path: Path, client: PrefectClient) -> None:
    out = tmp_path / "ds"
    export(out, client)
    before = snapshot(out / DAY)
    again = export(out, client)
    assert (again.states, again.added, again.rows, again.files, again.days) == (13, 0, 13, 1, ())
    assert snapshot(out / DAY) == before


def test_both_sources_give_the_same_dataset(tmp_path: Path, client: PrefectClient) -> None:
    export(tmp_path / "events", client, source="events")
    export(tmp_path / "states", client, source="states")
    events = scan_states(tmp_path / "events").collect()
    per_run = scan_states(tmp_path / "states").collect()
    assert events.height == 13
    assert events.equals(per_run)


def test_without_since_the_window_starts_at_the_cursor_minus_the_overlap(
    tmp_path: Path, client: PrefectClient
) -> None:
    out = tmp_path / "ds"
    export(out, client, until="2026-11-28T13:36:00Z")
    later = export(out, client, since=None, until=UNTIL, overlap=timedelta(minutes=2))
    assert later.since == parse_when("2026-11-28T13:34:00Z")
    assert read_dataset_info(out)["cursor"] == UNTIL
    assert scan_states(out).collect()["id"].n_unique() == 13


def test_a_new_dataset_starts_seven_days_back(tmp_path: Path, client: PrefectClient) -> None:
    result = export(tmp_path / "ds", client, since=None, until=None)
    assert abs(result.since - (datetime.now(UTC) - timedelta(days=7))) < timedelta(minutes=1)
    assert timedelta(minutes=10) == DEFAULT_OVERLAP


def test_a_backfill_does_not_move_the_cursor_back(tmp_path: Path, client: PrefectClient) -> None:
    out = tmp_path / "ds"
    export(out, client)
    export(out, client, since="2026-11-28T13:00:00Z", until="2026-11-28T13:36:00Z")
    assert read_dataset_info(out)["cursor"] == UNTIL


def test_progress_is_reported_per_batch(tmp_path: Path, client: PrefectClient) -> None:
    seen: list[DatasetProgress] = []
    export(tmp_path / "ds", client, on_progress=seen.append)
    assert seen
    assert seen[-1].states == 13
    assert seen[-1].task_runs == 4
    assert seen[-1].requests > 0
    assert 0 < seen[-1].fraction <= 1


# -- refusals: nothing is written ---------------------------------------------------


def test_a_folder_holding_other_files_is_refused_untouched(
    tmp_path: Path, client: PrefectClient
) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(StorageError, match=r"holds other files \(holiday.jpg\).*Hint"):
        export(out, client)
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]


def test_a_file_as_out_is_refused(tmp_path: Path, client: PrefectClient) -> None:
    out = tmp_path / "states.parquet"
    out.write_bytes(b"PAR1")
    with pytest.raises(StorageError, match="is a file, expected a dataset folder"):
        export(out, client)
    assert out.read_bytes() == b"PAR1"


@pytest.mark.parametrize(
    ("damage", "where"),
    [
        ("garbage", "day=2026-01-01/part-00000.parquet"),  # a day this export does not touch
        ("truncate", f"{DAY}/part-00000.parquet"),  # the day this export writes to
    ],
)
def test_a_damaged_parquet_file_stops_the_export_before_any_write(
    tmp_path: Path, client: PrefectClient, damage: str, where: str
) -> None:
    out = tmp_path / "ds"
    export(out, client, until="2026-11-28T13:36:00Z")
    target = out / where
    target.parent.mkdir(exist_ok=True)
    if damage == "garbage":
        target.write_bytes(b"this is not parquet")
    else:
        target.write_bytes(target.read_bytes()[:100])
    before = snapshot(out)
    with pytest.raises(StorageError, match=r"not a readable Parquet file.*Hint"):
        export(out, client)
    assert snapshot(out) == before


def test_a_damaged_marker_is_reported(tmp_path: Path, client: PrefectClient) -> None:
    out = tmp_path / "ds"
    export(out, client)
    (out / MARKER_NAME).write_text("{not json")
    with pytest.raises(StorageError, match=r"_trs_dataset.json cannot be read as JSON.*Hint"):
        export(out, client)


def test_other_filters_than_the_datasets_are_refused(tmp_path: Path, client: PrefectClient) -> None:
    out = tmp_path / "ds"
    export(out, client)
    with pytest.raises(ConfigurationError, match=r"exported with filters \{\}.*flow_names"):
        export(out, client, flow_names="demo")


def test_a_second_export_fails_fast_on_the_lock(tmp_path: Path, client: PrefectClient) -> None:
    out = tmp_path / "ds"
    export(out, client)
    before = snapshot(out / DAY)
    with _locked(out, wait=0):
        with pytest.raises(DatasetLockedError, match=rf"another export \(pid {os.getpid()} since"):
            export(out, client)
        started = time.monotonic()
        with pytest.raises(DatasetLockedError):
            export(out, client, wait=0.5)
        assert time.monotonic() - started >= 0.5
    assert snapshot(out / DAY) == before
    assert export(out, client).added == 0  # the lock is free again


# -- crash safety -------------------------------------------------------------------


def test_leftover_temporary_files_are_removed(tmp_path: Path, client: PrefectClient) -> None:
    out = tmp_path / "ds"
    export(out, client)
    leftovers = [out / DAY / ".part-00000.parquet.dead.tmp", out / f".{MARKER_NAME}.dead.tmp"]
    for path in leftovers:
        path.write_bytes(b"half")
    assert scan_states(out).collect().height == 13  # readers skip them
    export(out, client)
    assert not any(p.exists() for p in leftovers)


def test_an_export_interrupted_midway_keeps_the_cursor_and_the_rerun_adds_the_rest(
    tmp_path: Path, client: PrefectClient
) -> None:
    out = tmp_path / "ds"

    def crash(progress: DatasetProgress) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # after the first batch (one page, 5 events)
        export(out, client, flush_rows=1, on_progress=crash)
    written = scan_states(out).collect()
    assert written.height == 5
    assert read_dataset_info(out)["cursor"] is None  # the window was not finished
    rerun = export(out, client)
    assert (rerun.states, rerun.added) == (13, 8)
    assert read_dataset_info(out)["cursor"] == UNTIL
    after = scan_states(out).collect()
    assert after["id"].n_unique() == after.height == 13


def test_a_day_grows_new_parts_and_never_holds_a_state_twice(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    writer = _Writer(out, flush_rows=1_000, target_file_rows=4)
    for ids in (["a", "b"], ["b", "c"], ["c", "d", "e"], ["a", "f"], ["g"]):
        writer.add(states(ids))
        writer.flush()
    parts = sorted(p.name for p in (out / "day=2026-01-01").iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet"]
    frame = scan_states(out).collect()
    assert sorted(frame["id"].to_list()) == ["a", "b", "c", "d", "e", "f", "g"]
    assert writer.added == 7
    # small additions go into the last part while they fit: no pile of small files
    sizes = [pl.read_parquet(out / "day=2026-01-01" / part).height for part in parts]
    assert sizes == [3, 4]


def test_states_are_partitioned_by_their_utc_day(tmp_path: Path) -> None:
    writer = _Writer(tmp_path, flush_rows=1_000, target_file_rows=100)
    writer.add(pl.concat([states(["x"], "2026-03-01"), states(["y"], "2026-03-02")]))
    writer.flush()
    assert sorted(writer.days) == ["2026-03-01", "2026-03-02"]
    assert pl.read_parquet(tmp_path / "day=2026-03-02" / "part-00000.parquet")["id"].to_list() == [
        "y"
    ]


def test_the_marker_is_plain_json_with_a_format_version(
    tmp_path: Path, client: PrefectClient
) -> None:
    out = tmp_path / "ds"
    export(out, client)
    data = json.loads((out / MARKER_NAME).read_text())
    assert data["format"] == "trs_analytics.dataset"
    assert data["format_version"] == 1
    assert data["schema_version"] == 2
    data["format_version"] = 99
    (out / MARKER_NAME).write_text(json.dumps(data))
    with pytest.raises(StorageError, match="newer than this trs_analytics understands"):
        read_dataset_info(out)


def test_an_empty_dataset_scans_as_empty_states(tmp_path: Path, client: PrefectClient) -> None:
    out = tmp_path / "ds"
    result = export(out, client, since="2026-11-28T10:00:00Z", until="2026-11-28T11:00:00Z")
    assert (result.states, result.rows, result.files) == (0, 0, 0)
    assert scan_states(out).collect().equals(empty_states())


# -- against a real Prefect server ---------------------------------------------------


def window(workload: GroundTruth) -> dict[str, datetime]:
    """A window that holds every state of the workload."""
    return {
        "since": workload.started_at - timedelta(minutes=1),
        "until": workload.finished_at + timedelta(minutes=1),
    }


def of_workload(frame: pl.DataFrame, workload: GroundTruth) -> pl.DataFrame:
    return frame.filter(pl.col("task_run_id").is_in(list(workload.task_runs)))


def test_the_workload_exports_as_its_ground_truth(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    out = tmp_path / "ds"
    result = export_states(out, api_url=prefect_server.api_url, **window(workload))
    assert result.source == "events"  # the window is inside the event retention
    frame = of_workload(scan_states(out).collect(), workload)
    assert frame.height == workload.n_states
    assert frame["id"].is_unique().all()
    names = {
        run: tuple(group["name"].to_list())
        for (run,), group in frame.sort("timestamp", "id").group_by("task_run_id")
    }
    assert names == {run: truth.states for run, truth in workload.task_runs.items()}

    again = export_states(out, api_url=prefect_server.api_url, until=window(workload)["until"])
    assert again.added == 0
    assert again.since == result.until - DEFAULT_OVERLAP


def test_a_split_window_exports_the_same_as_one(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    bounds = window(workload)
    middle = workload.started_at + (workload.finished_at - workload.started_at) / 2
    one = tmp_path / "one"
    export_states(one, api_url=prefect_server.api_url, **bounds)
    split = tmp_path / "split"
    first = export_states(
        split, api_url=prefect_server.api_url, since=bounds["since"], until=middle
    )
    second = export_states(split, api_url=prefect_server.api_url, until=bounds["until"])
    assert 0 < first.added < second.rows
    assert scan_states(split).collect().sort("id").equals(scan_states(one).collect().sort("id"))


def test_a_filtered_export_keeps_only_its_flow(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    out = tmp_path / "etl"
    export_states(out, api_url=prefect_server.api_url, flow_names=["etl"], **window(workload))
    frame = of_workload(scan_states(out).collect(), workload)
    expected = workload.select(flow_name="etl")
    assert set(frame["task_run_id"].unique()) == {t.task_run_id for t in expected}
    assert frame.height == sum(t.n_states for t in expected)
    assert read_dataset_info(out)["filters"] == {"flow_names": ["etl"]}

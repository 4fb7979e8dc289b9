"""A hostile dataset folder and a future window: nothing written outside, nothing read twice.

Each rule is checked with more than the case that found it: links and hard
links and FIFOs where the lock file goes, links where the marker, a day or the
flow-run table go; folders named like partitions that are not; an ``--out``
inside another dataset; markers of a newer format; a cursor that would pass
the present; a first export whose first write fails on a real full disk.
The export runs over the recorded server (:class:`recorded.Router`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import polars as pl
import pytest

from tests.disks import fill, mounted
from tests.recorded import SINCE, UNTIL, Router
from trs_analytics.client import PrefectClient
from trs_analytics.exceptions import ConfigurationError, StorageError
from trs_analytics.export import export_states
from trs_analytics.fetch import parse_when
from trs_analytics.schema import FLOW_RUNS
from trs_analytics.storage import (
    FLOW_RUN_TABLE,
    MARKER_NAME,
    Dataset,
    list_parquet_files,
    read_dataset_info,
    scan_flow_run_states,
    scan_states,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

API = "http://test/api"
DAY = "day=2026-11-28"
#: An hour after the recorded workload: its window lies in the past.
AFTER_RECORDING = "2026-11-28T14:00:00Z"

#: The export never reads past now: the clock stands after the recording.
pytestmark = pytest.mark.clock(AFTER_RECORDING)


@pytest.fixture
def client() -> Iterator[PrefectClient]:
    with PrefectClient(API, transport=httpx.MockTransport(Router()), sleep=lambda _: None) as c:
        yield c


def export(out: Path, client: PrefectClient, **kwargs: Any) -> Any:
    kwargs.setdefault("since", SINCE)
    kwargs.setdefault("until", UNTIL)
    kwargs.setdefault("source", "events")
    kwargs.setdefault("flow_runs", False)
    return export_states(out, client=client, progress=False, **kwargs)


@pytest.fixture
def dataset(tmp_path: Path, client: PrefectClient) -> Path:
    out = tmp_path / "ds"
    export(out, client)
    return out


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name != ".lock"
    }


# -- the lock and the marker are never followed ------------------------------------


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo", "dangling-symlink"])
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_the_lock_file_is_never_followed_nor_shared(
    tmp_path: Path, client: PrefectClient, dataset: Path, kind: str, existing: bool
) -> None:
    out = dataset if existing else tmp_path / "new"
    out.mkdir(exist_ok=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    lock = out / ".lock"
    lock.unlink(missing_ok=True)
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "dangling-symlink":
        lock.symlink_to(tmp_path / "created-outside")
    elif kind == "hardlink":
        os.link(victim, lock)
    else:
        os.mkfifo(lock)
    before = files_of(out)
    with pytest.raises(StorageError, match=r"\.lock is (a symbolic link|a hard link|not a plain)"):
        export(out, client)
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "created-outside").exists()
    assert files_of(out) == before


@pytest.mark.parametrize("target", ["outside-marker", "missing"])
def test_a_marker_that_is_a_link_is_refused_by_every_reader(
    tmp_path: Path, client: PrefectClient, dataset: Path, target: str
) -> None:
    outside = tmp_path / "outside.json"
    (dataset / MARKER_NAME).rename(outside)
    (dataset / MARKER_NAME).symlink_to(outside if target == "outside-marker" else tmp_path / "x")
    text = outside.read_text()
    for read in (read_dataset_info, scan_states, lambda p: export(p, client)):
        with pytest.raises(StorageError, match="is a symbolic link"):
            read(dataset)
    assert outside.read_text() == text


def test_a_day_partition_that_links_outside_is_never_written_through(
    tmp_path: Path, client: PrefectClient
) -> None:
    out, elsewhere = tmp_path / "ds", tmp_path / "elsewhere"
    export(out, client, until="2026-11-28T13:35:53.205Z")  # the first states only
    elsewhere.mkdir()
    shutil.move(out / DAY, elsewhere / DAY)
    (out / DAY).symlink_to(elsewhere / DAY, target_is_directory=True)
    before = files_of(elsewhere)
    with pytest.raises(StorageError, match="is a symbolic link, not a day folder"):
        export(out, client, since="2026-11-28T13:35:53.205Z")
    assert files_of(elsewhere) == before


def test_a_flow_run_table_that_links_outside_is_refused(
    tmp_path: Path, client: PrefectClient, dataset: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (dataset / FLOW_RUN_TABLE).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(StorageError, match="flow-run table is never written through a link"):
        Dataset.open(dataset, kind=FLOW_RUNS)
    assert list(elsewhere.iterdir()) == []


# -- only valid partitions are data ----------------------------------------------------


@pytest.mark.parametrize(
    ("copy_to", "message"),
    [
        ("day=2026-13-45", "named like a day partition but is not one"),
        ("day=2026-02-30", "named like a day partition but is not one"),
        ("day=26-11-28", "named like a day partition but is not one"),
        ("day=2026-11-28.bak", "named like a day partition but is not one"),
        ("backup", "holds Parquet files outside a day partition"),
        ("backup/day=2026-11-28", "holds Parquet files outside a day partition"),
    ],
)
def test_a_copy_of_a_partition_under_another_name_is_refused_not_read_twice(
    client: PrefectClient, dataset: Path, copy_to: str, message: str
) -> None:
    shutil.copytree(dataset / DAY, dataset / copy_to)
    for read in (
        lambda p: scan_states(p).collect(),
        lambda p: scan_states(p, engine="duckdb").fetchall(),
        lambda p: export(p, client),
    ):
        with pytest.raises(StorageError, match=message):
            read(dataset)


def test_a_stray_parquet_file_at_the_top_of_a_dataset_is_refused(dataset: Path) -> None:
    shutil.copy(next((dataset / DAY).glob("part-*.parquet")), dataset / "extra.parquet")
    with pytest.raises(StorageError, match="is a Parquet file outside a day partition"):
        list_parquet_files(dataset)


def test_files_that_are_not_parquet_and_hidden_names_stay_ignored(dataset: Path) -> None:
    (dataset / "README.txt").write_text("notes")
    (dataset / "notes").mkdir()
    (dataset / "notes" / "a.md").write_text("x")
    shutil.copytree(dataset / DAY, dataset / ".trash")
    assert [p.parent.name for p in list_parquet_files(dataset)] == [DAY]
    assert scan_states(dataset).collect().height == 13


def test_a_plain_folder_of_parquet_files_still_reads(tmp_path: Path, dataset: Path) -> None:
    folder = tmp_path / "plain" / "nested"
    folder.mkdir(parents=True)
    shutil.copy(next((dataset / DAY).glob("part-*.parquet")), folder / "x.parquet")
    assert scan_states(tmp_path / "plain").collect().height == 13


# -- an --out inside a dataset ----------------------------------------------------------


@pytest.mark.parametrize("inside", [FLOW_RUN_TABLE, DAY, "anything/deeper"])
def test_an_out_inside_another_dataset_is_refused(
    client: PrefectClient, dataset: Path, inside: str
) -> None:
    before = files_of(dataset)
    with pytest.raises(ConfigurationError, match=f"of the dataset {dataset}.*pass --out"):
        export(dataset / inside, client)
    assert files_of(dataset) == before
    assert not (dataset / FLOW_RUN_TABLE).exists()
    assert scan_flow_run_states(dataset).collect().height == 0


# -- markers of a newer format ------------------------------------------------------------


@pytest.mark.parametrize("version", [99, "1", None])
def test_a_marker_this_package_cannot_read_is_refused_by_every_reader(
    client: PrefectClient, dataset: Path, version: Any
) -> None:
    marker = dataset / MARKER_NAME
    data = json.loads(marker.read_text())
    data["format_version"] = version
    marker.write_text(json.dumps(data))
    for read in (
        read_dataset_info,
        scan_states,
        lambda p: scan_states(p, engine="duckdb"),
        lambda p: export(p, client),
    ):
        with pytest.raises(StorageError, match="format version"):
            read(dataset)


# -- the cursor never passes the present ---------------------------------------------


@pytest.mark.parametrize("until", ["9999-12-31", "2027-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
def test_a_future_until_is_read_up_to_now_and_the_cursor_stays_true(
    tmp_path: Path, client: PrefectClient, until: str, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "ds"
    with caplog.at_level("INFO", "trs_analytics.export"):
        result = export(out, client, until=until)
    now = datetime.now(UTC)
    cursor = read_dataset_info(out).cursor
    assert cursor is not None
    assert parse_when(AFTER_RECORDING) <= cursor <= now
    assert result.until == cursor
    assert result.added == 13
    assert "is in the future: reading up to now" in caplog.text
    again = export(out, client, since=None, until=None)  # the next incremental run works
    assert again.added == 0


def test_a_cursor_already_in_the_future_is_explained_and_mended(
    client: PrefectClient, dataset: Path
) -> None:
    marker = dataset / MARKER_NAME
    data = json.loads(marker.read_text())
    data["cursor"] = "9999-12-31T00:00:00Z"
    marker.write_text(json.dumps(data))
    with pytest.raises(ConfigurationError, match="cursor 9999-12-31T00:00:00Z lies in the future"):
        export(dataset, client, since=None, until=None)
    export(dataset, client)  # an explicit window mends it
    cursor = read_dataset_info(dataset).cursor
    assert cursor == parse_when(UNTIL)


# -- a first export whose first write fails leaves nothing -------------------------


def test_a_first_export_on_a_full_disk_leaves_no_marker_lock_or_day(
    tmp_path: Path, client: PrefectClient
) -> None:
    folder = tmp_path / "tiny"
    with mounted(folder, "size=2m") as ok:
        if not ok:
            pytest.skip("needs root to mount a 2 MB tmpfs (mount -t tmpfs)")
        fill(folder)
        filler = next(folder.glob("filler-*"))
        with filler.open("r+b") as handle:  # room for the marker, not for a Parquet file
            handle.truncate(filler.stat().st_size - 8192)
        out = folder / "ds"
        with pytest.raises(StorageError, match="No space left on device"):
            export(out, client)
        assert not out.exists()
        assert sorted(p.name for p in folder.iterdir()) == [filler.name]


def test_a_full_disk_during_a_parquet_write_is_a_storage_error(tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    with mounted(folder, "size=1m") as ok:
        if not ok:
            pytest.skip("needs root to mount a 1 MB tmpfs (mount -t tmpfs)")
        frame = pl.DataFrame({"x": list(range(1_000_000))})
        from trs_analytics.storage import atomic_write_parquet

        with pytest.raises(StorageError, match=r"No space left on device\. Hint: the disk is full"):
            atomic_write_parquet(frame, folder / "x.parquet", compression="uncompressed")
        assert list(folder.iterdir()) == []


NO_FCNTL = """
import sys, tempfile, pathlib
sys.modules["fcntl"] = None  # as on Windows, which has no fcntl
import trs_analytics as ta
from trs_analytics.storage import Dataset
print(ta.scan_states("data/sample_states.parquet").collect().height)
out = pathlib.Path(tempfile.mkdtemp()) / "ds"
try:
    Dataset.open(out)
except ta.StorageError as err:
    print(err)
print(out.exists())
"""


def test_without_fcntl_the_package_imports_and_reads_and_refuses_to_write() -> None:
    done = subprocess.run(
        [sys.executable, "-c", NO_FCNTL],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    height, message, made = done.stdout.strip().splitlines()
    sample = Path(__file__).resolve().parents[1] / "data" / "sample_states.parquet"
    assert int(height) == pl.read_parquet(sample).height > 0
    assert message.startswith("writing a dataset needs POSIX file locks (fcntl.flock)")
    assert made == "False"

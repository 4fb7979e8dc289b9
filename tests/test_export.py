"""export_states: the incremental, day-partitioned, crash-safe Parquet dataset.

The first half runs the real client over the recorded Prefect server
(:class:`recorded.Router` through ``httpx.MockTransport``: 4 task runs, 13
states), so the dataset's mechanics are checked in milliseconds. The second
half exports the known workload from a real Prefect server and checks the
dataset against its ground truth. Then: full disks and read-only folders (a real
tmpfs as root, see :mod:`tests.disks`), first exports that fail, and progress
bars (terminal, a real Jupyter kernel, and nothing in a non-interactive run).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import nbformat
import polars as pl
import pytest
from nbclient import NotebookClient
from rich.console import Console

from tests.builders import history, states
from tests.clock import DISTANT
from tests.disks import disk, fill, mounted, read_only
from tests.fresh import auto_sources
from tests.recorded import SINCE, UNTIL, Router
from trs_analytics._progress import Progress, progress_bar
from trs_analytics.client import PrefectClient
from trs_analytics.exceptions import ConfigurationError, StorageError, TransportError
from trs_analytics.export import ExportResult, export_states
from trs_analytics.fetch import fetch_states, iter_states, parse_when
from trs_analytics.schema import STATES_SCHEMA, empty_states
from trs_analytics.storage import (
    DEFAULT_OVERLAP,
    MARKER_NAME,
    Dataset,
    DatasetInfo,
    DatasetLockedError,
    DatasetProgress,
    read_dataset_info,
    scan_states,
)
from trs_analytics.storage._dataset import _Writer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth

API = "http://test/api"
#: The recorded server's windows lie in the past of this clock (an export never reads past now),
#: also under --clock-shift.
RECORDED_CLOCK = pytest.mark.clock(DISTANT)
ROOT = Path(__file__).resolve().parents[1]
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


def completed(ids: list[str], day: str = "2026-01-01") -> pl.DataFrame:
    """A small states frame: one Completed state per id, a second apart, on ``day``."""
    start = datetime.fromisoformat(f"{day}T00:00:00+00:00")
    return states(
        *(
            history([("Completed", start + timedelta(seconds=n))], task_run_id=f"run-{i}", id=i)
            for n, i in enumerate(ids)
        )
    )


# -- the dataset, over the recorded server -----------------------------------------


@RECORDED_CLOCK
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
    assert info.cursor == parse_when(UNTIL)
    assert info.filters == {}
    assert [h["added"] for h in info.history] == [13]


@RECORDED_CLOCK
def test_exporting_twice_adds_and_rewrites_nothing(tmp_path: Path, client: PrefectClient) -> None:
    out = tmp_path / "ds"
    export(out, client)
    before = snapshot(out / DAY)
    again = export(out, client)
    assert (again.states, again.added, again.rows, again.files, again.days) == (13, 0, 13, 1, ())
    assert snapshot(out / DAY) == before


@RECORDED_CLOCK
def test_both_sources_give_the_same_dataset(tmp_path: Path, client: PrefectClient) -> None:
    export(tmp_path / "events", client, source="events")
    export(tmp_path / "states", client, source="states")
    events = scan_states(tmp_path / "events").collect()
    per_run = scan_states(tmp_path / "states").collect()
    assert events.height == 13
    assert events.equals(per_run)


@RECORDED_CLOCK
def test_without_since_the_window_starts_at_the_cursor_minus_the_overlap(
    tmp_path: Path, client: PrefectClient
) -> None:
    out = tmp_path / "ds"
    export(out, client, until="2026-11-28T13:36:00Z")
    later = export(out, client, since=None, until=UNTIL, overlap=timedelta(minutes=2))
    assert later.since == parse_when("2026-11-28T13:34:00Z")
    assert read_dataset_info(out).cursor == parse_when(UNTIL)
    assert scan_states(out).collect()["id"].n_unique() == 13


def test_a_new_dataset_starts_seven_days_back(tmp_path: Path, client: PrefectClient) -> None:
    result = export(tmp_path / "ds", client, since=None, until=None)
    assert abs(result.since - (datetime.now(UTC) - timedelta(days=7))) < timedelta(minutes=1)
    assert timedelta(minutes=10) == DEFAULT_OVERLAP


@RECORDED_CLOCK
def test_a_backfill_does_not_move_the_cursor_back(tmp_path: Path, client: PrefectClient) -> None:
    out = tmp_path / "ds"
    export(out, client)
    export(out, client, since="2026-11-28T13:00:00Z", until="2026-11-28T13:36:00Z")
    assert read_dataset_info(out).cursor == parse_when(UNTIL)


@RECORDED_CLOCK
def test_progress_is_reported_per_batch(tmp_path: Path, client: PrefectClient) -> None:
    seen: list[DatasetProgress] = []
    export(tmp_path / "ds", client, on_progress=seen.append)
    assert seen
    assert seen[-1].states == 13
    assert seen[-1].runs == 4
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
@RECORDED_CLOCK
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


@RECORDED_CLOCK
def test_a_damaged_marker_is_reported(tmp_path: Path, client: PrefectClient) -> None:
    out = tmp_path / "ds"
    export(out, client)
    (out / MARKER_NAME).write_text("{not json")
    with pytest.raises(StorageError, match=r"_trs_dataset.json cannot be read as JSON.*Hint"):
        export(out, client)


@RECORDED_CLOCK
def test_other_filters_than_the_datasets_are_refused(tmp_path: Path, client: PrefectClient) -> None:
    out = tmp_path / "ds"
    export(out, client)
    with pytest.raises(ConfigurationError, match=r"exported with filters \{\}.*flow_names"):
        export(out, client, flow_names="demo")


@RECORDED_CLOCK
def test_a_second_export_fails_fast_on_the_lock(tmp_path: Path, client: PrefectClient) -> None:
    out = tmp_path / "ds"
    export(out, client)
    before = snapshot(out / DAY)
    with Dataset.open(out):  # another export holds the lock
        with pytest.raises(DatasetLockedError, match=rf"another export \(pid {os.getpid()} since"):
            export(out, client)
        started = time.monotonic()
        with pytest.raises(DatasetLockedError):
            export(out, client, wait=0.5)
        assert time.monotonic() - started >= 0.5
    assert snapshot(out / DAY) == before
    assert export(out, client).added == 0  # the lock is free again


# -- crash safety -------------------------------------------------------------------


@RECORDED_CLOCK
def test_leftover_temporary_files_are_removed(tmp_path: Path, client: PrefectClient) -> None:
    out = tmp_path / "ds"
    export(out, client)
    leftovers = [out / DAY / ".part-00000.parquet.dead.tmp", out / f".{MARKER_NAME}.dead.tmp"]
    for path in leftovers:
        path.write_bytes(b"half")
    assert scan_states(out).collect().height == 13  # readers skip them
    export(out, client)
    assert not any(p.exists() for p in leftovers)


@RECORDED_CLOCK
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
    assert read_dataset_info(out).cursor is None  # the window was not finished
    rerun = export(out, client)
    assert (rerun.states, rerun.added) == (13, 8)
    assert read_dataset_info(out).cursor == parse_when(UNTIL)
    after = scan_states(out).collect()
    assert after["id"].n_unique() == after.height == 13


def test_a_day_grows_new_parts_and_never_holds_a_state_twice(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    writer = _Writer(out, flush_rows=1_000, target_file_rows=4)
    for ids in (["a", "b"], ["b", "c"], ["c", "d", "e"], ["a", "f"], ["g"]):
        writer.add(completed(ids))
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
    writer.add(pl.concat([completed(["x"], "2026-03-01"), completed(["y"], "2026-03-02")]))
    writer.flush()
    assert sorted(writer.days) == ["2026-03-01", "2026-03-02"]
    assert pl.read_parquet(tmp_path / "day=2026-03-02" / "part-00000.parquet")["id"].to_list() == [
        "y"
    ]


@RECORDED_CLOCK
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


@RECORDED_CLOCK
def test_an_empty_dataset_scans_as_empty_states(tmp_path: Path, client: PrefectClient) -> None:
    out = tmp_path / "ds"
    result = export(out, client, since="2026-11-28T10:00:00Z", until="2026-11-28T11:00:00Z")
    assert (result.states, result.rows, result.files) == (0, 0, 0)
    assert scan_states(out).collect().equals(empty_states())


# -- against a real Prefect server ---------------------------------------------------


def window(workload: GroundTruth) -> dict[str, Any]:
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
    before = datetime.now(UTC)
    result = export_states(out, api_url=prefect_server.api_url, **window(workload))
    # inside the event retention: events, but the last FRESH_SPAN before now from states
    assert result.source in auto_sources(workload, before, datetime.now(UTC))
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
    assert read_dataset_info(out).filters == {"flow_names": ["etl"]}


# -- full disks, read-only folders, first exports that fail (issue 14.1, 14.2) --------

MIDDLE = "2026-11-28T13:36:00Z"


# -- a full disk ---------------------------------------------------------------------


@RECORDED_CLOCK
def test_a_full_disk_fails_cleanly_and_keeps_every_stored_row(
    tmp_path: Path, client: PrefectClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with disk(tmp_path / "disk", monkeypatch) as make_full:
        out = tmp_path / "disk" / "ds"
        first = export(out, client, until=MIDDLE)
        assert first.added > 0
        before = snapshot(out)
        make_full()
        with pytest.raises(StorageError, match=r"No space left on device\. Hint: the disk is full"):
            export(out, client)
        assert snapshot(out) == before  # no file lost, none half-written, cursor kept
        assert read_dataset_info(out).cursor == first.until
        assert scan_states(out).collect().height == first.rows


def test_a_read_only_folder_is_one_storage_error_and_stays_as_it_was(
    tmp_path: Path, client: PrefectClient
) -> None:
    with read_only(tmp_path / "ro") as folder:
        with pytest.raises(StorageError, match=r"cannot create the dataset folder .*Hint"):
            export(folder / "ds", client)
        assert list(folder.iterdir()) == []


# -- a first export that fails records nothing --------------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["new folder", "empty folder"])
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"since": "yesterday"}, ConfigurationError),
        ({"since": UNTIL, "until": SINCE}, ConfigurationError),
    ],
)
@RECORDED_CLOCK
def test_a_first_export_that_fails_leaves_nothing_behind(
    tmp_path: Path,
    client: PrefectClient,
    existing: bool,
    kwargs: dict[str, str],
    error: type[Exception],
) -> None:
    out = tmp_path / "ds"
    if existing:
        out.mkdir()
    with pytest.raises(error):
        export(out, client, **kwargs)
    assert (list(out.iterdir()) == []) if existing else not out.exists()
    assert export(out, client, flow_names="demo").added == 13  # its filters were not fixed


@RECORDED_CLOCK
def test_an_unreachable_server_on_the_first_export_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    with (
        PrefectClient("http://127.0.0.1:9/api", max_attempts=1) as dead,
        pytest.raises(TransportError),
    ):
        export_states(out, client=dead, since=SINCE, until=UNTIL, flow_names="typo")
    assert not out.exists()


@RECORDED_CLOCK
def test_a_first_export_killed_after_its_first_rows_is_a_dataset(
    tmp_path: Path, client: PrefectClient
) -> None:
    def crash(_progress: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export(tmp_path / "ds", client, flush_rows=1, on_progress=crash)
    info = read_dataset_info(tmp_path / "ds")
    assert (info.cursor, info.filters, info.exports) == (None, {}, 0)
    assert sorted(p.name for p in (tmp_path / "ds").iterdir() if p.name != ".lock") == [
        MARKER_NAME,
        "day=2026-11-28",
    ]


# -- the Dataset on its own -----------------------------------------------------------


def test_a_dataset_opened_and_closed_without_rows_leaves_nothing(tmp_path: Path) -> None:
    with Dataset.open(tmp_path / "ds", filters={"tags": ["prod"]}) as dataset:
        assert dataset.is_new
        assert dataset.info.filters == {"tags": ["prod"]}
    assert not (tmp_path / "ds").exists()


@RECORDED_CLOCK
def test_a_commit_without_rows_records_the_cursor(tmp_path: Path, client: PrefectClient) -> None:
    quiet = {"since": "2026-11-28T12:00:00Z", "until": "2026-11-28T12:30:00Z"}
    result = export(tmp_path / "ds", client, flow_names="demo", **quiet)
    info = read_dataset_info(tmp_path / "ds")
    assert isinstance(info, DatasetInfo)
    assert isinstance(result, ExportResult)
    assert (info.cursor, info.filters, info.exports) == (result.until, {"flow_names": ["demo"]}, 1)
    assert result.summary().startswith("nothing new: the server has no task-run states from")


def commit(dataset: Dataset, until: str) -> DatasetInfo:
    """Commit the window from SINCE to ``until`` (the counts are the export's report only)."""
    since = parse_when(SINCE)
    done = ExportResult(
        out=dataset.path, source="events", since=since, until=parse_when(until),
        states=2, task_runs=2, added=2, rows=2, files=1,
    )  # fmt: skip
    return dataset.commit(done, started=since)


@contextlib.contextmanager
def unwritable(day: Path, failure: str) -> Iterator[None]:
    """The day folder made unwritable for real, while the dataset's own folder stays writable."""
    if failure == "full disk":  # a tiny tmpfs mounted on the day folder, filled up
        with mounted(day, "size=1m") as ok:
            if not ok:
                pytest.skip("mounting a tmpfs needs root and mount(8)")
            fill(day)
            yield
    else:  # a file where the day folder should be
        day.write_text("not a folder")
        yield


@pytest.mark.parametrize(
    ("failure", "error"),
    [("full disk", "No space left on device"), ("day is a file", "File exists")],
)
def test_a_commit_whose_flush_fails_moves_neither_the_cursor_nor_its_history(
    tmp_path: Path, failure: str, error: str
) -> None:
    out = tmp_path / "ds"
    with Dataset.open(out, flush_rows=1_000) as dataset:
        dataset.add(completed(["a", "b"], "2026-01-01"))
        first = commit(dataset, MIDDLE)
        marker = (out / MARKER_NAME).read_bytes()
        dataset.add(completed(["c", "d"], "2026-01-02"))  # buffered: fewer than flush_rows
        with unwritable(out / "day=2026-01-02", failure), pytest.raises(StorageError, match=error):
            commit(dataset, UNTIL)
        assert (out / MARKER_NAME).read_bytes() == marker  # on disk, and as the writer holds it
        assert dataset.info == first
    info = read_dataset_info(out)
    assert (info.cursor, info.history) == (parse_when(MIDDLE), first.history)
    assert len(info.history) == 1
    assert sorted(scan_states(out).collect()["id"]) == ["a", "b"]


def test_the_lock_file_removed_by_a_failed_first_export_is_not_shared(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    first = Dataset.open(out)
    second_handle = (out / ".lock").open("a+")  # a waiter that opened the old lock file
    first.close()  # never committed: removes .lock while holding it
    assert not (out / ".lock").exists()
    with Dataset.open(out) as again:  # locks a new file, not the removed one
        assert (out / ".lock").exists()
        assert os.fstat(second_handle.fileno()).st_ino != (out / ".lock").stat().st_ino
        assert again.is_new
    second_handle.close()


# -- progress bars (issue 14.12) -----------------------------------------------------

WINDOW: dict[str, Any] = {"since": SINCE, "until": UNTIL, "source": "events"}


def test_iter_states_reports_counts_and_requests(client: PrefectClient) -> None:
    seen: list[Progress] = []
    frames = list(iter_states(client=client, on_progress=seen.append, batch_size=5, **WINDOW))
    assert len(seen) == len(frames) > 1
    assert (seen[-1].runs, seen[-1].states) == (4, 13)
    assert 0 < seen[0].requests <= seen[-1].requests
    assert [p.states for p in seen] == sorted(p.states for p in seen)


@RECORDED_CLOCK
def test_nothing_is_drawn_in_a_non_interactive_run(
    client: PrefectClient, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert fetch_states(client=client, **WINDOW).height == 13
    export_states(tmp_path / "ds", client=client, **WINDOW)
    assert capfd.readouterr() == ("", "")


def test_a_terminal_draws_counts_and_requests(client: PrefectClient) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160)
    with progress_bar(title="fetch", console=console, interval=0) as on_progress:
        assert on_progress is not None
        list(iter_states(client=client, on_progress=on_progress, **WINDOW))
    assert "4 task runs, 13 states" in screen.getvalue()
    assert "requests via events" in screen.getvalue()


def test_off_draws_nothing_even_on_a_terminal() -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    with progress_bar(False, console=console) as on_progress:
        assert on_progress is None


NOTEBOOK_CODE = """
import httpx
from tests.recorded import SINCE, UNTIL, Router
import trs_analytics as ta
client = ta.PrefectClient("http://test/api", transport=httpx.MockTransport(Router()))
frame = ta.fetch_states(client=client, since=SINCE, until=UNTIL, source="events")
"""


def test_a_notebook_shows_an_html_bar_and_progress_false_shows_none() -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(NOTEBOOK_CODE),
        nbformat.v4.new_code_cell(
            "quiet = ta.fetch_states(client=client, since=SINCE, until=UNTIL, progress=False)"
        ),
        nbformat.v4.new_code_cell("print(frame.height, quiet.height)"),
    ]
    runner = NotebookClient(
        notebook, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(ROOT)}}
    )
    runner.execute()
    shown = notebook.cells[0].outputs
    bars = [o["data"]["text/html"] for o in shown if "text/html" in o.get("data", {})]
    assert len(bars) == 1, shown  # one bar, updated in place
    assert "<progress" in bars[0]
    assert "done: 4 task runs, 13 states" in bars[0]
    assert notebook.cells[1].outputs == []
    assert notebook.cells[2].outputs[0]["text"] == "13 13\n"

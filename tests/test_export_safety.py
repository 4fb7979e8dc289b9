"""A dataset under a full disk, a read-only folder, and a first export that fails.

Runs the real client over the recorded Prefect server (``httpx.MockTransport``).
The full disk and the read-only folder are real: a tiny tmpfs mounted for the
test when the tests run as root (they do in CI's container); otherwise the
read-only folder is a ``chmod 555`` folder and the full disk is injected where
every file is written (``os.fsync`` raising ``ENOSPC``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.disks import disk, read_only
from tests.recorded import SINCE, UNTIL, Router
from trs_analytics.client import PrefectClient
from trs_analytics.exceptions import ConfigurationError, StorageError, TransportError
from trs_analytics.export import export_states
from trs_analytics.storage import (
    MARKER_NAME,
    Dataset,
    DatasetInfo,
    ExportResult,
    read_dataset_info,
    scan_states,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from trs_analytics.storage import ExportResult as Result

API = "http://test/api"
MIDDLE = "2026-11-28T13:36:00Z"


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(tmp_path / "no-profiles.toml"))


@pytest.fixture
def client() -> Iterator[PrefectClient]:
    with PrefectClient(API, transport=httpx.MockTransport(Router()), sleep=lambda _: None) as c:
        yield c


def export(out: Path, client: PrefectClient, **kwargs: Any) -> Result:
    kwargs.setdefault("since", SINCE)
    kwargs.setdefault("until", UNTIL)
    kwargs.setdefault("source", "events")
    return export_states(out, client=client, **kwargs)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


# -- a full disk ---------------------------------------------------------------------


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


def test_an_unreachable_server_on_the_first_export_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    with (
        PrefectClient("http://127.0.0.1:9/api", max_attempts=1) as dead,
        pytest.raises(TransportError),
    ):
        export_states(out, client=dead, since=SINCE, until=UNTIL, flow_names="typo")
    assert not out.exists()


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


def test_a_commit_without_rows_records_the_cursor(tmp_path: Path, client: PrefectClient) -> None:
    quiet = {"since": "2026-11-28T12:00:00Z", "until": "2026-11-28T12:30:00Z"}
    result = export(tmp_path / "ds", client, flow_names="demo", **quiet)
    info = read_dataset_info(tmp_path / "ds")
    assert isinstance(info, DatasetInfo)
    assert isinstance(result, ExportResult)
    assert (info.cursor, info.filters, info.exports) == (result.until, {"flow_names": ["demo"]}, 1)
    assert result.summary().startswith("nothing new: the server has no task-run states from")


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

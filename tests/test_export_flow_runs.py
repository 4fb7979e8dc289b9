"""export writes flow-run states into the dataset's own flow-run table; every engine reads it.

The real-server half exports the known workload (3.9.1) into a dataset made
without the table first, as a dataset written before the table existed would
be, and checks that the next export fills the table with every flow run the
workload recorded, read back by ``scan_flow_run_states`` on Polars, DuckDB and
Spark. The recorded-server half checks the layout in milliseconds.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import polars as pl
import pytest

import trs_analytics as ta
from tests.clock import DISTANT
from tests.engines.native import spark_session, to_polars
from tests.recorded import SINCE, UNTIL, Router
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.export import export_states
from trs_analytics.schema import FLOW_RUNS, TASK_RUNS
from trs_analytics.storage import MARKER_NAME, Dataset, read_dataset_info

if TYPE_CHECKING:
    from pathlib import Path

    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth

API = "http://test/api"


def _recorded_export(out: Path, **kwargs: object) -> ta.export.ExportResult:
    with ta.PrefectClient(API, transport=httpx.MockTransport(Router())) as client:
        return export_states(out, client=client, since=SINCE, until=UNTIL, progress=False, **kwargs)  # type: ignore[arg-type]


@pytest.mark.clock(DISTANT)  # after the recording: an export never reads past now
def test_a_dataset_without_the_table_reads_empty_and_gains_it(tmp_path: Path) -> None:
    out = tmp_path / "states"
    first = _recorded_export(out, flow_runs=False)
    assert first.flow_run_states is None
    assert not (out / "_flow_run_states").exists()
    before = ta.scan_states(out).collect()
    assert ta.scan_flow_run_states(out).collect().schema == ta.FLOW_RUN_STATES_SCHEMA
    assert ta.scan_flow_run_states(out).collect().height == 0

    second = _recorded_export(out)  # flow_runs=True is the default
    assert second.flow_run_states == 0  # the recorded flow run's states were not recorded
    info = read_dataset_info(out / "_flow_run_states")
    assert info.cursor == ta.parse_when(UNTIL)
    assert info.schema_version == ta.schema.FLOW_RUN_SCHEMA_VERSION
    marker = json.loads((out / "_flow_run_states" / "_trs_dataset.json").read_text())
    assert marker["format"] == "trs_analytics.dataset"
    # the task-run table is read as before: the flow-run table is a hidden folder to it
    assert ta.scan_states(out).collect().equals(before)
    assert to_polars(ta.scan_states(out, engine="duckdb")).height == before.height


# -- the marker names its table's kind (issue 23) --------------------------------------------


@pytest.mark.clock(DISTANT)  # after the recording: an export never reads past now
def test_each_marker_names_its_kind(tmp_path: Path) -> None:
    out = tmp_path / "states"
    _recorded_export(out)
    task_marker = json.loads((out / MARKER_NAME).read_text())
    flow_marker = json.loads((out / "_flow_run_states" / MARKER_NAME).read_text())
    assert (task_marker["kind"], flow_marker["kind"]) == ("task_runs", "flow_runs")
    assert (task_marker["schema_version"], flow_marker["schema_version"]) == (2, 1)
    assert read_dataset_info(out / "_flow_run_states").kind == "flow_runs"


@pytest.mark.clock(DISTANT)  # after the recording: an export never reads past now
def test_markers_without_a_kind_are_read_by_where_they_are(tmp_path: Path) -> None:
    """A dataset exported before markers named their kind keeps working, and stays guarded."""
    out = tmp_path / "states"
    _recorded_export(out)
    for marker in (out / MARKER_NAME, out / "_flow_run_states" / MARKER_NAME):
        data = json.loads(marker.read_text())
        del data["kind"]
        marker.write_text(json.dumps(data))
    assert read_dataset_info(out).kind == "task_runs"
    assert read_dataset_info(out / "_flow_run_states").kind == "flow_runs"
    again = _recorded_export(out)  # both tables open and commit as before
    assert again.flow_run_states == 0
    assert json.loads((out / MARKER_NAME).read_text())["kind"] == "task_runs"
    moved = tmp_path / "moved" / "_flow_run_states"  # out of its dataset: no parent marker
    moved.parent.mkdir()
    (out / "_flow_run_states").rename(moved)
    with pytest.raises(ConfigurationError, match="is the table of flow-run states, not of task"):
        Dataset.open(moved, kind=TASK_RUNS)  # the folder's name tells its kind


@pytest.mark.clock(DISTANT)  # after the recording: an export never reads past now
@pytest.mark.parametrize("made", [True, False], ids=["table-exported", "no-table-yet"])
def test_a_task_run_dataset_never_opens_in_the_flow_run_table(tmp_path: Path, made: bool) -> None:
    out = tmp_path / "states"
    _recorded_export(out, flow_runs=made)
    table = out / "_flow_run_states"
    with pytest.raises(ConfigurationError, match="is its flow-run table of the dataset"):
        _recorded_export(table)
    assert table.exists() is made  # the refusal made no folder


@pytest.mark.clock(DISTANT)  # after the recording: an export never reads past now
def test_a_flow_run_table_never_opens_on_a_task_run_marker(tmp_path: Path) -> None:
    out = tmp_path / "states"
    _recorded_export(out, flow_runs=False)
    impostor = tmp_path / "elsewhere" / "_flow_run_states"
    impostor.parent.mkdir()
    (out).rename(impostor)  # a task-run dataset now where a flow-run table would be
    with pytest.raises(ConfigurationError, match="is the table of task-run states, not of flow"):
        Dataset.open(impostor.parent, kind=FLOW_RUNS)


# -- a real server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(
    prefect_server: PrefectServer, workload: GroundTruth, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, pl.DataFrame]:
    """A task-run-only dataset of the workload, then one more export with the flow-run table."""
    out = tmp_path_factory.mktemp("flow-export") / "states"
    since = workload.started_at - timedelta(minutes=1)
    until = datetime.now(UTC) + timedelta(minutes=1)
    with ta.PrefectClient(prefect_server.api_url) as client:
        export_states(out, client=client, since=since, until=until, flow_runs=False, progress=False)
        second = export_states(
            out, client=client, until=until + timedelta(seconds=1), progress=False
        )
        fetched = ta.fetch_flow_run_states(client=client, since=since, until=until, progress=False)
    # the table was new: it started where the dataset's first export started
    assert second.flow_run_states == fetched.height
    assert second.flow_run_added == second.flow_run_rows == fetched.height
    return out, fetched


def test_the_export_holds_every_flow_run_of_the_workload(
    exported: tuple[Path, pl.DataFrame], workload: GroundTruth
) -> None:
    out, fetched = exported
    table = ta.scan_flow_run_states(out).collect()
    assert table.sort("timestamp", "id").equals(fetched)
    mine = table.filter(pl.col("flow_run_id").is_in(list(workload.flow_runs)))
    assert mine.height == workload.n_flow_run_states
    finals = mine.sort("timestamp").group_by("flow_run_id").agg(pl.col("name").last())
    assert dict(finals.iter_rows()) == {k: v.final_name for k, v in workload.flow_runs.items()}
    assert sorted(p.parent.name for p in (out / "_flow_run_states").glob("day=*/part-*.parquet"))


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_every_engine_reads_the_flow_run_table(
    exported: tuple[Path, pl.DataFrame], engine: str
) -> None:
    out, fetched = exported
    spark = spark_session() if engine == "spark" else None
    scanned = ta.scan_flow_run_states(out, engine=engine, spark=spark)  # type: ignore[call-overload]
    got = to_polars(scanned).sort("timestamp", "id")
    assert got.columns == list(ta.FLOW_RUN_STATES_SCHEMA)
    expected = fetched.with_columns(pl.col("type").cast(pl.String))
    assert got.with_columns(pl.col("type").cast(pl.String)).equals(expected)

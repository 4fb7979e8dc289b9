"""scan_states on every engine: the same states, UTC timestamps, the user's own connection."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.testing as tt
from tests.engines.native import spark_session, to_polars
from trs_analytics.engines import ENGINES, MissingDependencyError, engine_of
from trs_analytics.storage import DatasetInfo

if TYPE_CHECKING:
    import duckdb
    from pyspark.sql import SparkSession

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample_states.parquet"

#: The contract on an engine without Enum: ``type`` is a string.
PORTABLE_SCHEMA = pl.Schema({**ta.STATES_SCHEMA, "type": pl.String()})


@pytest.fixture(scope="module")
def spark() -> SparkSession:
    return spark_session()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    if request.param == "spark":
        request.getfixturevalue("spark")  # the shared session, UTC
    return str(request.param)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    """An exported dataset's layout: day partitions, parts, a marker and a hidden leftover."""
    root = tmp_path_factory.mktemp("dataset")
    states = tt.generate_states(600, seed=3, days=2, n_tasks=4, n_flows=2)
    day = pl.col("timestamp").dt.date().cast(pl.String)
    for (name,), part in states.with_columns(_day=day).partition_by("_day", as_dict=True).items():
        half = part.height // 2
        for number, rows in enumerate((part[:half], part[half:])):
            ta.write_states(rows.drop("_day"), root / f"day={name}" / f"part-{number:05d}.parquet")
    marker = DatasetInfo(path=root).to_json()  # every reader checks the marker's format
    (root / "_trs_dataset.json").write_text(json.dumps(marker))
    (root / f"day={name}" / ".part-00002.parquet.0f0f.tmp").write_bytes(b"half a file")
    return root, states


def read(path: Path, engine: str, **kwargs: Any) -> pl.DataFrame:
    scanned = ta.scan_states(path, engine=engine, **kwargs)  # type: ignore[call-overload]
    assert engine_of(scanned) == engine
    return to_polars(scanned)


def portable(states: pl.DataFrame) -> pl.DataFrame:
    return states.cast({"type": pl.String})


def test_sample_reads_the_same_on_every_engine(engine: str) -> None:
    got = read(SAMPLE, engine)
    assert got.schema == (ta.STATES_SCHEMA if engine == "polars" else PORTABLE_SCHEMA)
    raw = pl.read_parquet(SAMPLE)  # written under schema version 1
    assert portable(got.select(raw.columns)).equals(portable(raw))
    added = [c for c in got.columns if c not in raw.columns]
    assert added, "the sample predates schema version 2"
    assert got.select(added).null_count().row(0) == (got.height,) * len(added)


def test_dataset_reads_every_part_once_without_the_day_column(
    engine: str, dataset: tuple[Path, pl.DataFrame]
) -> None:
    root, states = dataset
    got = read(root, engine)
    assert "day" not in got.columns
    assert got.height == states.height
    key = ["task_run_id", "id"]
    assert portable(got).sort(key).equals(portable(states).sort(key))


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_a_uri_is_listed_by_the_engine(
    engine: str, dataset: tuple[Path, pl.DataFrame], request: pytest.FixtureRequest
) -> None:
    if engine == "spark":
        request.getfixturevalue("spark")
    root, states = dataset
    got = to_polars(ta.scan_states(f"file://{root}/", engine=engine))  # type: ignore[call-overload]
    assert got.schema == PORTABLE_SCHEMA
    key = ["task_run_id", "id"]
    assert got.sort(key).equals(portable(states).sort(key))


def test_empty_dataset_has_the_contract_columns(engine: str, tmp_path: Path) -> None:
    got = read(tmp_path, engine)
    assert got.height == 0
    assert got.schema == (ta.STATES_SCHEMA if engine == "polars" else PORTABLE_SCHEMA)


def test_timestamps_are_utc_instants_and_days_are_utc_days(engine: str, tmp_path: Path) -> None:
    late = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # 2026-03-02 in Tokyo, 18:30 in New York
    states = tt.generate_states(1, seed=1).with_columns(
        timestamp=pl.lit(late, ta.STATES_SCHEMA["timestamp"])
    )
    path = ta.write_states(states, tmp_path / "late.parquet")
    scanned = ta.scan_states(path, engine=engine)  # type: ignore[call-overload]
    if engine == "duckdb":
        days = scanned.select("CAST(timestamp AS DATE) AS d").fetchall()
    elif engine == "spark":
        days = [tuple(r) for r in scanned.selectExpr("to_date(timestamp) AS d").collect()]
    else:
        days = scanned.select(pl.col("timestamp").dt.date()).collect().rows()
    assert {d for (d,) in days} == {late.date()}
    assert set(to_polars(scanned)["timestamp"]) == {late}


def test_missing_path_and_damaged_file_are_storage_errors(engine: str, tmp_path: Path) -> None:
    with pytest.raises(ta.StorageError, match="does not exist"):
        ta.scan_states(tmp_path / "nowhere", engine=engine)  # type: ignore[call-overload]
    (tmp_path / "day=2026-01-01").mkdir()
    (tmp_path / "day=2026-01-01" / "part-00000.parquet").write_bytes(b"not parquet")
    with pytest.raises(ta.StorageError, match="not a readable Parquet file"):
        ta.scan_states(tmp_path, engine=engine)  # type: ignore[call-overload]


def test_a_users_duckdb_connection_is_used_and_must_be_utc() -> None:
    import duckdb

    connection: duckdb.DuckDBPyConnection = duckdb.connect()
    connection.sql("SET TimeZone = 'America/New_York'")
    with pytest.raises(ta.ConfigurationError, match="TimeZone is 'America/New_York'"):
        ta.scan_states(SAMPLE, engine="duckdb", connection=connection)
    connection.sql("SET TimeZone = 'UTC'")
    ta.scan_states(SAMPLE, engine="duckdb", connection=connection).to_view("states")
    assert connection.sql("SELECT count(*) FROM states").fetchall() == [(8928,)]


def test_a_users_spark_session_must_be_utc(spark: SparkSession) -> None:
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        with pytest.raises(ta.ConfigurationError, match="America/New_York"):
            ta.scan_states(SAMPLE, engine="spark", spark=spark)
        with pytest.raises(ta.ConfigurationError, match="America/New_York"):
            ta.scan_states(SAMPLE, engine="spark")  # the active session is checked too
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert ta.scan_states(SAMPLE, engine="spark", spark=spark).count() == 8928


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine": "pandas"}, "engine='pandas' is not an engine"),
        ({"engine": "polars", "connection": object()}, "connection= is a DuckDB connection"),
        ({"engine": "duckdb", "spark": object()}, "spark= is a SparkSession"),
    ],
)
def test_bad_arguments_are_configuration_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ta.ConfigurationError, match=message):
        ta.scan_states(SAMPLE, **kwargs)


@pytest.mark.parametrize(
    ("engine", "module", "extra"), [("duckdb", "duckdb", "duckdb"), ("spark", "pyspark", "spark")]
)
def test_a_missing_engine_names_its_extra(
    engine: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled package looks like
    with pytest.raises(MissingDependencyError) as caught:
        ta.scan_states(SAMPLE, engine=engine)  # type: ignore[call-overload]
    assert f"engine='{engine}' needs {module}" in str(caught.value)
    assert f"Hint: pip install 'trs-analytics[{extra}]'" in str(caught.value)
    assert isinstance(caught.value, ta.ConfigurationError)

"""Fixtures for the cross-engine tests: one SparkSession, DuckDB connections, engines.

- ``spark`` (session): the test process's one local SparkSession
  (:func:`tests.engines.native.spark_session`); starting a JVM takes ~10 s, so
  every Spark test shares it.
- ``duckdb_connection`` (session): an in-memory DuckDB connection set to UTC.
- ``engine`` (session, parametrized): ``polars-eager``, ``polars-lazy``,
  ``duckdb``, ``spark``.
- ``on_engine`` -> ``convert(states: pl.DataFrame) -> native frame`` of ``engine``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.engines.native import ENGINE_IDS, spark_session, to_native

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import duckdb
    import polars as pl
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark() -> SparkSession:
    return spark_session()


@pytest.fixture(scope="session")
def duckdb_connection() -> Iterator[duckdb.DuckDBPyConnection]:
    import duckdb

    connection = duckdb.connect()
    connection.sql("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


@pytest.fixture(scope="session", params=ENGINE_IDS)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def on_engine(engine: str, request: pytest.FixtureRequest) -> Callable[[pl.DataFrame], Any]:
    """A function putting a Polars states frame on ``engine`` (Spark started only if needed)."""
    connection = request.getfixturevalue("duckdb_connection") if engine == "duckdb" else None
    session = request.getfixturevalue("spark") if engine == "spark" else None

    def convert(states: pl.DataFrame) -> Any:
        return to_native(states, engine, connection=connection, spark=session)

    return convert

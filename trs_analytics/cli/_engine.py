"""A dataset opened on the engine a command was given (``--engine``, ``--memory-limit``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trs_analytics.engines import check_engine, import_engine, spark_session, sql_text
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.storage import scan_states

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["engine_connection", "scan_on"]


def scan_on(path: Path, engine: str, memory_limit: str | None) -> Any:
    """Open PATH's states on ENGINE (DuckDB with its memory limit, Spark with its driver's)."""
    connection = engine_connection(engine, memory_limit)
    return scan_states(path, engine=check_engine(engine), connection=connection)


def engine_connection(engine: str, memory_limit: str | None) -> Any:
    """A DuckDB connection in UTC with --memory-limit, for --engine duckdb; else ``None``.

    With --engine spark, --memory-limit is the driver memory of the local
    SparkSession started now (:func:`~trs_analytics.engines.spark_session`),
    which the scan then reads on.
    """
    if memory_limit is not None and engine not in ("duckdb", "spark"):
        msg = (
            f"--memory-limit is for --engine duckdb or spark, not {engine}. "
            "Hint: add --engine duckdb."
        )
        raise ConfigurationError(msg)
    if engine == "spark" and memory_limit is not None:
        spark_session(driver_memory=memory_limit)
    if engine != "duckdb":
        return None
    duckdb = import_engine("duckdb")
    connection = duckdb.connect()
    connection.sql("SET TimeZone = 'UTC'")
    if memory_limit is not None:
        try:
            connection.sql(f"SET memory_limit = {sql_text(memory_limit)}")
        except duckdb.Error as err:
            msg = (
                f"--memory-limit {memory_limit!r} is not a size DuckDB understands "
                f"({str(err).splitlines()[0][:120]}). Hint: use a number and a unit, such as 2GB."
            )
            raise ConfigurationError(msg) from err
    return connection

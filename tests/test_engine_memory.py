"""An engine out of memory is told as such, with the option that gives it more, and
``--memory-limit`` reaches a local Spark session as its driver memory.

- DuckDB's ``OutOfMemoryException`` (a real one, from a 20MB limit with no spill
  folder) and a JVM's ``OutOfMemoryError`` inside a Py4J error become one
  ``Error:`` line with a hint and exit code 8, not a crash report (70);
- ``--memory-limit`` with ``--engine spark`` starts the local session with that
  ``spark.driver.memory`` (a child process: its own JVM), which reads the dataset;
  it cannot resize a session already running.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import click
import polars as pl
import pytest
from click.testing import CliRunner

import trs_analytics as ta
from tests.cliout import assert_one_error
from tests.engines.native import spark_session
from trs_analytics.cli import main
from trs_analytics.cli._exits import exit_on_error
from trs_analytics.engines import out_of_memory, spark_size

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SAMPLE = "data/sample_states.parquet"
NOW = ["--now", "2026-11-28T14:23:00Z", "--recent", "6m", "--every", "1m"]


def _duckdb_out_of_memory() -> BaseException:
    import duckdb

    connection = duckdb.connect()
    connection.sql("SET memory_limit = '20MB'")
    connection.sql("SET temp_directory = ''")  # nowhere to spill
    try:
        connection.sql(
            "SELECT count(DISTINCT range::VARCHAR || 'abcdefghijkl') FROM range(5000000)"
        ).fetchall()
    except duckdb.OutOfMemoryException as err:
        return err
    pytest.fail("DuckDB did not run out of memory")


def test_a_duckdb_out_of_memory_error_says_so_and_exits_8(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = _duckdb_out_of_memory()
    assert (out_of_memory(err) or "").startswith("DuckDB ran out of memory (Out of Memory Error")
    command = click.Context(click.Command("report"))  # what the error line is printed through
    with command, pytest.raises(SystemExit) as stopped, exit_on_error():
        raise err
    assert stopped.value.code == 8
    assert "Hint: raise --memory-limit" in capsys.readouterr().err


def test_a_jvm_out_of_memory_error_names_the_driver_memory() -> None:
    # Py4J's error is built from a live Java exception; its name and text are what is read
    py4j_error = type("Py4JJavaError", (Exception,), {})
    err = py4j_error("An error occurred: java.lang.OutOfMemoryError: Java heap space")
    assert "--memory-limit 4GB (spark.driver.memory)" in (out_of_memory(err) or "")
    assert out_of_memory(py4j_error("java.io.IOException: disk")) is None
    # Spark's own, when an operator gets no more execution memory (20M report, 2 GiB heap)
    aggregate = py4j_error(
        "Caused by: org.apache.spark.memory.SparkOutOfMemoryError: [AGGREGATE_OUT_OF_MEMORY] "
        "No enough memory for aggregation SQLSTATE: 82001"
    )
    assert (out_of_memory(aggregate) or "").startswith("Spark ran out of execution memory")

    class Unreadable(Exception):  # Py4J asks the JVM for the text: gone, it raises
        def __str__(self) -> str:
            raise ConnectionRefusedError(111, "Connection refused")

    gone = type("Py4JJavaError", (Unreadable,), {})()
    assert (out_of_memory(gone) or "").startswith("Spark's JVM stopped while the command ran")
    network = type("Py4JNetworkError", (Exception,), {})("Answer from Java side is empty")
    assert "--memory-limit 4GB" in (out_of_memory(network) or "")
    assert out_of_memory(MemoryError()) is None


@pytest.mark.parametrize("size", ["lots", "2 parsecs", "2GB; x", ""])
def test_a_size_spark_cannot_read_is_refused(size: str) -> None:
    with pytest.raises(ta.ConfigurationError, match="is not a size Spark understands"):
        spark_size(size)


@pytest.fixture(scope="module")
def spark() -> SparkSession:
    return spark_session()  # the test session's one SparkSession, which the CLI finds


def test_a_running_spark_session_cannot_be_resized(spark: SparkSession) -> None:
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    args = ["check", SAMPLE, "--engine", "spark", "--memory-limit", "2GB", *NOW]
    assert_one_error(CliRunner().invoke(main, args), 2, "a SparkSession is already running")


def test_memory_limit_starts_the_local_spark_session_with_that_driver_memory() -> None:
    # a child process starts its own JVM: the one place a driver memory can be set. It opens
    # the sample as the commands do (scan_on), and reads it on the session that started
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from trs_analytics.cli._engine import scan_on\n"
        "states = scan_on(Path(sys.argv[1]), 'spark', sys.argv[2])\n"
        "conf = states.sparkSession.sparkContext.getConf()\n"
        "print(conf.get('spark.driver.memory'), states.count())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, SAMPLE, "700MB"], capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = ta.scan_states(SAMPLE).select(pl.len()).collect().item()
    assert done.stdout.split() == ["700m", str(rows)]

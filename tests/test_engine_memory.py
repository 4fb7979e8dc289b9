"""An engine out of memory is told as such, with the option that gives it more, and
``--memory-limit`` reaches a local Spark session as its driver memory.

- DuckDB's ``OutOfMemoryException`` (a real one, from a 20MB limit with no spill
  folder) and a JVM's ``OutOfMemoryError`` inside a Py4J error become one
  ``Error:`` line with a hint and exit code 8, not a crash report (70);
- ``--memory-limit`` with ``--engine spark`` starts the local session with that
  ``spark.driver.memory`` (a child process: its own JVM), and the check it runs
  finds what Polars finds; it cannot resize a session already running.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import click
import pytest
from click.testing import CliRunner

import trs_analytics as ta
from tests.cliout import assert_one_error
from tests.engines.native import spark_session
from trs_analytics.cli import main
from trs_analytics.cli._exits import exit_on_error
from trs_analytics.engines import out_of_memory, spark_size

if TYPE_CHECKING:
    from pathlib import Path

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


def test_memory_limit_starts_the_local_spark_session_with_that_driver_memory(
    tmp_path: Path,
) -> None:
    args = ["--log-format", "json", "check", SAMPLE, *NOW]
    # the child process starts its own JVM: the one place a driver memory can be set
    probe = (
        "import sys; from trs_analytics.cli import main; "
        "from pyspark.sql import SparkSession\n"
        "try:\n    main(sys.argv[1:])\nfinally:\n"
        "    s = SparkSession.getActiveSession()\n"
        "    print(s.sparkContext.getConf().get('spark.driver.memory'), file=sys.stderr)\n"
    )
    spark = [*args, "--engine", "spark", "--memory-limit", "700MB"]
    done = subprocess.run(
        [sys.executable, "-c", probe, *spark], capture_output=True, text=True, timeout=300,
        cwd=tmp_path.cwd(), check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]  # something is flagged
    assert done.stderr.strip().splitlines()[-1] == "700m"
    polars = CliRunner().invoke(main, args)
    assert polars.exit_code == 1, polars.output
    assert _lines(done.stdout) == _lines(polars.stdout)


def _lines(stdout: str) -> list[dict[str, object]]:
    """The JSON lines printed, without their ``time`` (the clock of each process)."""
    return [
        {k: v for k, v in json.loads(line).items() if k != "time"} for line in stdout.splitlines()
    ]

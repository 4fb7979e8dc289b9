"""Fixtures for the Prometheus tests: a small dataset, ``serve-metrics`` on it, and Prometheus.

- ``dataset`` (session) -> :class:`Exported`: a dataset folder written by the
  storage layer's own writer (:class:`~trs_analytics.storage.Dataset`) from
  ``tt.generate_states`` and ``tt.generate_flow_run_states`` (3 days, 2026-01-01
  to 01-04), with its cursor at :data:`CURSOR`; in its last day one task
  (:data:`PLANTED`) fails every run (so the failure-rate alert has a jump to
  find), and some runs are still open (so the stuck-runs alert fires).
- ``exporter`` (session) -> the URL of ``trs-analytics serve-metrics`` on that
  dataset, a separate process on a free port of 127.0.0.1.
- ``prometheus`` (session) -> :class:`Prometheus`: Debian's ``prometheus`` on a
  free port, temporary storage, scraping ``exporter`` every second with the
  rules of ``dashboards/alerts.yml`` loaded; the fixture returns once Prometheus
  holds a few scrapes of a finished refresh.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import httpx
import polars as pl
import pytest

import trs_analytics.testing as tt
from devtools.prefect_harness import free_port
from trs_analytics.export import ExportResult
from trs_analytics.schema import FLOW_RUNS, TASK_RUNS
from trs_analytics.storage import Dataset

if TYPE_CHECKING:
    from collections.abc import Iterator

#: The repository's dashboards and alert rules.
DASHBOARDS: Final = Path(__file__).resolve().parents[2] / "dashboards"

#: The dataset's cursor: the end of its last export (the window ends there).
CURSOR: Final = datetime(2026, 1, 4, 0, 30, tzinfo=UTC)

#: The task whose runs all fail in the last day.
PLANTED: Final = ("daily-etl", "extract_orders")

#: The window the exporter serves.
WINDOW: Final = timedelta(days=1)


@dataclass(frozen=True)
class Exported:
    """The test dataset: its folder and the frames written into it."""

    path: Path
    states: pl.DataFrame
    flow_run_states: pl.DataFrame


def _plant_failures(states: pl.DataFrame) -> pl.DataFrame:
    """Turn the COMPLETED states of :data:`PLANTED`'s runs in the last day into FAILED."""
    target = (
        (pl.col("flow_name") == PLANTED[0])
        & (pl.col("task_name") == PLANTED[1])
        & (pl.col("type") == "COMPLETED")
        & (pl.col("timestamp") > CURSOR - WINDOW)
    )
    return states.with_columns(
        type=pl.when(target)
        .then(pl.lit("FAILED"))
        .otherwise(pl.col("type"))
        .cast(states["type"].dtype),
        name=pl.when(target).then(pl.lit("Failed")).otherwise(pl.col("name")),
    )


def write_dataset(path: Path, states: pl.DataFrame, flows: pl.DataFrame, until: datetime) -> None:
    """Write both tables into the dataset at ``path`` and move their cursors to ``until``."""
    since = datetime(2026, 1, 1, tzinfo=UTC)
    for kind, frame in ((TASK_RUNS, states), (FLOW_RUNS, flows)):
        with Dataset.open(path, kind=kind) as dataset:
            dataset.add(frame)
            rows = frame.height
            result = ExportResult(path, "states", since, until, rows, 0, rows, rows, 1)
            dataset.commit(result, started=until)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    states = _plant_failures(tt.generate_states(4_000, seed=3, days=3))
    flows = tt.generate_flow_run_states(4_000, seed=3, days=3)
    path = tmp_path_factory.mktemp("prometheus") / "states"
    write_dataset(path, states, flows, CURSOR)
    return Exported(path, states, flows)


#: Generous waits: the machine the tests run on may be shared and loaded.
STARTUP_S: Final = 180
SCRAPED_S: Final = 600


def _wait_http(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {STARTUP_S} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def exporter(dataset: Exported, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("exporter") / "serve.log").open("wb")
    command = [sys.executable, "-m", "trs_analytics.cli", "-v", "serve-metrics", str(dataset.path)]
    command += ["--port", str(port), "--window", "1d", "--refresh", "1h"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        _wait_http(url, process, "serve-metrics")
        yield url
    finally:
        _stop(process)
        log.close()


@dataclass(frozen=True)
class Prometheus:
    """A running Prometheus: its API address."""

    url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result of an instant query (raises on an error answer)."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = answer.json()
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def values(self, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
        """An instant query's samples keyed by the given labels' values."""
        return {
            tuple(r["metric"].get(label, "") for label in labels): float(r["value"][1])
            for r in self.query(expr)
        }


_CONFIG: Final = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: trs-analytics
    static_configs:
      - targets: ["{target}"]
"""


@pytest.fixture(scope="session")
def prometheus(exporter: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: apt-get install prometheus (.ci/run does)")
    folder = tmp_path_factory.mktemp("prom")
    target = exporter.removeprefix("http://").removesuffix("/metrics")
    config = folder / "prometheus.yml"
    config.write_text(_CONFIG.format(rules=DASHBOARDS / "alerts.yml", target=target))
    port = free_port()
    log = (folder / "prometheus.log").open("wb")
    command = [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}"]
    command += [f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        _wait_http(f"{server.url}/-/ready", process, "prometheus")
        _wait_scraped(server)
        yield server
    finally:
        _stop(process)
        log.close()


def _wait_scraped(server: Prometheus) -> None:
    """Wait until Prometheus holds five scrapes of a refreshed exporter and the alerts ran."""
    deadline = time.monotonic() + SCRAPED_S
    while time.monotonic() < deadline:
        scraped = server.query("count_over_time(trs_dataset_states_total[1m])")
        if scraped and float(scraped[0]["value"][1]) >= 5 and server.query("ALERTS"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"Prometheus did not scrape a refreshed serve-metrics within {SCRAPED_S} s")

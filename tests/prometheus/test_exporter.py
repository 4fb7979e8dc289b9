"""The exporter without Prometheus: the textfile, bounded series, engines, background refresh.

Values are checked against independent truth (plain Polars on the Parquet files,
:mod:`tests.prometheus.truth`) or against the library functions the issue defines
the series by; the text is checked by Prometheus' own ``promtool``.
"""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import polars as pl
import polars.testing
import pytest
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families

import trs_analytics as ta
import trs_analytics.testing as tt
from tests.prometheus.conftest import CURSOR, write_dataset
from tests.prometheus.truth import per_run, read_table, window_states
from trs_analytics.cli import main
from trs_analytics.prometheus import (
    MetricsSource,
    Refresher,
    SnapshotCollector,
    compute_snapshot,
)

if TYPE_CHECKING:
    from tests.prometheus.conftest import Exported

TASK: Final = ["flow_name", "task_name"]
DOCS: Final = Path(__file__).resolve().parents[2] / "docs" / "prometheus.md"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition text, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def promtool(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", "check", "metrics"],
        stdin=path.open(),
        capture_output=True,
        text=True,
        check=False,
    )


def test_textfile_is_written_atomically_and_passes_promtool(
    dataset: Exported, tmp_path: Path
) -> None:
    out = tmp_path / "textfile" / "trs.prom"
    result = run("metrics", dataset.path, "--textfile", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["trs.prom"]  # no temporary file
    checked = promtool(out)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""  # not even a lint warning
    served = samples(out.read_text())
    assert served[("trs_dataset_states_total", ())] == read_table(dataset.path).height


def test_the_textfile_holds_what_stdout_shows(dataset: Exported, tmp_path: Path) -> None:
    out = tmp_path / "trs.prom"
    assert run("metrics", dataset.path, "--textfile", out).exit_code == 0
    printed = run("metrics", dataset.path)
    assert printed.exit_code == 0

    def data(text: str) -> dict[Any, float]:
        return {k: v for k, v in samples(text).items() if not k[0].startswith("trs_exporter_")}

    assert data(printed.output) == data(out.read_text())


def test_groups_past_max_series_are_summed_into_other(dataset: Exported, tmp_path: Path) -> None:
    full = samples(run("metrics", dataset.path).output)
    result = CliRunner().invoke(main, ["metrics", str(dataset.path), "--max-series", "5"])
    assert result.exit_code == 0
    bounded = samples(result.stdout)
    groups = {dict(k[1])["task_name"] for k in full if k[0] == "trs_task_runs_total"}
    assert f"{len(groups) - 4} task groups past --max-series 5" in result.stderr
    kept = {
        (dict(k[1])["flow_name"], dict(k[1])["task_name"])
        for k in bounded
        if k[0] == "trs_task_run_retries_total"
    }
    assert len(kept) == 5
    assert ("(other)", "(other)") in kept
    for name in (
        "trs_task_runs_total",
        "trs_task_run_retries_total",
        "trs_task_run_time_seconds_count",
    ):
        assert sum(v for k, v in bounded.items() if k[0] == name) == sum(
            v for k, v in full.items() if k[0] == name
        )
    # The (other) quantiles are those of the folded groups' runs taken together.
    window = window_states(read_table(dataset.path), CURSOR, timedelta(days=1))
    own = pl.Series([(f, t) in kept for f, t in window.select(TASK).iter_rows()])
    folded = window.with_columns(
        pl.when(own).then(pl.col(c)).otherwise(pl.lit("(other)")).alias(c) for c in TASK
    )
    other = ta.summarize(ta.run_time(folded), by=TASK).filter(pl.col("task_name") == "(other)")
    labels = (("flow_name", "(other)"), ("task_name", "(other)"))
    name = "trs_task_run_time_window_seconds"
    assert bounded[(f"{name}_count", labels)] == other["count"].item()
    for q, column in (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99")):
        served = bounded[(name, (*labels[:1], ("quantile", q), *labels[1:]))]
        assert abs(served - other[column].item().total_seconds()) <= 0.001


def test_engines_compute_the_same_snapshot(dataset: Exported) -> None:
    import duckdb

    connection = duckdb.connect()
    connection.sql("SET TimeZone = 'UTC'")
    snaps = [
        compute_snapshot(
            ta.scan_states(dataset.path, **engine),  # type: ignore[call-overload]
            flow_run_states=ta.scan_flow_run_states(dataset.path, **engine),  # type: ignore[call-overload]
            cursor=CURSOR,
        )
        for engine in ({}, {"engine": "duckdb", "connection": connection})
    ]
    frames = ["task_runs", "task_retries", "task_run_time", "task_window", "stuck"]
    frames += ["flow_runs", "flow_run_time", "flow_lateness"]
    for name in frames:
        polars_frame, duckdb_frame = (getattr(s, name) for s in snaps)
        assert polars_frame.height > 0, name
        pl.testing.assert_frame_equal(
            polars_frame, duckdb_frame, check_dtypes=False, rel_tol=1e-9, abs_tol=1e-12
        )
    assert snaps[0].findings == snaps[1].findings
    assert snaps[0].states == snaps[1].states


def test_the_window_ends_at_now_when_given(dataset: Exported) -> None:
    now = CURSOR - timedelta(hours=12)
    result = run("metrics", dataset.path, "--now", now.isoformat(), "--window", "6h")
    assert result.exit_code == 0, result.output
    served = samples(result.output)
    assert served[("trs_window_end_timestamp_seconds", ())] == now.timestamp()
    states = read_table(dataset.path).filter(pl.col("timestamp") <= now)
    ids = states.filter(pl.col("timestamp") > now - timedelta(hours=6))["task_run_id"].unique()
    runs = per_run(states.filter(pl.col("task_run_id").is_in(ids.implode())), "task_run_id", TASK)
    measured = runs.filter(pl.col("run_us").is_not_null()).height
    window = [v for k, v in served.items() if k[0] == "trs_task_run_time_window_seconds_count"]
    assert sum(window) == measured


def test_a_moved_cursor_triggers_a_refresh(tmp_path: Path) -> None:
    states = tt.generate_states(300, seed=5, days=1)
    flows = tt.generate_flow_run_states(300, seed=5, days=1)
    path = tmp_path / "states"
    write_dataset(path, states.head(500), flows, CURSOR)
    collector = SnapshotCollector()
    refresher = Refresher(MetricsSource(path), collector, every=3600, poll=0.05)
    refresher.start()
    try:
        _wait(lambda: collector.status.refreshes == 1)
        write_dataset(path, states, flows, CURSOR + timedelta(hours=1))
        _wait(lambda: collector.status.refreshes == 2)
    finally:
        refresher.stop()
    served = {m.name: m for m in collector.collect()}
    assert served["trs_dataset_states"].samples[0].value == states.height
    cursor = served["trs_dataset_cursor_timestamp_seconds"].samples[0].value
    assert cursor == (CURSOR + timedelta(hours=1)).timestamp()


def test_a_failed_refresh_keeps_the_last_values(tmp_path: Path) -> None:
    path = tmp_path / "states"
    write_dataset(path, tt.generate_states(100, seed=5, days=1), ta.empty_flow_run_states(), CURSOR)
    collector = SnapshotCollector()
    refresher = Refresher(MetricsSource(path), collector)
    assert refresher.refresh()
    first = [m.name for m in collector.collect()]
    (path / "_trs_dataset.json").write_text("not json")
    assert not refresher.refresh()
    assert [m.name for m in collector.collect()] == first
    assert collector.status.failures == 1
    assert collector.status.refreshes == 1


def _wait(condition: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory-limit", "1GB"], "--memory-limit is for --engine duckdb"),
        (["--window", "0s"], "is not a positive duration"),
    ],
)
def test_bad_options_give_one_error_line(dataset: Exported, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["metrics", str(dataset.path), *args])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr


def test_serve_metrics_stops_when_told(dataset: Exported) -> None:
    import httpx

    from devtools.prefect_harness import free_port
    from trs_analytics.prometheus import serve_metrics

    stop, port = threading.Event(), free_port()
    server = threading.Thread(
        target=serve_metrics,
        args=(MetricsSource(dataset.path),),
        kwargs={"port": port, "stop": stop},
    )
    server.start()
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        _wait(lambda: _answers(url) and "trs_dataset_states_total" in httpx.get(url).text)
        served = samples(httpx.get(url).text)
        assert httpx.get(f"http://127.0.0.1:{port}/other").status_code == 404
    finally:
        stop.set()
        server.join(timeout=60)
    assert not server.is_alive()
    assert served[("trs_exporter_refreshes_total", ())] == 1
    assert any(k[0] == "process_resident_memory_bytes" for k in served)

    def data(found: dict[Any, float]) -> dict[Any, float]:
        return {
            k: v for k, v in found.items() if k[0].startswith(("trs_task", "trs_flow", "trs_d"))
        }

    assert data(served) == data(samples(run("metrics", dataset.path).output))


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_docs_list_every_family(dataset: Exported) -> None:
    snap = compute_snapshot(
        ta.scan_states(dataset.path), flow_run_states=ta.scan_flow_run_states(dataset.path)
    )
    collector = SnapshotCollector()
    collector.publish(snap, ended=0.0)
    documented = DOCS.read_text()
    served = list(collector.collect())
    assert len(served) == 20
    for family in served:
        shown = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{shown}`" in documented, shown

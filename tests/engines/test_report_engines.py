"""The report's section data is the same on Polars (eager, lazy), DuckDB and PySpark.

:func:`trs_analytics.report.report_data` computes every section on the states'
engine and brings small Polars frames back; each of them must equal the
reference computed on an eager Polars frame (exact for counts, ids, states
and text, 1e-9 relative for floats: :func:`tests.engines.native.assert_same`).
Data: the bundled real-server sample, a generated history with planted
failures and retries, and (integration) a capture of a real Prefect server.
The HTML written from Polars and from DuckDB shows the same figures.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.testing as tt
from tests.engines.native import ENGINE_IDS, assert_same
from trs_analytics._format import missing_label
from trs_analytics.charts._common import human
from trs_analytics.metrics import parse_rules
from trs_analytics.report import write_report
from trs_analytics.report._flagged import Flagged
from trs_analytics.report._report import report_data

if TYPE_CHECKING:
    from collections.abc import Callable

    import duckdb

    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_states.parquet"

#: What the workload that made the sample recorded of each of its task runs.
SAMPLE_TRUTH = SAMPLE.with_name("sample_ground_truth.json")

#: Rules with a breach in the generated history (its run times reach minutes).
RULES = parse_rules('[[rule]]\nname = "slow"\ntask = "*"\nmax_run_time = "30s"\n')

#: Section data whose row order is part of what is shown (rankings, latest first).
ORDERED = {"failed_runs", "slowest_runs", "worst_p95", "worst_failure_rate"}


def assert_same_data(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Every section's data of ``got`` equals ``want``'s."""
    assert got.keys() == want.keys()
    for name, expected in want.items():
        _assert_same_value(got[name], expected, name)


def _assert_same_value(got: Any, want: Any, name: str) -> None:
    if isinstance(want, pl.DataFrame):
        if {"seconds", "label"} <= set(want.columns):
            # the label is the seconds rounded for reading: engines agree on the seconds to
            # 1e-9 (compared below), and a value on a rounding boundary (3.95 ms) may then
            # read 3.9 ms on one engine and 4.0 ms on another; each label is its own figure's
            for frame in (got, want):
                assert frame["label"].equals(frame.select(human("seconds"))["seconds"]), name
            got, want = got.drop("label"), want.drop("label")
        try:
            assert_same(got, want, ordered=name in ORDERED)
        except AssertionError as err:
            raise AssertionError(f"section data {name!r}: {err}") from err
    elif isinstance(want, Flagged):
        for field in ("anomalies", "stuck", "breaches"):
            _assert_same_value(getattr(got, field), getattr(want, field), f"{name}.{field}")
        for metric, frame in want.results.items():
            _assert_same_value(got.results[metric], frame, f"{name}.{metric}")
    elif isinstance(want, tuple | list) and want and not isinstance(want[0], str | None):
        assert len(got) == len(want), name
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            _assert_same_value(a, b, f"{name}[{i}]")
    elif isinstance(want, tuple) and any(isinstance(v, pl.DataFrame) for v in want):
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            _assert_same_value(a, b, f"{name}[{i}]")
    else:
        assert got == want, f"section data {name!r}: {got!r} != {want!r}"


def _data(states: Any, now: datetime, rules: Any = ()) -> dict[str, Any]:
    return report_data(states, now=now, rules=rules, ui="http://127.0.0.1:4200")


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return pl.read_parquet(SAMPLE)


@pytest.fixture(scope="module")
def generated() -> pl.DataFrame:
    return tt.generate_states(1500, seed=11, days=3, n_tasks=12, n_flows=3)


def _now(states: pl.DataFrame) -> datetime:
    last = states["timestamp"].max()
    assert isinstance(last, datetime)
    return last


def test_the_data_has_what_the_sections_show(generated: pl.DataFrame) -> None:
    """Independent truth for the generated history: counts read off the states in Polars."""
    data = _data(generated, _now(generated), RULES)
    assert data["overview"]["states"] == generated.height
    assert data["overview"]["flow_runs"] == generated["flow_run_id"].n_unique()
    assert int(data["volume"]["runs"].sum()) == generated["task_run_id"].n_unique()
    cards = {h.label: h.value for h in data["headlines"]}
    assert cards["Task runs"] == f"{generated['task_run_id'].n_unique():,}"
    assert data["flagged"].breaches is not None
    assert not data["flagged"].breaches.is_empty()
    assert not data["failure_rates"][1].is_empty()


#: Engines that run the sample on its own. A Spark query costs seconds whatever its size
#: and the report runs about thirty, so Spark runs the generated history (and the
#: command's page below, from another history, against Polars').
SEPARATE_SAMPLE = [e for e in ENGINE_IDS if e != "spark"]


@pytest.fixture(scope="module")
def sample_want(sample: pl.DataFrame) -> dict[str, Any]:
    """The sample's section data on eager Polars, the reference of every engine."""
    return _data(sample, _now(sample))


@pytest.fixture(scope="module")
def sample_data(
    sample: pl.DataFrame, engine: str, on_engine: Callable[[pl.DataFrame], Any]
) -> dict[str, Any]:
    """The sample's section data on ``engine`` (computed once, read by two tests)."""
    return _data(on_engine(sample), _now(sample))


@pytest.mark.parametrize("engine", SEPARATE_SAMPLE, indirect=True)
def test_report_data_on_the_sample_is_the_same_on_every_engine(
    sample_data: dict[str, Any], sample_want: dict[str, Any]
) -> None:
    assert_same_data(sample_data, sample_want)


@pytest.mark.parametrize("engine", SEPARATE_SAMPLE, indirect=True)
def test_the_runs_per_flow_table_counts_the_flow_runs_the_workload_ran(
    sample_data: dict[str, Any],
) -> None:
    """ "etl: 36 flow runs, 1,440 task runs": both counted from the workload's own record of
    its task runs; the task runs outside any flow are in no flow run."""
    flow_runs: dict[str, set[str]] = {}
    task_runs: dict[str, int] = {}
    for run in json.loads(SAMPLE_TRUTH.read_text(encoding="utf-8"))["task_runs"].values():
        flow = run["flow_name"] or missing_label("flow_name")
        flow_runs.setdefault(flow, set()).update([run["flow_run_id"]] if run["flow_run_id"] else [])
        task_runs[flow] = task_runs.get(flow, 0) + 1
    want = {flow: (len(runs), task_runs[flow]) for flow, runs in flow_runs.items()}
    assert want["etl"] == (36, 1440)
    table = sample_data["outcomes:flow_name"]
    got = table.select("flow_name", "flow runs", "task runs").rows()
    assert {flow: (flows, tasks) for flow, flows, tasks in got} == want


@pytest.mark.timeout(1800)
def test_report_data_on_a_generated_history_is_the_same_on_every_engine(
    generated: pl.DataFrame, engine: str, on_engine: Callable[[pl.DataFrame], Any]
) -> None:
    want = _data(generated, _now(generated), RULES)
    assert_same_data(_data(on_engine(generated), _now(generated), RULES), want)


def _figures(html: str) -> str:
    """The page without its chart specs and its generation time: the tables and cards."""
    text = re.sub(r"<script.*?</script>", "", html, flags=re.DOTALL)
    return re.sub(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", "", text)


def test_the_html_shows_the_same_figures_on_polars_and_duckdb(
    generated: pl.DataFrame, duckdb_connection: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    now = _now(generated)
    polars = write_report(generated.lazy(), tmp_path / "p.html", now=now, rules=RULES)
    native = _native_duckdb(generated, duckdb_connection)
    duck = write_report(native, tmp_path / "d.html", now=now, rules=RULES)
    want = _figures(polars.read_text(encoding="utf-8"))
    assert "<td>" in want
    assert _figures(duck.read_text(encoding="utf-8")) == want


def _native_duckdb(states: pl.DataFrame, connection: duckdb.DuckDBPyConnection) -> Any:
    from tests.engines.native import to_native

    return to_native(states, "duckdb", connection=connection)


@pytest.mark.integration
def test_report_data_on_a_real_server_capture(
    prefect_server: PrefectServer,
    workload: GroundTruth,
    engine: str,
    on_engine: Callable[[pl.DataFrame], Any],
) -> None:
    fetched = ta.fetch_states(
        prefect_server.api_url,
        since=workload.started_at - timedelta(minutes=1),
        until=workload.finished_at + timedelta(minutes=1),
        source="states",
    )
    now = workload.finished_at.astimezone(UTC)
    assert_same_data(_data(on_engine(fetched), now), _data(fetched, now))


@pytest.mark.timeout(1800)
def test_the_report_command_runs_on_spark(spark: Any, tmp_path: Path) -> None:
    """``trs-analytics report DS --engine spark`` (local mode) shows the Polars figures."""
    from click.testing import CliRunner

    from trs_analytics.cli import main

    assert spark is not None  # the session's one local SparkSession, which the command finds
    states = tt.generate_states(300, seed=3, days=2, n_tasks=6, n_flows=2)
    path = ta.write_states(states, tmp_path / "states.parquet")
    pages = {}
    for engine in ("polars", "spark"):
        out = tmp_path / f"{engine}.html"
        args = ["report", str(path), "--out", str(out), "--engine", engine, "--period", "1d"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        pages[engine] = _figures(out.read_text(encoding="utf-8"))
    assert "<td>" in pages["polars"]
    assert pages["spark"] == pages["polars"]

"""A run table gives every per-run metric the same answer as the states, on every engine.

``ta.run_table`` reduces each run's states to one row once; the metrics that
accept it (see docs/metrics.md, "the run table") must then return exactly what
they return from the states. The reference is the metric on the eager Polars
states; the run table is built on each engine and kept there
(``materialized``: collected, a DuckDB table, a persisted Spark frame), as the
report and the check keep it. Data: the bundled real-server sample, and
hypothesis histories with duplicates, ties and skewed clocks (with the sample
on Spark, one query per case there).
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import narwhals as nw
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

import trs_analytics as ta
import trs_analytics.testing as tt
from tests.engines.cases import NOW, OPEN_RULES, RULES, Case, opened
from tests.engines.native import KIND_OF, assert_same, kind
from tests.engines.test_metric_engines import EXAMPLES, SEPARATE_SAMPLE, histories, with_sample
from trs_analytics.exceptions import SchemaError
from trs_analytics.metrics._frames import materialized, materialized_by_run

if TYPE_CHECKING:
    from collections.abc import Callable

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_states.parquet"
WINDOW = "1m"


def _table_cases() -> list[Case]:
    return [
        Case("retry_counts", ta.retry_counts, ordered=True),
        Case("retry_distribution", ta.retry_distribution, ordered=True),
        Case("retry_distribution-by-none", lambda s: ta.retry_distribution(s, by=None), True),
        Case("failure_rates-by-tags", lambda s: ta.failure_rates(s, by="tags"), True),
        Case(
            "failure_rates-every",
            lambda s: ta.failure_rates(s, by="flow_name", every=WINDOW),
            ordered=True,
        ),
        Case("run_time", ta.run_time),
        Case("lateness", ta.lateness),
        Case("summarize-run_time", lambda s: ta.summarize(ta.run_time(s), by="task_name")),
        Case("compare_windows", lambda s: ta.compare_windows(s, window=WINDOW, min_runs=1)),
        Case("run_outcomes", ta.run_outcomes),
        Case("outcome_counts", lambda s: ta.outcome_counts(s, by="flow_name")),
        Case("run_volume", lambda s: ta.run_volume(s, every=WINDOW)),
        Case("duration_trend", lambda s: ta.duration_trend(s, every=WINDOW)),
        Case(
            "anomalies-run_time",
            lambda s: ta.detect_anomalies(s, metric="run_time", every=WINDOW, min_training=2),
            ordered=True,
        ),
        Case(
            "anomalies-failure_rate",
            lambda s: ta.detect_anomalies(s, metric="failure_rate", every=WINDOW, min_training=2),
            ordered=True,
        ),
        Case(
            "sla_report-breaches",
            lambda s: ta.sla_report(s, RULES, every=WINDOW, now=NOW).breaches,
            ordered=True,
        ),
        Case(
            "sla_report-compliance",
            lambda s: ta.sla_report(s, RULES, every=WINDOW, now=NOW).compliance,
            ordered=True,
        ),
    ]


#: Cases on states with runs left open (stuck, still running): the table is built from them.
OPEN_CASES = [
    Case("stuck_runs", lambda s: ta.stuck_runs(s, now=NOW, by="tags", limit="10m"), True),
    Case(
        "stuck_runs-fallback",
        lambda s: ta.stuck_runs(s, now=NOW, min_history=150, default="1h"),
        ordered=True,
    ),
    Case("sla_report-open", lambda s: ta.sla_report(s, OPEN_RULES, now=NOW).breaches, True),
]

CASES = [pytest.param(c, False, id=c.id) for c in _table_cases()] + [
    pytest.param(c, True, id=f"{c.id}-open") for c in OPEN_CASES
]


def check(case: Case, is_open: bool, states: pl.DataFrame, native: Any, engine: str) -> None:
    if is_open:
        states, native = opened(states), opened(native)
    with materialized(ta.run_table(native)) as runs:
        result = case.call(runs)
        expected_kind = "polars.LazyFrame" if engine.startswith("polars") else KIND_OF[engine]
        assert kind(result) == expected_kind, f"{case.id} on {engine}: {type(result)}"
        assert_same(result, case.call(states), ordered=case.ordered)


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return pl.read_parquet(SAMPLE)


@pytest.mark.parametrize("engine", SEPARATE_SAMPLE, indirect=True)
@pytest.mark.parametrize(("case", "is_open"), CASES)
def test_sample(
    case: Case,
    is_open: bool,
    engine: str,
    sample: pl.DataFrame,
    on_engine: Callable[[pl.DataFrame], Any],
) -> None:
    check(case, is_open, sample, on_engine(sample), engine)


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


#: The cases Spark runs (each query costs it seconds): outcome counts, run time through
#: an anomaly band, and open runs; the report's and the check's Spark tests read the
#: table through every other section.
SPARK_CASES = {"failure_rates-every", "anomalies-run_time", "stuck_runs"}

#: Every case on the engines that run the sample apart; the Spark cases on Spark.
GENERATED = [
    pytest.param(*p.values, engine, id=f"{p.id}-{engine}")
    for engine in [*SEPARATE_SAMPLE, "spark"]
    for p in CASES
    if engine != "spark" or str(p.id).removesuffix("-open") in SPARK_CASES
]


@pytest.mark.parametrize(("case", "is_open", "engine"), GENERATED, indirect=["engine"])
def test_generated(
    case: Case,
    is_open: bool,
    engine: str,
    on_engine: Callable[[pl.DataFrame], Any],
    sample: pl.DataFrame,
) -> None:
    @_settings(max(1, EXAMPLES[engine] // 2))
    @given(histories())
    def holds(states: pl.DataFrame) -> None:
        if engine not in SEPARATE_SAMPLE:
            states = with_sample(sample, states)
        check(case, is_open, states, on_engine(states), engine)

    holds()


def test_metrics_of_single_states_refuse_a_run_table() -> None:
    runs = ta.run_table(tt.generate_states(20, seed=1))
    with pytest.raises(SchemaError, match="type"):
        ta.queue_wait(runs)


def test_a_table_of_another_layout_is_refused() -> None:
    runs = ta.run_table(tt.generate_states(20, seed=1)).rename({"_run_table_v1": "_run_table_v0"})
    with pytest.raises(SchemaError, match="another layout"):
        ta.failure_rates(runs)


def test_a_missing_by_column_names_the_fix() -> None:
    runs = ta.run_table(tt.generate_states(20, seed=1).drop("work_pool_name"))
    with pytest.raises(SchemaError, match="work_pool_name"):
        ta.failure_rates(runs, by="work_pool_name")


def _queue_of_table(runs: Any) -> Any:
    """The run table's queue waits in queue_wait's columns (what the report reads)."""
    frame = nw.from_native(runs)
    return (
        frame.filter(~nw.col("queue_start").is_null())
        .select("task_run_id", start_time=nw.col("queue_start"), duration=nw.col("queue_wait"))
        .to_native()
    )


@pytest.mark.parametrize("engine", SEPARATE_SAMPLE, indirect=True)
def test_queue_wait_of_the_table_is_queue_waits(
    engine: str, on_engine: Callable[[pl.DataFrame], Any], sample: pl.DataFrame
) -> None:
    @_settings(EXAMPLES[engine])
    @given(histories())
    def holds(states: pl.DataFrame) -> None:
        states = with_sample(sample, states)
        expected = ta.queue_wait(states).select("task_run_id", "start_time", "duration")
        with materialized(ta.run_table(on_engine(states))) as runs:
            assert_same(_queue_of_table(runs), expected)

    holds()


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own ``TMPDIR``: the folders it finds are its own, not another process's."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("parts", [2, 7])
def test_a_polars_run_table_built_in_sets_of_runs_is_the_whole_table(
    parts: int, sample: pl.DataFrame, temp: Path
) -> None:
    """Every run's states land in one set (copies of a state too), so the rows are equal."""
    doubled = pl.concat([sample, sample.head(500)])  # copies of states, as an export overlap
    whole = ta.run_table(doubled)
    with materialized_by_run(doubled.lazy(), ta.run_table, run="task_run_id", parts=parts) as kept:
        assert_same(kept.collect(), whole)
        assert_same(ta.failure_rates(kept, by="task_name"), ta.failure_rates(doubled))
    # what the report and the check keep: the stored figures in files, the public view on read
    with ta.kept_run_table(doubled.lazy(), parts=parts) as kept:
        assert_same(kept.collect(), whole)
        assert_same(ta.run_time(kept), ta.run_time(doubled))
        files = list(temp.glob("trs-analytics-runs-*/*.parquet"))
        assert len(files) >= parts
    assert not any(file.exists() for file in files)  # removed after the block


def test_a_kept_run_table_removes_its_files_when_the_block_fails(
    sample: pl.DataFrame, temp: Path
) -> None:
    folders: set[Path] = set()

    def fail_while_kept() -> None:
        with ta.kept_run_table(sample.lazy(), parts=3) as kept:
            folders.update(p.parent for p in temp.glob("trs-analytics-runs-*/*"))
            assert kept.select(pl.len()).collect().item() == sample["task_run_id"].n_unique()
            raise KeyError

    with pytest.raises(KeyError):
        fail_while_kept()
    assert folders
    assert not any(folder.exists() for folder in folders)


def test_a_duckdb_run_table_is_kept_in_a_parquet_file_removed_after_the_block(
    sample: pl.DataFrame, temp: Path
) -> None:
    """DuckDB keeps the table in a file, not a temporary table in the memory its
    ``memory_limit`` bounds; the file is gone after the block, a failing one too."""
    import duckdb

    connection = duckdb.connect()
    connection.sql("SET TimeZone = 'UTC'")
    states = connection.from_arrow(sample.to_arrow())
    files: set[Path] = set()

    def fail_while_kept() -> None:
        with ta.kept_run_table(states) as kept:
            files.update(temp.glob("trs-analytics-runs-*/kept.parquet"))
            assert_same(kept, ta.run_table(sample))
            assert_same(ta.failure_rates(kept), ta.failure_rates(sample))
            temporary = "SELECT count(*) FROM duckdb_tables() WHERE temporary"
            assert connection.sql(temporary).fetchall() == [(0,)]
            raise KeyError

    with pytest.raises(KeyError):
        fail_while_kept()
    assert len(files) == 1
    assert not any(file.parent.exists() for file in files)


def test_a_duckdb_frame_kept_for_several_queries_is_a_parquet_file_too(temp: Path) -> None:
    """``materialized`` (``collect_shared``'s keeper: the report's per-run outcomes) keeps
    a DuckDB relation the same way: one file, no temporary table, removed after the block,
    and every type as it was (an interval to the microsecond: Parquet's own keeps milliseconds)."""
    import duckdb

    connection = duckdb.connect()
    relation = connection.sql(
        "SELECT range AS x, range % 3 AS g, to_microseconds(range * 1001) AS d FROM range(1000)"
    )
    files: set[Path] = set()
    with materialized(relation) as kept:
        files.update(temp.glob("trs-analytics-runs-*/kept.parquet"))
        assert kept.aggregate("g, sum(x)", "g").order("g").fetchall() == [
            (0, sum(range(0, 1000, 3))),
            (1, sum(range(1, 1000, 3))),
            (2, sum(range(2, 1000, 3))),
        ]
        assert kept.aggregate("max(d)").fetchall() == [(timedelta(microseconds=999 * 1001),)]
        temporary = "SELECT count(*) FROM duckdb_tables() WHERE temporary"
        assert connection.sql(temporary).fetchall() == [(0,)]
    assert len(files) == 1
    assert not any(file.parent.exists() for file in files)


@pytest.mark.parametrize("engine", SEPARATE_SAMPLE, indirect=True)
def test_a_run_table_of_flow_run_states_is_keyed_by_flow_run(
    engine: str, on_engine: Callable[[pl.DataFrame], Any]
) -> None:
    """The same path serves flow runs: the table is keyed by flow_run_id, the answers equal."""
    flow_runs = tt.generate_flow_run_states(400, seed=2)
    with materialized(ta.run_table(on_engine(flow_runs))) as runs:
        assert "flow_run_id" in nw.from_native(runs).collect_schema().names()
        assert_same(
            ta.failure_rates(runs, by="flow_name"), ta.failure_rates(flow_runs, by="flow_name")
        )
        assert_same(ta.run_time(runs), ta.run_time(flow_runs))

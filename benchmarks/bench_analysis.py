"""Analysis benchmark: the report's metrics on 10M synthetic states, on every engine.

    uv run python benchmarks/bench_analysis.py                 # 10M states, 1 round
    uv run python benchmarks/bench_analysis.py --quick         # 1M states, 1 round
    uv run python benchmarks/bench_analysis.py --states 200000 --rounds 1   # to develop

The report's metrics, computed with the same semantics by every variant:

* ``durations``: run time per task run (time in RUNNING-type states, null while
  still running), summarised per task: count, nulls, mean, min, p50/p90/p95/p99
  (linear interpolation), max.
* ``retries``: per task run: attempts (RUNNING-type states), retries, final state type.
* ``failures``: per task and UTC day of the run's first state: runs
  (completed + failed), completed, failed (FAILED or CRASHED), crashed,
  cancelled, unfinished, failure rate.

Semantics shared by all: states de-duplicated by ``id`` within a run; a run's
last state is the latest by timestamp, then lifecycle order of the type, then
id; its first state the earliest.

Variants (each in a fresh child process, for its own peak RSS):

* ``trs_eager``: ``trs_analytics`` metrics on an in-memory ``pl.DataFrame`` (all columns).
* ``trs_frame_lazy``: the same in-memory ``pl.DataFrame``, passed as ``df.lazy()``.
* ``trs_lazy``: the same on ``scan_states(parquet)`` (Polars reads the columns it needs).
* ``trs_duckdb``: the same ``trs_analytics`` functions on
  ``scan_states(parquet, engine="duckdb")`` (a DuckDB relation), results fetched to Polars.
* ``spark``: the same functions on ``scan_states(parquet, engine="spark")`` in local mode
  (``local[2]``), results fetched to Polars. Time only: the JVM's heap is sized up front.
* ``pandas``: vectorised pandas on the columns the metrics need, loaded from the Parquet file.
* ``duckdb_arrow``: DuckDB SQL written by hand, as a DuckDB expert would (hash
  aggregates and ``arg_max`` for counts and finals; one window, ``lead``, only
  for the consecutive-state durations), on the Arrow table (all columns) in memory.
* ``duckdb_parquet``: the same SQL on ``read_parquet(...)``.

Before timing, every variant's results are checked to agree on a 100k-state
sample (Spark on 20k states) in which 5% of the states come twice, in shuffled
order, running the very functions that are timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WORK, MemoryCapError, machine, median, ru_maxrss_kib, run_child, save_results

THIS = Path(__file__).resolve()
ENGINES = (
    "trs_eager",
    "trs_frame_lazy",
    "trs_lazy",
    "trs_duckdb",
    "spark",
    "pandas",
    "duckdb_arrow",
    "duckdb_parquet",
)
#: Variants whose input is only the columns the metrics read (the others load every column).
READS_NEEDED_COLUMNS = ("trs_lazy", "trs_duckdb", "spark", "pandas", "duckdb_parquet")
METRICS = ("durations", "retries", "failures")
COLUMNS = ["id", "task_run_id", "task_name", "type", "name", "timestamp"]
TYPE_ORDER = (
    "SCHEDULED",
    "PENDING",
    "RUNNING",
    "PAUSED",
    "CANCELLING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "CRASHED",
)
QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
STATES_PER_RUN = 3.17  # what generate_states gives with the settings below
SPARK_DRIVER_MEMORY = "6g"


# --------------------------------------------------------------------------- data
def dataset(states: int, *, order: str = "run") -> Path:
    """The synthetic Parquet file of about ``states`` states (generated once, cached).

    ``generate_states`` emits rows grouped by task run, which flatters every
    engine's sort; ``order="timestamp"`` writes them as an export does.
    """
    import trs_analytics as ta

    suffix = "" if order == "run" else f"-{order}"
    path = WORK / f"analysis-{states}{suffix}.parquet"
    if not path.exists():
        frame = generate(states, seed=42)
        if order == "timestamp":
            frame = frame.sort("timestamp", "id")
        ta.write_states(frame, path)
    return path


def generate(states: int, *, seed: int) -> Any:
    import trs_analytics.testing as tt

    return tt.generate_states(
        round(states / STATES_PER_RUN), seed=seed, days=30, n_flows=20, n_tasks=200
    )


def in_memory_mib(path: Path, columns: list[str] | None = None) -> tuple[float, float]:
    """The in-memory size of ``columns`` of ``path`` (all when None) as Polars holds them:
    the bytes of their Arrow buffers, and Polars' ``estimated_size()``.

    The first is the size the memory target is stated against. ``estimated_size()``
    leaves out the 16-byte view of every string (Polars keeps strings as views): on
    the 10M file it says 2,912 MiB for all columns, while the buffers hold 3,863 MiB
    and holding the frame costs 3,930 MiB of RSS (``rss_after_load_mib``).
    """
    import polars as pl

    frame = pl.read_parquet(path, columns=columns)
    buffers = frame.to_arrow(compat_level=pl.CompatLevel.newest()).get_total_buffer_size()
    return buffers / 2**20, frame.estimated_size() / 2**20


# --------------------------------------------------------------------------- trs_analytics
def collected(frame: Any) -> Any:
    """A metric's result on any engine, computed and fetched into a Polars DataFrame."""
    import polars as pl

    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    if isinstance(frame, pl.DataFrame):
        return frame
    import trs_analytics as ta

    # DuckDB durations are INTERVALs, which neither .pl() nor narwhals bring into Polars
    return ta.to_polars(frame)


def trs_metrics(states: Any) -> dict[str, Any]:
    """The three metrics with trs_analytics, on any engine's frame."""
    import trs_analytics as ta

    done = collected

    return {
        "durations": lambda: done(ta.summarize(ta.run_time(states), by="task_name")),
        "retries": lambda: done(
            ta.retry_counts(states).select(
                "task_run_id", "task_name", "attempts", "retries", "final_type"
            )
        ),
        "failures": lambda: done(ta.failure_rates(states, by="task_name", every="1d")),
    }


# --------------------------------------------------------------------------- pandas
def pandas_load(path: Path) -> Any:
    import pandas as pd

    frame = pd.read_parquet(path, columns=COLUMNS)
    frame["type"] = frame["type"].astype(pd.CategoricalDtype(TYPE_ORDER, ordered=True))
    return frame


def pandas_timeline(df: Any) -> Any:
    """Sorted, de-duplicated states with ``run`` (a run counter) and ``next_ts``."""
    df = df.assign(_order=df["type"].cat.codes).sort_values(
        ["task_run_id", "timestamp", "_order", "id"], kind="stable", ignore_index=True
    )
    run = df["task_run_id"]
    same_run = run.eq(run.shift())
    df = df[~(same_run & df["id"].eq(df["id"].shift()))].reset_index(drop=True)
    run = df["task_run_id"]
    new_run = run.ne(run.shift())
    last_of_run = run.ne(run.shift(-1))
    return df.assign(
        run=new_run.cumsum(),
        next_ts=df["timestamp"].shift(-1).where(~last_of_run),
    )


def pandas_runs(tl: Any) -> Any:
    """One row per run: task, attempts, final type, first timestamp, run time."""
    import pandas as pd

    running = tl["type"].eq("RUNNING")
    spent = (tl["next_ts"] - tl["timestamp"]).where(running)
    open_running = running & tl["next_ts"].isna()
    per = tl.assign(attempts=running, spent=spent, open_running=open_running).groupby(
        "run", sort=True
    )
    runs = per.agg(
        task_run_id=("task_run_id", "first"),
        task_name=("task_name", "first"),
        attempts=("attempts", "sum"),
        final_type=("type", "last"),
        start_time=("timestamp", "first"),
        run_time=("spent", "sum"),
        open_running=("open_running", "any"),
        ran=("attempts", "any"),
    )
    runs["run_time"] = runs["run_time"].where(runs["ran"] & ~runs["open_running"], pd.NaT)
    return runs


def pandas_metrics(df: Any) -> dict[str, Any]:
    import pandas as pd

    def durations() -> Any:
        runs = pandas_runs(pandas_timeline(df))
        runs = runs[runs["ran"]]
        seconds = runs["run_time"].dt.total_seconds()
        grouped = seconds.groupby(runs["task_name"], sort=True)
        out = pd.DataFrame(
            {
                "count": grouped.count(),
                "nulls": grouped.size() - grouped.count(),
                "mean": grouped.mean(),
                "min": grouped.min(),
            }
        )
        quantiles = grouped.quantile(list(QUANTILES.values())).unstack()
        quantiles.columns = list(QUANTILES)
        return out.join(quantiles).assign(max=grouped.max()).reset_index()

    def retries() -> Any:
        runs = pandas_runs(pandas_timeline(df))
        return pd.DataFrame(
            {
                "task_run_id": runs["task_run_id"],
                "task_name": runs["task_name"],
                "attempts": runs["attempts"],
                "retries": (runs["attempts"] - 1).clip(lower=0),
                "final_type": runs["final_type"],
            }
        ).reset_index(drop=True)

    def failures() -> Any:
        runs = pandas_runs(pandas_timeline(df))
        final = runs["final_type"]
        failed = final.isin(["FAILED", "CRASHED"])
        completed = final.eq("COMPLETED")
        flags = pd.DataFrame(
            {
                "task_name": runs["task_name"],
                "bucket": runs["start_time"].dt.floor("D"),
                "completed": completed,
                "failed": failed,
                "crashed": final.eq("CRASHED"),
                "cancelled": final.eq("CANCELLED"),
                "unfinished": ~final.isin(["COMPLETED", "FAILED", "CANCELLED", "CRASHED"]),
            }
        )
        out = flags.groupby(["task_name", "bucket"], sort=True).sum().reset_index()
        out.insert(2, "runs", out["completed"] + out["failed"])
        out["failure_rate"] = out["failed"] / out["runs"].where(out["runs"] > 0)
        return out

    return {"durations": durations, "retries": retries, "failures": failures}


# --------------------------------------------------------------------------- DuckDB
def duckdb_sql(source: str) -> dict[str, str]:
    """The three metrics as DuckDB SQL over ``source`` (a table name or ``read_parquet(...)``).

    Written the way a DuckDB expert would: counts and finals are hash aggregates
    (``count(DISTINCT id)`` drops duplicate deliveries, ``arg_max`` over
    ``epoch_us(timestamp) * 16 + lifecycle rank`` picks the last state: two
    states tied on both have the same type, so the id tie-break cannot change
    it); only the durations, which pair consecutive states, need a window.
    """
    order = ", ".join(f"'{t}'" for t in TYPE_ORDER)
    rank = f"list_position([{order}], type::VARCHAR)"
    per_run = f"""
        per_run AS (
            SELECT task_run_id, any_value(task_name) AS task_name,
                   count(DISTINCT id) FILTER (WHERE type = 'RUNNING') AS attempts,
                   arg_max(type::VARCHAR, epoch_us(timestamp) * 16 + {rank}) AS final_type,
                   min(timestamp) AS start_time
            FROM {source} GROUP BY task_run_id
        )"""
    timeline = f"""
        WITH dedup AS (
            SELECT DISTINCT task_run_id, task_name, id, timestamp, type::VARCHAR AS type
            FROM {source}
        ),
        steps AS (
            SELECT task_run_id, task_name, type, timestamp,
                   lead(timestamp) OVER (
                       PARTITION BY task_run_id ORDER BY timestamp, {rank}, id
                   ) AS next_ts
            FROM dedup
        ),
        run_time AS (
            SELECT task_run_id, any_value(task_name) AS task_name,
                   CASE WHEN count(*) = count(next_ts)
                        THEN sum(epoch_us(next_ts) - epoch_us(timestamp)) / 1e6 END AS run_time
            FROM steps WHERE type = 'RUNNING' GROUP BY task_run_id
        )
    """
    qs = ", ".join(str(q) for q in QUANTILES.values())
    qcols = ", ".join(f"q[{i + 1}] AS {name}" for i, name in enumerate(QUANTILES))
    return {
        "durations": f"""{timeline}
            SELECT task_name, count, nulls, mean, min, {qcols}, max FROM (
                SELECT task_name, count(run_time) AS count,
                       count(*) - count(run_time) AS nulls, avg(run_time) AS mean,
                       min(run_time) AS min, quantile_cont(run_time, [{qs}]) AS q,
                       max(run_time) AS max
                FROM run_time GROUP BY task_name
            ) ORDER BY task_name""",
        "retries": f"""WITH {per_run}
            SELECT task_run_id, task_name, attempts, greatest(attempts - 1, 0) AS retries,
                   final_type
            FROM per_run ORDER BY task_run_id""",
        "failures": f"""WITH {per_run}
            SELECT task_name, date_trunc('day', start_time) AS bucket,
                   count(*) FILTER (WHERE final_type IN ('COMPLETED', 'FAILED', 'CRASHED')) AS runs,
                   count(*) FILTER (WHERE final_type = 'COMPLETED') AS completed,
                   count(*) FILTER (WHERE final_type IN ('FAILED', 'CRASHED')) AS failed,
                   count(*) FILTER (WHERE final_type = 'CRASHED') AS crashed,
                   count(*) FILTER (WHERE final_type = 'CANCELLED') AS cancelled,
                   count(*) FILTER (WHERE final_type NOT IN
                       ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')) AS unfinished,
                   failed / nullif(runs, 0) AS failure_rate
            FROM per_run GROUP BY ALL ORDER BY task_name, bucket""",
    }


def duckdb_metrics(con: Any, source: str) -> dict[str, Any]:
    return {
        name: (lambda sql=sql: con.sql(sql).to_arrow_table())
        for name, sql in duckdb_sql(source).items()
    }


def duckdb_connect() -> Any:
    import duckdb

    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    return con


def spark_session(driver_memory: str = "4g") -> Any:
    """A local SparkSession as the tests use it, with a bigger driver for 10M states."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("trs_analytics-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


# --------------------------------------------------------------------------- agreement
def with_copies(frame: Any, share: float = 0.05) -> Any:
    """``frame`` with ``share`` of its states delivered twice, all rows shuffled.

    Copies are what exports re-reading an overlap and repeated events give;
    every variant must drop or ignore them the same way (the 10M file has none).
    """
    import polars as pl

    copies = frame.sample(fraction=share, seed=3)
    return pl.concat([frame, copies]).sample(fraction=1.0, shuffle=True, seed=4)


def check_agreement(
    engines: list[str], states: int = 100_000, spark_states: int = 20_000
) -> dict[str, Any]:
    """Compute every metric with every variant in ``engines`` on a sample; raise if one differs.

    pandas is the reference. The timed functions run here as they are timed:
    ``trs_metrics`` on each engine's frame, ``pandas_metrics``, ``duckdb_metrics``.
    Spark gets a smaller sample of its own (its JVM is slow to start).
    """
    import tempfile

    import numpy as np
    import polars as pl

    import trs_analytics as ta

    frame = with_copies(generate(states, seed=7))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sample.parquet"
        ta.write_states(frame, path)
        con = duckdb_connect()
        variants = {
            "trs_eager": trs_metrics(frame),
            "trs_frame_lazy": trs_metrics(frame.lazy()),
            "trs_lazy": trs_metrics(ta.scan_states(path)),
            "trs_duckdb": trs_metrics(ta.scan_states(path, engine="duckdb", connection=con)),
        }
        got = {
            v: {k: f() for k, f in metrics.items()}
            for v, metrics in variants.items()
            if v in engines
        }
        pdf = pandas_load(path)
        pds = {k: pl.from_pandas(f(), include_index=False) for k, f in pandas_metrics(pdf).items()}
        con.register("states", frame.to_arrow())
        if "duckdb_arrow" in engines:
            got["duckdb_arrow"] = {
                k: pl.from_arrow(f()) for k, f in duckdb_metrics(con, "states").items()
            }
        if "duckdb_parquet" in engines:
            source = f"read_parquet('{path}')"
            got["duckdb_parquet"] = {
                k: pl.from_arrow(f()) for k, f in duckdb_metrics(con, source).items()
            }
        spark_reference = None
        if "spark" in engines:
            small = with_copies(generate(spark_states, seed=7))
            small_path = Path(folder) / "spark.parquet"
            ta.write_states(small, small_path)
            on_spark = trs_metrics(
                ta.scan_states(small_path, engine="spark", spark=spark_session("1g"))
            )
            got["spark"] = {k: f() for k, f in on_spark.items()}
            spark_reference = {k: f() for k, f in trs_metrics(small).items()}

    def seconds(column: pl.Series) -> pl.Series:
        if column.dtype == pl.Duration:
            return column.dt.total_microseconds() / 1e6
        return column.cast(pl.Float64)

    def same(a: pl.DataFrame, b: pl.DataFrame, what: str) -> None:
        if a.height != b.height:
            raise AssertionError(f"{what}: {a.height} rows vs {b.height}")
        for column in b.columns:
            x, y = a[column], b[column]
            if x.dtype.is_numeric() or x.dtype == pl.Duration or y.dtype == pl.Duration:
                xs, ys = seconds(x).to_numpy(), seconds(y).to_numpy()
                if not np.allclose(xs, ys, rtol=1e-9, atol=1e-6, equal_nan=True):
                    raise AssertionError(f"{what}.{column} differs")
            elif x.cast(pl.String).to_list() != y.cast(pl.String).to_list():
                raise AssertionError(f"{what}.{column} differs")

    def aligned(result: pl.DataFrame, reference: pl.DataFrame, metric: str) -> pl.DataFrame:
        result = result.select(reference.columns)
        if metric == "failures" and result["bucket"].dtype != reference["bucket"].dtype:
            result = result.with_columns(pl.col("bucket").cast(reference["bucket"].dtype))
        return result

    checked: dict[str, Any] = {}
    for metric in METRICS:
        reference = pds[metric]
        if metric == "failures":
            reference = reference.with_columns(pl.col("bucket").dt.replace_time_zone("UTC"))
        for variant, results in got.items():
            want = reference
            if variant == "spark":
                # Spark's own sample: the Polars result on it, itself checked against pandas
                assert spark_reference is not None
                want = aligned(spark_reference[metric], reference, metric)
            result = aligned(results[metric], want, metric)
            if variant in ("trs_duckdb", "spark", "duckdb_parquet", "duckdb_arrow"):
                # DuckDB and Spark promise no row order unless asked: compare in key order
                order = [k for k in ("task_name", "bucket", "task_run_id") if k in want.columns]
                result, want = result.sort(order), want.sort(order)
            same(result, want, f"{variant} vs reference: {metric}")
        checked[metric] = {"rows": reference.height, "variants": sorted(got)}
    return {"states": frame.height, "metrics": checked, "agree": True}


# --------------------------------------------------------------------------- children
def run_engine(engine: str, path: Path) -> None:
    """Child process: load for ``engine``, run each metric once, print timings as JSON."""
    import polars as pl
    import psutil

    import trs_analytics as ta

    if engine.startswith("duckdb") or engine == "trs_duckdb":
        import pyarrow.parquet as pq

        con = duckdb_connect()
    if engine == "spark":
        session = spark_session(SPARK_DRIVER_MEMORY)
    if engine == "pandas":
        import pandas as pd  # noqa: F401
    rss_before_load = psutil.Process().memory_info().rss
    started = time.perf_counter()
    if engine == "trs_eager":
        metrics = trs_metrics(pl.read_parquet(path))
    elif engine == "trs_frame_lazy":
        metrics = trs_metrics(pl.read_parquet(path).lazy())
    elif engine == "trs_lazy":
        metrics = trs_metrics(ta.scan_states(path))
    elif engine == "trs_duckdb":
        metrics = trs_metrics(ta.scan_states(path, engine="duckdb", connection=con))
    elif engine == "spark":
        metrics = trs_metrics(ta.scan_states(path, engine="spark", spark=session))
    elif engine == "pandas":
        metrics = pandas_metrics(pandas_load(path))
    elif engine == "duckdb_arrow":
        table = pq.read_table(path)
        con.register("states", table)
        metrics = duckdb_metrics(con, "states")
    else:
        metrics = duckdb_metrics(con, f"read_parquet('{path}')")
    load_s = time.perf_counter() - started
    rss_after_load = psutil.Process().memory_info().rss
    seconds = {}
    for name in METRICS:
        started = time.perf_counter()
        result = metrics[name]()
        seconds[name] = time.perf_counter() - started
        del result
    print(
        json.dumps(
            {
                "load_s": load_s,
                "seconds": seconds,
                "total_s": sum(seconds.values()),
                "rss_before_load_mib": rss_before_load / 2**20,
                "rss_after_load_mib": rss_after_load / 2**20,
                "ru_maxrss_kib": ru_maxrss_kib(),
            }
        )
    )


# --------------------------------------------------------------------------- parent
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--states", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="1M states, one round")
    parser.add_argument("--engines", nargs="*", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--no-check", action="store_true", help="skip the agreement check")
    parser.add_argument("--name", help="results file name (default: analysis or analysis_quick)")
    parser.add_argument(
        "--order",
        choices=["run", "timestamp"],
        default="run",
        help="row order of the dataset file: as generated (by run) or by timestamp, id "
        "(as fetch_states and export_states leave it)",
    )
    parser.add_argument(
        "--max-rss-gib",
        type=float,
        default=None,
        help="kill a child above this RSS (default: available memory minus 3 GiB)",
    )
    args = parser.parse_args()
    if args.engine:
        run_engine(args.engine, Path(args.path))
        return
    import polars as pl

    states = 1_000_000 if args.quick else args.states
    rounds = 1 if args.quick else args.rounds
    results: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    if not args.no_check:
        results["agreement"] = check_agreement(args.engines)
        print(f"agreement on a sample: {results['agreement']}", flush=True)
    path = dataset(states, order=args.order)
    info = pl.scan_parquet(path).select(pl.len()).collect().item()
    data_mib, data_estimate_mib = in_memory_mib(path)
    needed_mib, needed_estimate_mib = in_memory_mib(path, COLUMNS)
    sizes = {"all": data_mib, "needed": needed_mib}
    estimates = {"all": data_estimate_mib, "needed": needed_estimate_mib}
    results["data"] = {
        "path": path.name,
        "states": info,
        "in_memory_mib": round(data_mib, 1),
        "in_memory_needed_columns_mib": round(needed_mib, 1),
        "polars_estimated_size_mib": round(data_estimate_mib, 1),
        "polars_estimated_size_needed_columns_mib": round(needed_estimate_mib, 1),
        "parquet_mib": round(path.stat().st_size / 2**20, 1),
    }
    print(f"data: {results['data']}", flush=True)
    import psutil

    cap_mib = (
        args.max_rss_gib * 1024
        if args.max_rss_gib
        else psutil.virtual_memory().available / 2**20 - 3 * 1024
    )
    results["rss_cap_mib"] = round(cap_mib)
    samples: dict[str, list[dict[str, Any]]] = {e: [] for e in args.engines}
    for r in range(rounds):
        for engine in args.engines:
            command = [str(THIS), "--engine", engine, "--path", str(path)]
            try:
                child = run_child(command, poll=0.05, max_rss_mib=cap_mib)
            except MemoryCapError:
                print(f"[round {r + 1}] {engine:14s} killed above {cap_mib:.0f} MiB", flush=True)
                samples[engine].append({"killed_above_mib": cap_mib})
                continue
            result = {**child.result, "peak_rss_mib": child.peak_rss_mib}
            result.pop("ru_maxrss_kib", None)
            samples[engine].append(result)
            times = " ".join(f"{k} {v:6.2f}s" for k, v in result["seconds"].items())
            print(
                f"[round {r + 1}] {engine:14s} load {result['load_s']:6.2f}s {times} "
                f"peak {result['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
            # saved after every variant too, so a run cut short keeps what finished
            results["samples"] = samples
            results["summary"] = summarize(samples, sizes, estimates)
            save_results(args.name or ("analysis_quick" if args.quick else "analysis"), results)
        # saved after every round, so a long run that is cut short keeps its figures
        results["rounds_done"] = r + 1
        results["samples"] = samples
        results["summary"] = summarize(samples, sizes, estimates)
        name = args.name or ("analysis_quick" if args.quick else "analysis")
        saved = save_results(name, results)
    print(json.dumps(results["summary"], indent=2))
    print(f"results: {saved}")


def _total(sample: dict[str, Any]) -> float:
    return float(sample["total_s"])


def _seconds_of(metric: str) -> Callable[[dict[str, Any]], float]:
    return lambda sample: float(sample["seconds"][metric])


def summarize(
    samples: dict[str, list[dict[str, Any]]],
    sizes: dict[str, float],
    estimates: dict[str, float],
) -> dict[str, Any]:
    """Medians per variant; peak RSS against the in-memory size of the columns it read.

    Variants in :data:`READS_NEEDED_COLUMNS` read only the six columns the
    metrics need; the others load every column of the file (as a user holding a
    fetched frame does), so theirs is the size of all columns.
    """
    summary: dict[str, Any] = {}
    killed = {e: [r for r in runs if "killed_above_mib" in r] for e, runs in samples.items()}
    samples = {e: [r for r in runs if "seconds" in r] for e, runs in samples.items()}
    for engine, runs in samples.items():
        if not runs and killed[engine]:
            summary[engine] = {"killed_above_mib": killed[engine][0]["killed_above_mib"]}
            continue
        if not runs:  # not run yet (a run cut short)
            continue
        read = "needed" if engine in READS_NEEDED_COLUMNS else "all"
        read_mib = sizes[read]
        peak = median([r["peak_rss_mib"] for r in runs])
        summary[engine] = {
            "load_s": median([r["load_s"] for r in runs]),
            **{m: median([r["seconds"][m] for r in runs]) for m in METRICS},
            "total_s": median([r["total_s"] for r in runs]),
            "peak_rss_mib": peak,
            "read_mib": read_mib,
            "peak_over_read": peak / read_mib,
            "read_estimate_mib": estimates[read],
            "peak_over_read_estimate": peak / estimates[read],
            "peak_minus_start_over_read": median(
                [(r["peak_rss_mib"] - r["rss_before_load_mib"]) for r in runs]
            )
            / read_mib,
        }
    pairs = {
        "pandas_over_trs_eager": ("pandas", "trs_eager"),
        "trs_eager_over_duckdb_arrow": ("trs_eager", "duckdb_arrow"),
        "pandas_over_trs_frame_lazy": ("pandas", "trs_frame_lazy"),
        "trs_frame_lazy_over_duckdb_arrow": ("trs_frame_lazy", "duckdb_arrow"),
        "trs_lazy_over_duckdb_parquet": ("trs_lazy", "duckdb_parquet"),
        "pandas_load_plus_total_over_trs_lazy": ("pandas", "trs_lazy"),
        "trs_lazy_over_duckdb_arrow": ("trs_lazy", "duckdb_arrow"),
        "trs_duckdb_over_duckdb_parquet": ("trs_duckdb", "duckdb_parquet"),
        "spark_over_duckdb_parquet": ("spark", "duckdb_parquet"),
    }
    ratios: dict[str, Any] = {}
    for name, (a, b) in pairs.items():
        if not samples.get(a) or not samples.get(b) or len(samples[a]) != len(samples[b]):
            continue
        add_load = name.startswith("pandas_load")
        per_metric = {}
        for m in [*METRICS, "total"]:
            key = _total if m == "total" else _seconds_of(m)
            per_metric[m] = median(
                [
                    (key(x) + (x["load_s"] if add_load else 0)) / key(y)
                    for x, y in zip(samples[a], samples[b], strict=False)
                ]
            )
        ratios[name] = per_metric
    summary["ratios"] = ratios
    return summary


if __name__ == "__main__":
    main()

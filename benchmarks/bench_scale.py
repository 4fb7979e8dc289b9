"""Beyond one machine's memory: the report's metrics on a 100M-state dataset, on DuckDB.

    uv run python benchmarks/bench_scale.py                       # 100M states, memory_limit 3GB
    uv run python benchmarks/bench_scale.py --states 2000000 --name scale_dev   # to develop

1. The dataset is written once to ``benchmarks/.work/states-<N>/`` in the
   layout ``export_states`` writes (``day=YYYY-MM-DD/part-NNNNN.parquet``),
   chunk by chunk (``--chunk-states`` per call of ``generate_states``, each chunk
   its own seed and days), so generating it never holds more than one chunk.
2. A fresh child process opens it with ``scan_states(DIR, engine="duckdb",
   connection=con)`` on a connection with ``memory_limit`` (default 3GB: the
   target is a peak RSS <= 4 GiB for the whole process), 2 threads and a spill
   folder, and computes the report's metrics with the trs_analytics functions
   (the headline figures, the per-task tables, the per-day failure rates, the
   retry distribution and the window comparison), each fetched to Polars. A
   metric DuckDB cannot finish (out of memory, or a spill above ``--max-spill``,
   default 30GB, so a run never fills the disk) is recorded with its error.
   Its time per metric, the largest size of the spill folder during each
   metric (polled every 0.5 s) and its peak RSS (VmHWM, and the parent's RSS
   polling) go to ``results/<name>.json``.

``--variant sql`` times the hand-written DuckDB SQL of ``bench_analysis.py``
instead (the three analysis metrics), for comparison.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WORK, machine, ru_maxrss_kib, run_child, save_results

THIS = Path(__file__).resolve()
STATES_PER_RUN = 3.17
START = datetime(2026, 1, 1, tzinfo=UTC)
PROGRESS = WORK / "scale-progress.json"  # the child's figures after each metric


# --------------------------------------------------------------------------- data
def build_dataset(states: int, chunk_states: int, root: Path | None = None) -> Path:
    """Write (or finish writing) the dataset of about ``states`` states; return its folder.

    ``root`` defaults to ``.work/states-<states>/``. Each chunk is marked done
    when written, so a build that was stopped resumes where it stopped.
    """
    import polars as pl

    import trs_analytics as ta
    import trs_analytics.testing as tt

    root = root or WORK / f"states-{states}"
    chunks = -(-states // chunk_states)
    days_per_chunk = 1.0
    for k in range(chunks):
        done = root / f"_chunk-{k:05d}.done"  # hidden from readers (leading "_")
        if done.exists():
            continue
        frame = tt.generate_states(
            round(min(chunk_states, states - k * chunk_states) / STATES_PER_RUN),
            seed=1000 + k,
            start=START + timedelta(days=k * days_per_chunk),
            days=days_per_chunk,
            n_flows=20,
            n_tasks=200,
        ).sort("timestamp", "id")
        day = pl.col("timestamp").dt.date().cast(pl.String)
        for (name,), part in (
            frame.with_columns(_day=day).partition_by("_day", as_dict=True).items()
        ):
            ta.write_states(part.drop("_day"), root / f"day={name}" / f"part-{k:05d}.parquet")
        del frame
        root.mkdir(parents=True, exist_ok=True)
        done.write_text("ok\n")
        print(f"chunk {k + 1}/{chunks} written", flush=True)
    return root


# --------------------------------------------------------------------------- metrics
def _collecting(metric: Callable[[], Any], collect: Callable[[Any], Any]) -> Callable[[], Any]:
    """``metric`` computed and collected, as one call to time."""
    return lambda: collect(metric())


def report_metrics(states: Any) -> dict[str, Any]:
    """What the HTML report computes (trs_analytics.report._tables and its charts)."""
    import trs_analytics as ta

    # in the order the report needs them most, so a run cut at its deadline keeps those
    return {
        "failure_rates_by_task_day": lambda: ta.failure_rates(states, by="task_name", every="1d"),
        "run_time_by_task": lambda: ta.summarize(ta.run_time(states), by="task_name"),
        "retry_distribution": lambda: ta.retry_distribution(states, by="task_name"),
        "failure_rates_by_task": lambda: ta.failure_rates(states, by="task_name"),
        "failure_rate_overall": lambda: ta.failure_rates(states, by=None),
        "run_time_overall": lambda: ta.summarize(ta.run_time(states)),
        "queue_wait_overall": lambda: ta.summarize(ta.queue_wait(states)),
        "lateness_overall": lambda: ta.summarize(ta.lateness(states)),
        "compare_windows_7d": lambda: ta.compare_windows(states, window="7d"),
    }


def _folder_bytes(folder: Path) -> int:
    """The size of the files under ``folder``."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


class _SpillPeak:
    """The largest size of DuckDB's spill folder, polled every 0.5 s in a thread."""

    def __init__(self, folder: Path) -> None:
        import threading

        self._folder = folder
        self._peak = 0
        threading.Thread(target=self._poll, daemon=True).start()

    def _poll(self) -> None:
        while True:
            try:
                size = _folder_bytes(self._folder)
            except OSError:  # a file removed while it was being summed
                size = 0
            self._peak = max(self._peak, size)
            time.sleep(0.5)

    def reset(self) -> None:
        self._peak = 0

    def mib(self) -> float:
        return self._peak / 2**20


def run(folder: Path, variant: str, memory_limit: str, threads: int, max_spill: str) -> None:
    """Child process: open the dataset on DuckDB, time each metric, print JSON.

    A metric that fails (DuckDB out of memory, or its spill above ``max_spill``)
    is recorded with its error and the next one runs.
    """
    import duckdb
    from bench_analysis import collected, duckdb_metrics

    import trs_analytics as ta

    spill = WORK / "duckdb-spill"
    shutil.rmtree(spill, ignore_errors=True)
    spill.mkdir(parents=True)
    con = duckdb.connect(
        config={
            "memory_limit": memory_limit,
            "threads": threads,
            "temp_directory": str(spill),
            "max_temp_directory_size": max_spill,
            "preserve_insertion_order": False,
        }
    )
    con.sql("SET TimeZone = 'UTC'")
    if variant == "trs":
        states = ta.scan_states(folder, engine="duckdb", connection=con)
        metrics = {k: _collecting(f, collected) for k, f in report_metrics(states).items()}
    else:
        metrics = duckdb_metrics(con, f"read_parquet('{folder}/**/*.parquet')")
    seconds: dict[str, float] = {}
    rows: dict[str, int] = {}
    errors: dict[str, dict[str, Any]] = {}
    spilled_mib: dict[str, float] = {}
    peak = _SpillPeak(spill)
    for name, compute in metrics.items():
        peak.reset()
        started = time.perf_counter()
        try:
            result = compute()
        except duckdb.Error as err:  # out of memory, spill limit: record it, go on
            message = str(err).splitlines()[0]
            errors[name] = {"after_s": time.perf_counter() - started, "error": message}
            print(f"{name}: failed: {message}", file=sys.stderr, flush=True)
            shutil.rmtree(spill, ignore_errors=True)
            spill.mkdir(parents=True)
        else:
            seconds[name] = time.perf_counter() - started
            rows[name] = len(result)
            print(f"{name}: {seconds[name]:.1f}s, {rows[name]} rows", file=sys.stderr, flush=True)
            del result
        spilled_mib[name] = peak.mib()
        progress = {
            "seconds": seconds,
            "spill_peak_mib": spilled_mib,
            "rows": rows,
            "errors": errors,
            "ru_maxrss_kib": ru_maxrss_kib(),
        }
        PROGRESS.write_text(json.dumps(progress))
    spilled = _folder_bytes(spill)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": rows,
                "errors": errors,
                "spill_peak_mib": spilled_mib,
                "total_s": sum(seconds.values()),
                "duckdb_version": duckdb.__version__,
                "spill_left_mib": spilled / 2**20,
                "ru_maxrss_kib": ru_maxrss_kib(),
            }
        )
    )


# --------------------------------------------------------------------------- parent
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--states", type=int, default=100_000_000)
    parser.add_argument("--chunk-states", type=int, default=5_000_000)
    parser.add_argument("--memory-limit", default="3GB", help="DuckDB memory_limit")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--max-spill", default="30GB", help="DuckDB max_temp_directory_size (spill folder cap)"
    )
    parser.add_argument("--variant", choices=["trs", "sql"], default="trs")
    parser.add_argument("--build-only", action="store_true", help="write the dataset and stop")
    parser.add_argument(
        "--timeout-min",
        type=float,
        default=120,
        help="stop the run after this long, keeping the metrics that finished",
    )
    parser.add_argument("--name", help="results file name (default: scale)")
    args = parser.parse_args()
    if args.child:
        run(Path(args.child), args.variant, args.memory_limit, args.threads, args.max_spill)
        return
    started = time.perf_counter()
    folder = build_dataset(args.states, args.chunk_states)
    build_s = time.perf_counter() - started
    if args.build_only:
        return
    import polars as pl

    import trs_analytics as ta

    files = list(folder.rglob("*.parquet"))
    lf = ta.scan_states(folder)
    count = lf.select(pl.len()).collect().item()
    data = {
        "folder": folder.name,
        "states": count,
        "files": len(files),
        "parquet_mib": round(sum(f.stat().st_size for f in files) / 2**20, 1),
    }
    results: dict[str, Any] = {"machine": machine(), "args": vars(args), "data": data}
    print(f"data: {data}", flush=True)
    command = [
        str(THIS),
        "--child",
        str(folder),
        "--variant",
        args.variant,
        "--memory-limit",
        args.memory_limit,
        "--threads",
        str(args.threads),
        "--max-spill",
        args.max_spill,
    ]
    PROGRESS.unlink(missing_ok=True)
    started = time.perf_counter()
    try:
        child = run_child(command, poll=0.05, timeout_s=args.timeout_min * 60)
        result = {**child.result, "peak_rss_mib": child.peak_rss_mib, "wall_s": child.wall_s}
        result["complete"] = True
    except TimeoutError as err:  # cut at the deadline: keep the metrics that finished
        done = (
            json.loads(PROGRESS.read_text())
            if PROGRESS.exists()
            else {"seconds": {}, "rows": {}, "errors": {}}
        )
        polled = float(str(err).split("=")[1])
        result = {
            **done,
            "total_s": sum(done["seconds"].values()),
            "peak_rss_mib": max(polled, done.get("ru_maxrss_kib", 0) / 1024),
            "wall_s": time.perf_counter() - started,
            "complete": False,
            "cut_after_min": args.timeout_min,
            "duckdb_version": __import__("duckdb").__version__,
        }
    result.pop("ru_maxrss_kib", None)
    results["run"] = result
    results["build_s_this_run"] = build_s
    results["peak_rss_target_mib"] = 4096
    # met: every metric computed (none failed, none cut off) within the RSS target
    results["met"] = (
        result["complete"] and not result.get("errors") and result["peak_rss_mib"] <= 4096
    )
    saved = save_results(args.name or "scale", results)
    print(json.dumps(result, indent=2))
    print(f"results: {saved}")


if __name__ == "__main__":
    main()

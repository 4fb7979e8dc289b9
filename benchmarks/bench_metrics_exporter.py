"""The Prometheus exporter's cost: one refresh's time and peak RSS, and a scrape's latency.

    uv run python benchmarks/bench_metrics_exporter.py                      # 3M states
    uv run python benchmarks/bench_metrics_exporter.py --states 20000000 \\
        --folder /work/data20m --engines duckdb --name metrics_exporter_20m

1. The dataset: ``--folder`` if given, else ``bench_scale.build_dataset`` writes
   (once) ``--states`` generated states to ``benchmarks/.work/states-<N>/``
   (20 flows, 200 tasks; no flow-run table, no cursor: the window ends at the
   newest state).
2. A refresh, per engine: ``trs-analytics --log-format json metrics DIR
   --textfile OUT --engine E`` in a fresh process (DuckDB with
   ``--memory-limit``): the whole command a cron job runs, imports included.
   Its wall time, the refresh's own time (the summary's ``seconds``) and its
   peak RSS (the process and its children, polled) are recorded.
3. A scrape (``--scrape``, on the first engine): ``trs-analytics serve-metrics``
   on the same dataset; once its first refresh is served, ``/metrics`` is
   fetched ``--scrapes`` times and the median and largest latency recorded,
   with the size of the answer.

Results go to ``results/<name>.json`` (default ``metrics_exporter``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, run_child, save_results
from bench_scale import build_dataset

from devtools.prefect_harness import free_port


def dataset_facts(folder: Path) -> dict[str, Any]:
    import polars as pl

    import trs_analytics as ta

    files = list(folder.rglob("*.parquet"))
    states = ta.scan_states(folder).select(pl.len(), pl.col("task_run_id").n_unique()).collect()
    return {
        "folder": str(folder),
        "states": states.item(0, 0),
        "task_runs": states.item(0, 1),
        "files": len(files),
        "parquet_mib": round(sum(f.stat().st_size for f in files) / 2**20, 1),
    }


def refresh(folder: Path, engine: str, memory_limit: str, timeout_s: float) -> dict[str, Any]:
    """One ``metrics --textfile`` run in a fresh process: wall, refresh time, peak RSS."""
    with tempfile.TemporaryDirectory() as out:
        textfile = Path(out) / "trs.prom"
        command = ["-m", "trs_analytics.cli", "--log-format", "json", "metrics", str(folder)]
        command += ["--textfile", str(textfile), "--engine", engine]
        if engine == "duckdb":
            command += ["--memory-limit", memory_limit]
        child = run_child(command, poll=0.05, timeout_s=timeout_s)
        text = textfile.read_text()
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    return {
        "engine": engine,
        "memory_limit": memory_limit if engine == "duckdb" else None,
        "refresh_s": child.result["seconds"],
        "wall_s": round(child.wall_s, 2),
        "peak_rss_mib": round(child.peak_rss_mib, 1),
        "series": series,
        "textfile_kib": round(len(text.encode()) / 1024, 1),
    }


def scrape(folder: Path, engine: str, memory_limit: str, scrapes: int) -> dict[str, Any]:
    """Median and largest ``/metrics`` latency of serve-metrics once its first refresh is served."""
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "trs_analytics.cli", "serve-metrics", str(folder)]
    command += ["--port", str(port), "--engine", engine, "--refresh", "1h"]
    if engine == "duckdb":
        command += ["--memory-limit", memory_limit]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        started = time.perf_counter()
        while "trs_dataset_states_total" not in _get(url):
            if process.poll() is not None:
                raise RuntimeError(f"serve-metrics exited with {process.returncode}")
            time.sleep(0.5)
        first_s = time.perf_counter() - started
        latencies, size = [], 0
        with httpx.Client() as client:
            for _ in range(scrapes):
                t = time.perf_counter()
                size = len(client.get(url).content)
                latencies.append((time.perf_counter() - t) * 1000)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {
        "engine": engine,
        "first_refresh_served_after_s": round(first_s, 1),
        "scrapes": scrapes,
        "median_ms": round(statistics.median(latencies), 2),
        "max_ms": round(max(latencies), 2),
        "answer_kib": round(size / 1024, 1),
    }


def _get(url: str) -> str:
    import httpx

    try:
        return httpx.get(url, timeout=5).text
    except httpx.TransportError:
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--states", type=int, default=3_000_000)
    parser.add_argument("--chunk-states", type=int, default=1_000_000)
    parser.add_argument("--folder", type=Path, help="an existing dataset instead")
    parser.add_argument("--engines", default="polars,duckdb")
    parser.add_argument("--memory-limit", default="2GB", help="DuckDB memory_limit")
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--no-scrape", action="store_true")
    parser.add_argument("--timeout-min", type=float, default=60)
    parser.add_argument("--name", default="metrics_exporter")
    args = parser.parse_args()
    folder = args.folder or build_dataset(args.states, args.chunk_states)
    results: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    results["data"] = dataset_facts(folder)
    print(f"data: {results['data']}", flush=True)
    engines = args.engines.split(",")
    results["refresh"] = []
    for engine in engines:
        found = refresh(folder, engine, args.memory_limit, args.timeout_min * 60)
        print(found, flush=True)
        results["refresh"].append(found)
    if not args.no_scrape:
        results["scrape"] = scrape(folder, engines[0], args.memory_limit, args.scrapes)
        print(results["scrape"], flush=True)
    print(f"wrote {save_results(args.name, results)}")


if __name__ == "__main__":
    main()

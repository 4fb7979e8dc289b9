"""The report and the check as a user runs them: the command itself, on 20M and 100M states.

    uv run python benchmarks/bench_report.py                  # 20M: check and report, 3 engines
    uv run python benchmarks/bench_report.py --jobs check     # the check only
    uv run python benchmarks/bench_report.py --scale          # and the report on 100M, DuckDB 3GB

1. The datasets are built once by ``bench_scale.build_dataset`` (the one builder:
   ``generate_states`` with 20 flows and 200 tasks, chunks of 2.5M states, one day
   each, in the layout ``export`` writes): 20M states in ``--data`` (default
   ``/work/data20m``, shared with other benchmarks of the session), 100M in
   ``benchmarks/.work/states-100000000`` (``--scale``; ``bench_scale.py``'s own
   dataset, 20 chunks of 5M). A build stopped half-way
   resumes at its first chunk not marked done.
2. Each run is ``trs-analytics -v --log-format json report|check DATASET ...`` started
   from this virtualenv's entry point, a child process of its own: that Python
   process does the work (no ``uv`` in between), and its ``VmHWM`` (the kernel's
   high-water mark of its RSS, in ``/proc/<pid>/status``) is read every 0.1 s while
   it runs; a high-water mark only grows, so the last reading is its peak (a new peak
   in its last 0.1 s would be missed). With ``--engine spark`` the work is done in
   the JVM the command starts (a child of it): its ``VmHWM`` is read the same way
   and the two are added (an upper bound of their peak together); the largest polled
   sum of their current RSS is kept beside it (a lower bound).
3. A run over ``--max-rss`` (default 10 GiB, to protect the shared machine) or
   ``--timeout-min`` is killed and recorded as such.
4. The variants must agree on the runs timed: the check's findings (a digest of every field
   but the log line's time) are equal on every engine, and so are the report's headline
   numbers (the cards of its HTML).
5. Section times: the ``-v`` log lines that name a report section or a check step, its
   seconds and the process's peak RSS after it.

Results go to ``results/report.json``, with the targets of issue 22 and whether each
was met; a run with ``--jobs`` keeps the saved runs of the other jobs.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, WORK, code_version, machine, save_results
from bench_scale import build_dataset

GIB = 1024.0  # MiB
ENTRY = Path(sys.executable).parent / "trs-analytics"
DATA20M = Path("/work/data20m")
CHUNK = 2_500_000
NOW = "2026-01-09T00:00:00Z"  # the 20M dataset's states run from 01-01 to 01-09
RULES = """
[[rule]]
name = "slow"
task = "*"
max_run_time = "2h"

[[rule]]
name = "late"
task = "*"
max_lateness = "1h"

[[rule]]
name = "success"
task = "*"
min_success_rate = 0.9

[[rule]]
name = "fresh"
task = "extract*"
freshness = "1h"
"""

#: (job, dataset, engine, extra options, RSS target in MiB or None, time target in s or None)
Run = tuple[str, str, str, list[str], float | None, float | None]


def runs(jobs: list[str], engines: list[str], scale: bool) -> list[Run]:
    out: list[Run] = []
    if "check" in jobs:
        # Spark: the local session's driver heap (Spark's default, 1g, ran out in the anomalies)
        limits = {"duckdb": ["--memory-limit", "512MB"], "spark": ["--memory-limit", "2GB"]}
        out += [("check", "20M", e, limits.get(e, []), 1 * GIB, None) for e in engines]
    if "report" in jobs:
        report: dict[str, tuple[list[str], float | None, float | None]] = {
            "polars": ([], None, 180.0),  # RSS target: the Arrow size of the columns read
            "duckdb": (["--memory-limit", "2GB"], 3 * GIB, 300.0),
            "spark": (["--memory-limit", "2GB"], None, None),
        }
        out += [("report", "20M", e, *report[e]) for e in engines]
    if scale:
        out.append(("report", "100M", "duckdb", ["--memory-limit", "3GB"], 4 * GIB, None))
    return out


# --------------------------------------------------------------------------- measuring
def _vm_hwm_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def measure(command: list[str], *, max_rss_mib: float, timeout_s: float) -> dict[str, Any]:
    """Run ``command``; its wall time, peak RSS (VmHWM of it and its children), output."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc = psutil.Process(process.pid)
    hwm: dict[int, int] = {}  # pid -> its last VmHWM (KiB)
    names: dict[int, str] = {}
    polled_sum, stopped = 0, None
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    import threading

    readers = [
        threading.Thread(target=lambda: out_chunks.append(process.stdout.read())),  # type: ignore[union-attr]
        threading.Thread(target=lambda: err_chunks.append(process.stderr.read())),  # type: ignore[union-attr]
    ]
    for reader in readers:
        reader.start()
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):
            tree = [proc, *proc.children(recursive=True)]
            now = 0
            for p in tree:
                if (kib := _vm_hwm_kib(p.pid)) > 0:
                    hwm[p.pid] = kib
                    names.setdefault(p.pid, p.name())
                with contextlib.suppress(psutil.Error):
                    now += p.memory_info().rss
            polled_sum = max(polled_sum, now)
        peak = sum(hwm.values()) / 1024
        if peak > max_rss_mib:
            stopped = f"killed at {peak:.0f} MiB RSS (cap {max_rss_mib:.0f})"
        elif time.perf_counter() - started > timeout_s:
            stopped = f"killed after {timeout_s / 60:.0f} min"
        if stopped:
            for p in reversed([proc, *proc.children(recursive=True)]):
                with contextlib.suppress(psutil.Error):
                    p.kill()
            process.wait()
            break
        time.sleep(0.1)
    for reader in readers:
        reader.join()
    wall = time.perf_counter() - started
    return {
        "command": [Path(command[0]).name, *command[1:]],
        "exit_code": process.returncode,
        "stopped": stopped,
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(sum(hwm.values()) / 1024, 1),
        "peak_rss_by_process_mib": {
            f"{names[pid]}[{pid}]": round(kib / 1024, 1) for pid, kib in hwm.items()
        },
        "polled_rss_sum_peak_mib": round(polled_sum / 2**20, 1),
        "stdout": b"".join(out_chunks).decode(errors="replace"),
        "stderr": b"".join(err_chunks).decode(errors="replace"),
    }


# --------------------------------------------------------------------------- reading results
def _json_lines(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                records.append(json.loads(line))
    return records


def sections(stderr: str) -> tuple[dict[str, float], dict[str, float]]:
    """Each section's (or check step's) seconds and the process's peak RSS after it (MiB),
    from the ``-v`` log lines ``report: <section> in <s> s (peak RSS <n> MiB)`` (``check:``)."""
    seconds: dict[str, float] = {}
    peaks: dict[str, float] = {}
    for line in stderr.splitlines():
        record = _json_lines(line)
        text = str(record[0].get("message", "")) if record else line
        step = r"(?:report|check): (.+?) in ([\d.]+) s(?: \(peak RSS (\d+) MiB\))?"
        if match := re.search(step, text):
            seconds[match[1]] = float(match[2])
            if match[3]:
                peaks[match[1]] = float(match[3])
    return seconds, peaks


def headlines(page: Path) -> dict[str, str]:
    """The report's headline numbers: label -> value, from its cards."""
    text = page.read_text(encoding="utf-8")
    pairs = re.findall(
        r'<div class="label">(.*?)</div>\s*<div class="value">(.*?)</div>', text, flags=re.S
    )
    return dict(pairs)


def findings(stdout: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the check found, as a count and a SHA-256 of every field of every finding but the
    log line's own time (sorted: the same findings give the same digest on every engine),
    and its summary line. The findings themselves are tens of MB on 20M states."""
    records = _json_lines(stdout)
    found = [
        {k: v for k, v in r.items() if k != "time"} for r in records if r.get("event") == "finding"
    ]
    text = "\n".join(sorted(json.dumps(r, sort_keys=True) for r in found))
    digest = {"count": len(found), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    return digest, next((r for r in records if r.get("event") == "check"), {})


def report_columns_arrow_mib(folder: Path) -> dict[str, float]:
    """The Arrow size (MiB) of each column the report reads, one column at a time."""
    code = (
        "import json, sys, polars as pl, trs_analytics as ta\n"
        "from trs_analytics.report._report import _REPORT_COLUMNS\n"
        "lf = ta.scan_states(sys.argv[1])\n"
        "out = {}\n"
        "for c in [c for c in _REPORT_COLUMNS if c in lf.collect_schema().names()]:\n"
        "    frame = lf.select(c).collect()\n"
        "    out[c] = frame.to_arrow(compat_level=pl.CompatLevel.newest())"
        ".get_total_buffer_size() / 2**20\n"
        "    del frame\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"the Arrow sizes were not measured:\n{done.stderr[-2000:]}")
    return {k: round(v, 1) for k, v in json.loads(done.stdout.splitlines()[-1]).items()}


# --------------------------------------------------------------------------- main
def one(run: Run, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    job, dataset, engine, extra, rss_target, time_target = run
    if (job, dataset, engine) == ("report", "20M", "polars"):
        rss_target = getattr(args, "report_arrow_mib", None)  # the columns read, as Arrow
    out = WORK / f"report-{dataset}-{engine}.html"
    WORK.mkdir(parents=True, exist_ok=True)
    rules = WORK / "bench_report_sla.toml"
    rules.write_text(RULES, encoding="utf-8")
    command = [str(ENTRY), "-v", "--log-format", "json", job, str(folder), "--engine", engine]
    if job == "report":
        command += ["--out", str(out), "--rules", str(rules)]
    else:
        command += ["--rules", str(rules), "--now", NOW]
    command += extra
    print(f"{job} {dataset} {engine}: {' '.join(command[1:])}", flush=True)
    load_before, code = os.getloadavg()[0], code_version()  # what runs, not what is there after
    result = measure(command, max_rss_mib=args.max_rss_gib * GIB, timeout_s=args.timeout_min * 60)
    # the 1-minute load average before and after: above ~2 on 2 cores, times are inflated
    result["loadavg_1m"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    stdout, stderr = result.pop("stdout"), result.pop("stderr")
    result.update(job=job, dataset=dataset, engine=engine, code=code)
    result["ok"] = result["stopped"] is None and result["exit_code"] in (
        (0, 1) if job == "check" else (0,)
    )
    if not result["ok"]:
        result["stderr_tail"] = stderr[-3000:]
        # a JVM's trace puts the cause far above the tail: keep every line that names one
        # (and inside a JSON log line's traceback, whose line ends are written as \\n)
        lines = stderr.replace("\\n", "\n").splitlines()
        causes = [line.strip()[:400] for line in lines if "Caused by" in line]
        result["stderr_causes"] = list(dict.fromkeys(causes))[:20]
    if job == "check" and result["ok"]:
        found, summary = findings(stdout)
        result["findings"] = found
        result["summary"] = {k: summary.get(k) for k in ("runs", "anomaly", "stuck", "sla")}
    if job in ("report", "check"):  # the sections done, even in a run that was stopped
        result["sections_s"], result["sections_peak_rss_mib"] = sections(stderr)
    if job == "report" and result["ok"]:
        result["headlines"] = headlines(out)
    result["targets"] = {"peak_rss_mib": rss_target, "wall_s": time_target}
    met = [result["ok"]]
    if rss_target is not None:
        met.append(result["peak_rss_mib"] <= rss_target)
    if time_target is not None:
        met.append(result["wall_s"] <= time_target)
    result["met"] = all(met)
    print(
        f"  -> ok={result['ok']} {result['wall_s']:.0f} s, {result['peak_rss_mib']:.0f} MiB "
        f"{result['stopped'] or ''}",
        flush=True,
    )
    return result


def agreement(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the engines agree, per job and dataset, on what each run printed or wrote."""
    out: dict[str, Any] = {}
    for job, key in (("check", "findings"), ("report", "headlines")):
        for dataset in sorted({r["dataset"] for r in results}):
            done = [r for r in results if r["job"] == job and r["dataset"] == dataset and r["ok"]]
            if len(done) < 2:
                continue
            first = done[0]
            out[f"{job}-{dataset}"] = {
                "engines": [r["engine"] for r in done],
                "equal": all(r[key] == first[key] for r in done[1:]),
                "compared": key,
            }
    return out


def _earlier(name: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs an earlier invocation saved that this one did not redo (``--jobs`` apart)."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return []
    redone = {(r["job"], r["dataset"], r["engine"]) for r in results}
    kept = json.loads(path.read_text())["runs"]
    return [r for r in kept if (r["job"], r["dataset"], r["engine"]) not in redone]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA20M, help="the 20M dataset's folder")
    parser.add_argument("--jobs", default="check,report")
    parser.add_argument("--engines", default="polars,duckdb,spark")
    parser.add_argument("--scale", action="store_true", help="also the report on 100M, DuckDB")
    parser.add_argument("--data100m", type=Path, default=WORK / "states-100000000")
    parser.add_argument("--max-rss-gib", type=float, default=10.0)
    parser.add_argument("--timeout-min", type=float, default=30.0)
    parser.add_argument("--name", default="report", help="results file name")
    args = parser.parse_args()
    jobs, engines = args.jobs.split(","), args.engines.split(",")
    folders = {"20M": build_dataset(20_000_000, CHUNK, root=args.data)}
    if args.scale:  # bench_scale's dataset: 20 chunks of 5M states
        folders["100M"] = build_dataset(100_000_000, 5_000_000, root=args.data100m)
    data = {}
    for name, folder in folders.items():
        files = list(folder.rglob("*.parquet"))
        data[name] = {
            "folder": str(folder),
            "files": len(files),
            "parquet_mib": round(sum(f.stat().st_size for f in files) / 2**20, 1),
        }
    if "report" in jobs and "polars" in engines:
        columns = report_columns_arrow_mib(folders["20M"])
        data["20M"]["report_columns_arrow_mib"] = columns
        args.report_arrow_mib = round(sum(columns.values()), 1)
    results = [one(run, folders[run[1]], args) for run in runs(jobs, engines, args.scale)]
    results = _earlier(args.name, results) + results
    path = RESULTS / f"{args.name}.json"
    if path.exists():  # the datasets of the runs kept from earlier
        data = {**json.loads(path.read_text()).get("data", {}), **data}
    payload = {
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "data": data,
        "runs": results,
        "agree": agreement(results),
        "load_note": "each run's loadavg_1m says how busy the machine was; RSS holds either way",
        "cpu_count": os.cpu_count(),
    }
    saved = save_results(args.name, payload)
    print(json.dumps(payload["agree"], indent=2))
    print(f"results: {saved}")


if __name__ == "__main__":
    main()

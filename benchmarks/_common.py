"""Helpers shared by the benchmarks: a Prefect server, child processes, medians, results."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from devtools.prefect_harness import clean_prefect_env, start_prefect_server

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent
WORK = ROOT / ".work"
RESULTS = ROOT / "results"

# The benchmarks start Prefect servers with the tests' harness (same environment
# cleaning, quiet services, process-group stop); only the kept PREFECT_HOME differs.
prefect_env = clean_prefect_env


@contextlib.contextmanager
def prefect_server(home: Path, *, timeout: float = 90.0) -> Iterator[str]:
    """Run ``prefect server start`` on ``home`` (kept between runs); yield its API URL."""
    with start_prefect_server(home, timeout=timeout) as server:
        yield server.api_url


@dataclass
class ChildResult:
    """What a measured child process printed (its last JSON line) and its peak RSS."""

    result: dict[str, Any]
    peak_rss_mib: float
    wall_s: float


class MemoryCapError(RuntimeError):
    """A child outgrew the RSS cap and was killed (to protect a shared machine)."""


def run_child(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    poll: float = 0.02,
    max_rss_mib: float | None = None,
    timeout_s: float | None = None,
) -> ChildResult:
    """Run ``python args...`` in a fresh process; return its last stdout JSON line and peak RSS.

    RSS is polled (process and its children) every ``poll`` seconds; the
    child's own peak (``ru_maxrss_kib``, VmHWM) is taken too when it reports
    one, and the larger wins. A child whose RSS passes ``max_rss_mib`` is
    killed and :class:`MemoryCapError` raised. A child still running after
    ``timeout_s`` is killed and :class:`TimeoutError` raised (its peak RSS so
    far in the message).
    """
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    proc = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):
            rss = proc.memory_info().rss + sum(
                c.memory_info().rss for c in proc.children(recursive=True)
            )
            peak = max(peak, rss)
        if max_rss_mib is not None and peak > max_rss_mib * 2**20:
            process.kill()
            process.wait()
            raise MemoryCapError(f"{args} passed {max_rss_mib:.0f} MiB RSS and was killed")
        if timeout_s is not None and time.perf_counter() - started > timeout_s:
            process.kill()
            process.wait()
            raise TimeoutError(f"peak_rss_mib={peak / 2**20:.1f}")
        time.sleep(poll)
    out, err = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{args} failed ({process.returncode}):\n{err.decode()[-3000:]}")
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    result = json.loads(lines[-1])
    peak = max(peak, int(result.get("ru_maxrss_kib", 0)) * 1024)
    return ChildResult(result=result, peak_rss_mib=peak / 2**20, wall_s=wall)


def ru_maxrss_kib() -> int:
    """This process's peak RSS in KiB: ``VmHWM`` from /proc (Linux).

    Not ``getrusage().ru_maxrss``: after fork + exec it still counts the parent's
    memory at the fork, so a child would inherit a big parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def machine() -> dict[str, Any]:
    """Where and when a benchmark ran, and how loaded the machine was."""
    import polars as pl

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "polars": pl.__version__,
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "loadavg_1m_at_start": os.getloadavg()[0],
    }


def code_version() -> str:
    """The commit the package was measured at, ``+edits`` when its code differs from it."""
    import subprocess

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False, cwd=ROOT)

    commit = git("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
    edited = git("diff", "--quiet", "HEAD", "--", "../trs_analytics").returncode != 0
    return f"{commit}+edits" if edited else commit


def save_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus the load average at the end) to ``results/<name>.json``."""
    RESULTS.mkdir(exist_ok=True)
    payload = {**payload, "loadavg_1m_at_end": os.getloadavg()[0]}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path

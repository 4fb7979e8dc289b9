"""Helpers shared by the benchmarks: a Prefect server, child processes, medians, results."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent
WORK = ROOT / ".work"
RESULTS = ROOT / "results"

#: Services a read-only benchmark server does not need (the event persister and
#: task-run recorder stay on, so workload states become readable).
QUIET_SERVICES = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prefect_env(home: Path, **settings: str) -> dict[str, str]:
    """``os.environ`` without the user's ``PREFECT_*`` settings, with ``home`` as PREFECT_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_PROFILES_PATH=str(home / "profiles.toml"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
    )
    env.update(settings)
    return env


@contextlib.contextmanager
def prefect_server(home: Path, *, timeout: float = 90.0) -> Iterator[str]:
    """Run ``prefect server start`` on ``home`` (kept between runs); yield its API URL."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    prefect = Path(sys.executable).parent / "prefect"
    with (home / "server.log").open("ab") as log:
        process = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=home,
            env=prefect_env(home, **QUIET_SERVICES),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        wait_healthy(api_url, process, timeout)
        yield api_url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_healthy(api_url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api_url}/health", timeout=2).json() is True:
                return
        time.sleep(0.3)
    raise RuntimeError(f"the Prefect server at {api_url} was not healthy after {timeout} s")


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
) -> ChildResult:
    """Run ``python args...`` in a fresh process; return its last stdout JSON line and peak RSS.

    RSS is polled (process and its children) every ``poll`` seconds; the
    child's own peak (``ru_maxrss_kib``, VmHWM) is taken too when it reports
    one, and the larger wins. A child whose RSS passes ``max_rss_mib`` is
    killed and :class:`MemoryCapError` raised.
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


def save_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus the load average at the end) to ``results/<name>.json``."""
    RESULTS.mkdir(exist_ok=True)
    payload = {**payload, "loadavg_1m_at_end": os.getloadavg()[0]}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path

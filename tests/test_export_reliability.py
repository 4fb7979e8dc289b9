"""The export under faults, kills and a second writer, against the real Prefect server.

* Through :class:`tests.faultproxy.FaultProxy` (429 with Retry-After, 500, 503,
  dropped connections, slow responses on about 10% of requests), the dataset
  equals a clean export's, row for row.
* ``trs-analytics export`` killed with SIGKILL at seeded random moments (at
  least 10 kills), then rerun: after every kill the dataset opens, holds no
  state twice and only rows of the clean export; the final rerun completes it.
* Two exports started at once: one writes, the other exits 75 or finishes
  after it; the dataset is the clean one.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl
import pytest

from tests.faultproxy import FaultProxy
from trs_analytics.export import export_states
from trs_analytics.storage import scan_states

if TYPE_CHECKING:
    from pathlib import Path

    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth
    from trs_analytics.fetch import Source

SEED = 20261128


def bounds(workload: GroundTruth) -> tuple[str, str]:
    since = workload.started_at - timedelta(minutes=1)
    until = workload.finished_at + timedelta(minutes=1)
    return since.isoformat(), until.isoformat()


@pytest.fixture(scope="module")
def clean(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: PrefectServer, workload: GroundTruth
) -> pl.DataFrame:
    """A clean export of the workload's window, sorted by id."""
    since, until = bounds(workload)
    out = tmp_path_factory.mktemp("clean") / "ds"
    export_states(out, api_url=prefect_server.api_url, since=since, until=until, source="events")
    frame = scan_states(out).collect().sort("id")
    assert frame.height >= workload.n_states
    return frame


def rows_of(out: Path) -> pl.DataFrame:
    return scan_states(out).collect().sort("id") if out.exists() else pl.DataFrame()


@pytest.mark.parametrize("source", ["events", "states"])
def test_a_faulty_network_changes_no_row(
    tmp_path: Path,
    prefect_server: PrefectServer,
    workload: GroundTruth,
    clean: pl.DataFrame,
    source: Source,
) -> None:
    since, until = bounds(workload)
    with FaultProxy(prefect_server.api_url, seed=SEED, rate=0.1, lifetime=120) as proxy:
        result = export_states(
            tmp_path / "ds", api_url=proxy.api_url, since=since, until=until, source=source
        )
    print(f"\n{source}: {result.summary()}; proxy {dict(proxy.counts)}")
    assert proxy.injected > 0
    # every fault but a slow answer costs exactly one retry, and nothing else is retried
    assert result.retries == proxy.injected - proxy.counts["slow"]
    assert rows_of(tmp_path / "ds").equals(clean)


def export_command(api_url: str, out: Path, since: str, until: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "trs_analytics.cli",
        "--quiet",
        "export",
        "--api-url",
        api_url,
        "--out",
        str(out),
        "--since",
        since,
        "--until",
        until,
        "--flush-rows",
        "100",
    ]


def child_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PREFECT_PROFILES_PATH": str(tmp_path / "none.toml")}


def part_files(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in out.glob("day=*/part-*.parquet")}


def kill_at_random_moment(child: subprocess.Popen[bytes], out: Path, rng: random.Random) -> str:
    """SIGKILL ``child`` at a moment picked by ``rng``; return where, or "finished".

    Moments are chosen by what the export is doing, not by the clock alone, so
    they land at different stages however loaded the machine is: early (start,
    lock, fetch), in the middle of writing a file, or just after a file was
    replaced (before the next one, or before the cursor moves).
    """
    moment = rng.choice(["early", "mid-write", "after-write"])
    deadline = time.monotonic() + rng.uniform(0.05, 1.5) if moment == "early" else None
    writes_to_see = rng.randint(1, 4)
    seen = part_files(out) if out.exists() else {}
    while child.poll() is None:
        if deadline is not None and time.monotonic() >= deadline:
            break
        if moment == "mid-write" and any(out.glob("day=*/.part-*.tmp")):
            break
        if moment == "after-write" and (now := part_files(out)) != seen:
            seen, writes_to_see = now, writes_to_see - 1
            if writes_to_see == 0:
                time.sleep(rng.uniform(0, 0.03))
                break
        time.sleep(0.002)
    if child.poll() is not None:
        return "finished"
    child.send_signal(signal.SIGKILL)
    child.wait()
    return moment


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth, clean: pl.DataFrame
) -> None:
    """Like cron with a growing window: each run is killed at a random moment, or finishes."""
    since, until = bounds(workload)
    start, end = datetime.fromisoformat(since), datetime.fromisoformat(until)
    out = tmp_path / "ds"
    env = child_env(tmp_path)
    rng = random.Random(SEED)
    moments: list[str] = []
    heights: list[int] = []
    while moments.count("finished") + 10 > len(moments) and len(moments) < 30:
        upto = start + (end - start) * min(1.0, (len(moments) + 1) / 10)
        command = export_command(prefect_server.api_url, out, since, upto.isoformat())
        child = subprocess.Popen(
            [*command, "--source", "states" if len(moments) % 4 == 3 else "events"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        moments.append(kill_at_random_moment(child, out, rng))
        _, stderr = child.communicate()
        if moments[-1] == "finished":
            assert child.returncode == 0, stderr.decode()
        frame = rows_of(out)  # the dataset opens after every kill
        if frame.height:
            assert frame["id"].is_unique().all()
            assert frame.equals(clean.filter(pl.col("id").is_in(frame["id"].implode())))
            assert (frame["timestamp"] < upto).all()
        heights.append(frame.height)
    print(f"\nkilled at {moments}; rows after each run: {heights}")
    assert len(moments) - moments.count("finished") >= 10
    assert {"early", "mid-write", "after-write"} <= set(moments)

    final = subprocess.run(
        export_command(prefect_server.api_url, out, since, until),
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert final.returncode == 0, final.stderr
    assert rows_of(out).equals(clean)
    assert not list(out.rglob(".*.tmp"))


def test_two_exports_at_once_do_not_corrupt_the_dataset(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth, clean: pl.DataFrame
) -> None:
    since, until = bounds(workload)
    out = tmp_path / "ds"
    command = [*export_command(prefect_server.api_url, out, since, until), "--source", "states"]
    env = child_env(tmp_path)
    children = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    codes, errors = [], []
    for child in children:
        _, stderr = child.communicate(timeout=120)
        codes.append(child.returncode)
        errors.append(stderr.decode())
    assert sorted(codes) in ([0, 0], [0, 75]), errors
    if 75 in codes:
        assert "Error: " in errors[codes.index(75)]
        assert "being written by another export" in errors[codes.index(75)]
    assert rows_of(out).equals(clean)

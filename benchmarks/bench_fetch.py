"""Fetch benchmark: states/s, requests/state and peak memory against a real Prefect server.

    uv run python benchmarks/bench_fetch.py            # full: 3 rounds, local and +50 ms
    uv run python benchmarks/bench_fetch.py --quick    # 1 round, fewer task runs for (a)

The server's data lives in ``benchmarks/.work/prefect-home`` and is generated
once (``benchmarks/_workload.py``, about 6,000 task runs); later runs start a
server on it again. The window read is fixed in ``.work/fetch-window.json`` so
every run reads the same states.

Variants (each run in a fresh child process, so peak RSS is its own):

* ``prefect``: Prefect's own client, what a user writes today: ``read_task_runs``
  pages of 200 (offset), then ``read_task_run_states`` one run at a time.
* ``trs_states``: ``trs_analytics.fetch_states(source="states")``.
* ``trs_events``: ``trs_analytics.fetch_states(source="events")``.
* ``raw_events``: plain httpx paging ``/events/filter`` + ``next_page``, no
  JSON parsing (the reference for the events target).
* ``raw_states``: plain httpx, task runs listed then 8 concurrent GETs of
  ``/task_run_states/``, JSON parsed (the reference for the states source).

Variants run round-robin (one of each per round), so load from other work on
the machine falls on all of them alike; figures are medians over rounds and
ratios are taken within a round. Then, with ``--incremental``, a small slice of
new workload is added and the requests per new state of an incremental read are
counted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trs_analytics.fetch import Source

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    WORK,
    machine,
    median,
    prefect_env,
    prefect_server,
    ru_maxrss_kib,
    run_child,
    save_results,
)

HOME = WORK / "prefect-home"
WINDOW_FILE = WORK / "fetch-window.json"
VARIANTS = ("prefect", "trs_states", "trs_events", "raw_events", "raw_states")
CHILDREN = (*VARIANTS, "export")
THIS = Path(__file__).resolve()


# --------------------------------------------------------------------------- children
def _window(args: argparse.Namespace) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(args.since), datetime.fromisoformat(args.until)


def child_prefect(args: argparse.Namespace) -> dict[str, Any]:
    """Prefect's own sync client, sequential: pages of task runs, then states run by run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterStartTime

    since, until = _window(args)
    # Prefect validates datetimes into its own DateTime, the type its annotation names.
    start_time = TaskRunFilterStartTime(after_=since, before_=until)  # type: ignore[arg-type]
    task_filter = TaskRunFilter(start_time=start_time)
    rows: list[tuple[Any, ...]] = []
    requests = runs = 0
    started = time.perf_counter()
    with get_client(sync_client=True) as client:
        offset = 0
        while args.max_task_runs <= 0 or runs < args.max_task_runs:
            page = client.read_task_runs(task_run_filter=task_filter, limit=200, offset=offset)
            requests += 1
            if not page:
                break
            for task_run in page:
                if 0 < args.max_task_runs <= runs:
                    break
                states = client.read_task_run_states(task_run.id)
                requests += 1
                runs += 1
                rows.extend((str(task_run.id), s.type.value, s.name, s.timestamp) for s in states)
            offset += len(page)
    seconds = time.perf_counter() - started
    return {"states": len(rows), "task_runs": runs, "requests": requests, "seconds": seconds}


def child_trs(args: argparse.Namespace, source: Source) -> dict[str, Any]:
    """trs_analytics.fetch_states with one client, so its request counter can be read."""
    import trs_analytics as ta

    since, until = _window(args)
    started = time.perf_counter()
    with ta.PrefectClient(args.api_url, concurrency=args.concurrency) as client:
        frame = ta.fetch_states(since=since, until=until, source=source, client=client)
        requests = client.stats.requests
    seconds = time.perf_counter() - started
    return {
        "states": frame.height,
        "task_runs": frame["task_run_id"].n_unique(),
        "requests": requests,
        "seconds": seconds,
    }


_NEXT_PAGE = re.compile(rb'"next_page"\s*:\s*(null|"([^"]*)")')
_EVENT = b'"event": "prefect.task-run.'


def child_raw_events(args: argparse.Namespace) -> dict[str, Any]:
    """Plain httpx: page /events/filter and follow next_page; only next_page is read."""
    import httpx

    since, until = _window(args)
    body = {
        "filter": {
            "event": {"prefix": ["prefect.task-run."]},
            "occurred": {"since": since.isoformat(), "until": until.isoformat()},
            "order": "ASC",
        },
        "limit": 50,
    }
    states = requests = 0
    base = args.api_url.rstrip("/")
    started = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        content = client.post(f"{base}/events/filter", json=body).raise_for_status().content
        requests += 1
        while True:
            states += content.count(_EVENT) or content.count(_EVENT.replace(b" ", b""))
            match = _NEXT_PAGE.search(content, max(0, len(content) - 4096))
            if match is None or match.group(1) == b"null":
                break
            # re-base next_page onto our URL (it names the server, not the proxy)
            path = match.group(2).decode().split("/api/", 1)[1]
            content = client.get(f"{base}/{path}").raise_for_status().content
            requests += 1
    seconds = time.perf_counter() - started
    return {"states": states, "requests": requests, "seconds": seconds}


def child_raw_states(args: argparse.Namespace) -> dict[str, Any]:
    """Plain httpx: list task runs (pages of 200), then 8 concurrent GETs of their states."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    since, until = _window(args)
    base = args.api_url.rstrip("/")
    window = {"after_": since.isoformat(), "before_": until.isoformat()}
    started = time.perf_counter()
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=16)) as client:
        ids: list[str] = []
        requests = 0
        while True:
            body = {
                "task_runs": {"expected_start_time": window},
                "sort": "ID_DESC",
                "limit": 200,
                "offset": len(ids),
            }
            page = client.post(f"{base}/task_runs/filter", json=body).raise_for_status().json()
            requests += 1
            ids += [r["id"] for r in page]
            if len(page) < 200:
                break

        def states(task_run_id: str) -> int:
            response = client.get(f"{base}/task_run_states/", params={"task_run_id": task_run_id})
            return len(response.raise_for_status().json())

        with ThreadPoolExecutor(args.concurrency) as pool:
            total = sum(pool.map(states, ids))
    seconds = time.perf_counter() - started
    return {
        "states": total,
        "task_runs": len(ids),
        "requests": requests + len(ids),
        "seconds": seconds,
    }


def run_as_child(args: argparse.Namespace) -> None:
    import psutil

    if args.child == "prefect":
        import prefect.client.orchestration  # noqa: F401  (before the baseline RSS)
    elif args.child in ("trs_states", "trs_events", "export"):
        import trs_analytics  # noqa: F401
    rss_after_imports = psutil.Process().memory_info().rss
    if args.child == "prefect":
        result = child_prefect(args)
    elif args.child == "export":
        result = child_export(args)
    elif args.child in ("trs_states", "trs_events"):
        result = child_trs(args, args.child.removeprefix("trs_"))
    elif args.child == "raw_events":
        result = child_raw_events(args)
    else:
        result = child_raw_states(args)
    result["rss_after_imports_mib"] = rss_after_imports / 2**20
    result["ru_maxrss_kib"] = ru_maxrss_kib()
    print(json.dumps(result, default=str))


# --------------------------------------------------------------------------- parent
def count_task_runs(api_url: str) -> int:
    import httpx

    return int(httpx.post(f"{api_url}/task_runs/count", json={}, timeout=30).json())


def run_workload(api_url: str, task_runs: int, seed: int) -> None:
    env = prefect_env(
        WORK / "client-home", PREFECT_API_URL=api_url, PREFECT_LOGGING_LEVEL="CRITICAL"
    )
    log = WORK / "workload.log"
    with log.open("ab") as out:
        subprocess.run(
            [
                sys.executable,
                str(THIS.parent / "_workload.py"),
                "--task-runs",
                str(task_runs),
                "--seed",
                str(seed),
            ],
            env=env,
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_settled(api_url: str, *, quiet_for: float = 8.0, timeout: float = 120.0) -> int:
    """Wait until the number of task-run events stops growing; return it."""
    import httpx

    body = {"filter": {"event": {"prefix": ["prefect.task-run."]}}, "limit": 1}
    last, since_change = -1, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        total = httpx.post(f"{api_url}/events/filter", json=body, timeout=30).json()["total"]
        if total != last:
            last, since_change = total, time.monotonic()
        elif time.monotonic() - since_change > quiet_for:
            return int(total)
        time.sleep(1.0)
    return int(last)


def ensure_data(api_url: str, task_runs: int) -> dict[str, str]:
    """Generate the workload once; return the fixed window that covers it."""
    if WINDOW_FILE.exists():
        saved: dict[str, str] = json.loads(WINDOW_FILE.read_text())
        return saved
    since = datetime.now(UTC) - timedelta(days=1)
    have = count_task_runs(api_url)
    if have < task_runs:
        print(f"generating {task_runs - have} task runs (once; takes minutes)", flush=True)
        run_workload(api_url, task_runs - have, seed=1)
    wait_settled(api_url)
    window = {
        "since": since.isoformat(),
        "until": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
        "task_runs": str(count_task_runs(api_url)),
    }
    WINDOW_FILE.write_text(json.dumps(window, indent=2))
    return window


@contextmanager
def latency_proxy(api_url: str, delay_ms: float) -> Iterator[str]:
    upstream = api_url.removesuffix("/api")
    process = subprocess.Popen(
        [
            sys.executable,
            str(THIS.parent / "latency_proxy.py"),
            "--upstream",
            upstream,
            "--delay-ms",
            str(delay_ms),
            "--idle-seconds",
            "600",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("listening "):
            raise RuntimeError(f"the latency proxy did not start: {line!r}")
        yield line.split()[1] + "/api"
    finally:
        process.terminate()
        process.wait(timeout=10)


def measure(
    variant: str,
    api_url: str,
    window: dict[str, str],
    *,
    max_task_runs: int = 0,
    out: Path | None = None,
) -> dict[str, Any]:
    args = [str(THIS), "--child", variant, "--api-url", api_url]
    if window.get("since"):
        args += ["--since", window["since"]]
    if variant != "export":
        args += ["--until", window["until"]]
    args += ["--max-task-runs", str(max_task_runs)]
    if out is not None:
        args += ["--out", str(out)]
    env = prefect_env(WORK / "client-home", PREFECT_API_URL=api_url)
    child = run_child(args, env=env)
    result = dict(child.result)
    result.pop("ru_maxrss_kib", None)
    result["peak_rss_mib"] = round(child.peak_rss_mib, 1)
    result["states_per_s"] = result["states"] / result["seconds"]
    result["requests_per_state"] = result["requests"] / max(1, result["states"])
    return result


def run_rounds(
    api_url: str,
    window: dict[str, str],
    *,
    rounds: int,
    variants: tuple[str, ...],
    prefect_cap: int,
    label: str,
) -> dict[str, Any]:
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for r in range(rounds):
        for variant in variants:
            cap = prefect_cap if variant == "prefect" else 0
            result = measure(variant, api_url, window, max_task_runs=cap)
            samples[variant].append(result)
            print(
                f"[{label} round {r + 1}] {variant:11s} {result['states']:6d} states "
                f"{result['seconds']:7.1f} s {result['states_per_s']:8.0f}/s "
                f"{result['requests_per_state']:.3f} req/state {result['peak_rss_mib']:.0f} MiB "
                f"(load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    return {"samples": samples, "summary": summarize(samples)}


def summarize(samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for variant, runs in samples.items():
        summary[variant] = {
            key: median([r[key] for r in runs])
            for key in ("states", "seconds", "states_per_s", "requests_per_state", "peak_rss_mib")
        }
        summary[variant]["rss_after_imports_mib"] = median(
            [r["rss_after_imports_mib"] for r in runs]
        )
    # ratios taken within each round, then the median over rounds
    pairs = {
        "trs_states_vs_prefect": ("trs_states", "prefect"),
        "trs_events_vs_prefect": ("trs_events", "prefect"),
        "trs_events_vs_raw_events": ("trs_events", "raw_events"),
        "trs_states_vs_raw_states": ("trs_states", "raw_states"),
    }
    ratios = {}
    for name, (a, b) in pairs.items():
        if a in samples and b in samples:
            ratios[name] = median(
                [
                    x["states_per_s"] / y["states_per_s"]
                    for x, y in zip(samples[a], samples[b], strict=False)
                ]
            )
    summary["ratios"] = ratios
    return summary


def child_export(args: argparse.Namespace) -> dict[str, Any]:
    """One ``export_states`` call into ``--out`` (events source, default overlap)."""
    import trs_analytics as ta
    from trs_analytics.export import export_states

    with ta.PrefectClient(args.api_url, concurrency=args.concurrency) as client:
        result = export_states(args.out, client=client, since=args.since, source="events")
    summary = result.as_dict()
    return {
        "states": result.added,
        "read": result.states,
        "requests": result.requests,
        "seconds": result.seconds,
        "export": summary,
    }


def incremental(
    api_url: str, window: dict[str, str], *, task_runs: int, seed: int
) -> dict[str, Any]:
    """Requests per new state of an incremental ``export_states`` while work keeps arriving.

    A first export fills a new dataset; a slice of workload runs right before
    it and another right after, so the second export's overlap (10 minutes by
    default) re-reads real recent states, as a scheduled export does.
    """
    out = WORK / f"export-{int(time.time())}"
    run_workload(api_url, task_runs, seed=seed)
    wait_settled(api_url)
    first = measure("export", api_url, window, out=out)
    run_workload(api_url, task_runs, seed=seed + 1)
    wait_settled(api_url)
    second = measure("export", api_url, {**window, "since": ""}, out=out)
    second["requests_per_new_state"] = second["requests"] / max(1, second["states"])
    return {"first_export": first, "incremental_export": second, "slice_task_runs": task_runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", choices=CHILDREN, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    parser.add_argument("--since", help=argparse.SUPPRESS)
    parser.add_argument("--until", help=argparse.SUPPRESS)
    parser.add_argument("--max-task-runs", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="one round, capped baseline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--task-runs", type=int, default=6_000, help="generated once")
    parser.add_argument(
        "--prefect-cap",
        type=int,
        default=1_000,
        help="task runs read by the sequential Prefect baseline with latency (0: all)",
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["local", "latency", "incremental"]
    )
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--name", help="results/<name>.json (default: fetch, or fetch_quick)")
    args = parser.parse_args()
    if args.child:
        run_as_child(args)
        return
    rounds = 1 if args.quick else args.rounds
    cap = 300 if args.quick else args.prefect_cap
    variants = tuple(args.variants)
    results: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    with ExitStack() as stack:
        api_url = stack.enter_context(prefect_server(HOME))
        window = ensure_data(api_url, args.task_runs)
        results["window"] = window
        print(f"server {api_url}, window {window}", flush=True)
        if "local" not in args.skip:
            results["local"] = run_rounds(
                api_url,
                window,
                rounds=rounds,
                variants=variants,
                prefect_cap=cap if args.quick else 0,
                label="local",
            )
        if "latency" not in args.skip:
            proxied = stack.enter_context(latency_proxy(api_url, args.delay_ms))
            results["latency"] = run_rounds(
                proxied,
                window,
                rounds=rounds,
                variants=variants,
                prefect_cap=cap,
                label=f"+{args.delay_ms:.0f} ms",
            )
        if "incremental" not in args.skip:
            results["incremental"] = incremental(
                api_url, window, task_runs=100 if args.quick else 300, seed=int(time.time())
            )
            print(f"incremental: {results['incremental']}", flush=True)
    name = args.name or ("fetch_quick" if args.quick else "fetch")
    print(f"results: {save_results(name, results)}")


if __name__ == "__main__":
    main()

"""A Prefect workload for the fetch benchmark: run as a script with PREFECT_API_URL set.

    python benchmarks/_workload.py --task-runs 6000

Flow runs of 100 task runs each, from several flows and task names; some tasks
fail, some retry (``retries=2``, no delay) and durations are skewed. It exists
so the fetch benchmark has a realistic server to read; ``devtools/workload.py``
(when present) is the test suite's own generator.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from prefect import Flow, flow, task
from prefect.task_runners import ThreadPoolTaskRunner

TASKS_PER_FLOW_RUN = 100


@task(retries=2, retry_delay_seconds=0)
def step(name: str, seed: int) -> int:
    rng = random.Random(seed)
    time.sleep(min(rng.paretovariate(3.0) * 0.002, 0.05))
    roll = rng.random()
    if roll < 0.04:  # fails on every attempt: three attempts, then Failed
        raise RuntimeError(f"{name}: permanent failure")
    if roll < 0.12 and rng.random() < 0.6:  # flaky: some attempts fail, most recover
        raise RuntimeError(f"{name}: transient failure")
    return seed


def make_flow(flow_name: str, task_names: list[str]) -> Flow[..., None]:
    # Prefect's annotation wants a TaskRunner of PrefectFuture; ThreadPoolTaskRunner is one.
    runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=8)

    @flow(name=flow_name, task_runner=runner, log_prints=False)  # type: ignore[arg-type]
    def run(seed: int) -> None:
        rng = random.Random(seed)
        futures = []
        for i in range(TASKS_PER_FLOW_RUN):
            name = rng.choice(task_names)
            futures.append(step.with_options(name=name).submit(name, seed * 1000 + i))
        for future in futures:
            future.wait()

    return run


FLOWS = {
    "etl": ["extract", "transform", "load", "validate"],
    "reporting": ["query", "render", "publish"],
    "ml-train": ["featurize", "train", "evaluate", "register", "notify"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task-runs", type=int, default=6_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    flows = [make_flow(name, tasks) for name, tasks in FLOWS.items()]
    runs = max(1, args.task_runs // TASKS_PER_FLOW_RUN)
    started = time.perf_counter()
    for i in range(runs):
        try:
            flows[i % len(flows)](seed=args.seed * 100_000 + i)
        except Exception as err:  # a flow run fails when one of its tasks does
            print(f"flow run {i} ended: {type(err).__name__}")
    elapsed = time.perf_counter() - started
    print(f"{runs * TASKS_PER_FLOW_RUN} task runs in {elapsed:.0f} s")


if __name__ == "__main__":
    main()

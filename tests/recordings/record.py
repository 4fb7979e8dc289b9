"""Record real Prefect 3.9.1 responses for the unit tests' MockTransport.

Run against a local server that has run a small workload (a flow with a task
that retries once, a plain task, and a cached task called twice), e.g.::

    PREFECT_API_URL=http://127.0.0.1:4200/api python tests/recordings/record.py

Each recording is {"request": ..., "status": int, "headers": {...}, "body": <text>}.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx

HERE = Path(__file__).parent
KEEP_HEADERS = ("content-type", "retry-after")


def save(name: str, response: httpx.Response) -> None:
    record = {
        "request": f"{response.request.method} {response.request.url.path}",
        "status": response.status_code,
        "headers": {k: v for k, v in response.headers.items() if k in KEEP_HEADERS},
        "body": response.text,
    }
    (HERE / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")


def main() -> int:
    api = os.environ.get("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    with httpx.Client(base_url=api + "/") as http:
        runs = http.post("task_runs/filter", json={"sort": "EXPECTED_START_TIME_ASC", "limit": 200})
        save("task_runs_filter", runs)
        retried = next(r for r in runs.json() if r["run_count"] > 1)
        save(
            "task_run_states_retried",
            http.get("task_run_states/", params={"task_run_id": retried["id"]}),
        )
        for run in runs.json():
            states = http.get("task_run_states/", params={"task_run_id": run["id"]})
            save(f"task_run_states_{run['id']}", states)
        flow_run_ids = sorted({r["flow_run_id"] for r in runs.json() if r["flow_run_id"]})
        flow_runs = http.post(
            "flow_runs/filter", json={"flow_runs": {"id": {"any_": flow_run_ids}}}
        )
        save("flow_runs_filter", flow_runs)
        flow_ids = sorted({r["flow_id"] for r in flow_runs.json()})
        save("flows_filter", http.post("flows/filter", json={"flows": {"id": {"any_": flow_ids}}}))
        body = {
            "filter": {
                "event": {"prefix": ["prefect.task-run."]},
                "occurred": {"since": "2000-01-01T00:00:00Z"},
                "order": "ASC",
            },
            "limit": 5,
        }
        first = http.post("events/filter", json=body)
        save("events_filter_page1", first)
        save("events_filter_page2", http.get(first.json()["next_page"]))
        save("error_422_limit", http.post("task_runs/filter", json={"limit": 500}))
        save(
            "error_404_no_api_prefix",
            http.post(api.removesuffix("/api") + "/task_runs/filter", json={}),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

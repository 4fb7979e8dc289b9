"""trs_analytics.flows: the export as a Prefect flow, run against the real test server."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
import polars as pl
from click.testing import CliRunner

from tests.fresh import auto_sources, now
from trs_analytics.cli import main
from trs_analytics.fetch import parse_when
from trs_analytics.storage import read_dataset_info, scan_states

if TYPE_CHECKING:
    from pathlib import Path

    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth

RUN_FLOW = textwrap.dedent(
    """
    import json, sys
    from trs_analytics.flows import export_flow

    result = export_flow(out=sys.argv[1], since=sys.argv[2], until=sys.argv[3])
    print("RESULT " + json.dumps(result))
    """
)


def test_the_export_flow_runs_on_the_server_and_writes_the_dataset(
    tmp_path: Path, prefect_server: PrefectServer, workload: GroundTruth
) -> None:
    out = tmp_path / "ds"
    since = (workload.started_at - timedelta(minutes=1)).isoformat()
    until = (workload.finished_at + timedelta(minutes=1)).isoformat()
    env = {**prefect_server.client_env(), "PREFECT_LOGGING_LEVEL": "WARNING"}
    before = now()
    done = subprocess.run(
        [sys.executable, "-c", RUN_FLOW, str(out), since, until],
        env=env,  # PREFECT_API_URL: the flow exports from the server that runs it
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["source"] in auto_sources(workload, before, now())
    assert result["added"] == result["rows"] >= workload.n_states

    frame = scan_states(out).collect()
    mine = frame.filter(pl.col("task_run_id").is_in(list(workload.task_runs)))
    assert mine.height == workload.n_states
    assert read_dataset_info(out).cursor == parse_when(result["until"])

    runs = httpx.post(
        f"{prefect_server.api_url}/flow_runs/filter",
        json={"flows": {"name": {"any_": ["trs-analytics-export"]}}},
        timeout=10,
    ).json()
    ours = [run for run in runs if run["parameters"].get("out") == str(out)]
    assert [run["state_type"] for run in ours] == ["COMPLETED"]


def test_without_prefect_the_import_says_what_to_install() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["prefect"] = None  # as if Prefect were not installed
        import trs_analytics, trs_analytics.cli
        try:
            import trs_analytics.flows
        except ImportError as err:
            print(err)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "trs_analytics.flows needs Prefect, which is not installed. Hint: pip install" in (
        done.stdout
    )


def test_the_package_and_the_cli_do_not_import_prefect() -> None:
    script = "import sys, trs_analytics, trs_analytics.cli; print('prefect' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"


RUN_CHECK_FLOW = textwrap.dedent(
    """
    import json, sys
    from trs_analytics.flows import check_flow

    result = check_flow(path=sys.argv[1], now=sys.argv[2])
    print("RESULT " + json.dumps(result))
    """
)


def test_the_check_flow_publishes_its_findings_as_an_artifact(
    tmp_path: Path, prefect_server: PrefectServer
) -> None:
    import trs_analytics.testing as tt

    planted = tt.generate_planted(seed=11, days=20, warmup_days=14, n_tasks=4)
    path = tmp_path / "planted.parquet"
    planted.states.write_parquet(path)
    stuck = sorted(planted.truth.filter(pl.col("kind") == "stuck")["task_run_id"])
    env = {**prefect_server.client_env(), "PREFECT_LOGGING_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, "-c", RUN_CHECK_FLOW, str(path), planted.end.isoformat()],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["flagged"] is True
    assert result["stuck"] == len(stuck)
    # the command checks the same file at the same time: the same findings, in the same order
    cli = CliRunner().invoke(
        main, ["--log-format", "json", "check", str(path), "--now", planted.end.isoformat()]
    )
    assert cli.exit_code == 1, cli.output
    records = [json.loads(x) for x in cli.stdout.splitlines()]
    assert [r["message"] for r in records if r["event"] == "finding"] == result["findings"]
    assert {k: records[-1][k] for k in ("anomaly", "stuck", "sla", "runs")} == {
        k: result[k] for k in ("anomaly", "stuck", "sla", "runs")
    }

    artifacts = httpx.post(
        f"{prefect_server.api_url}/artifacts/filter",
        json={"artifacts": {"key": {"any_": ["trs-analytics-check"]}}, "sort": "CREATED_DESC"},
        timeout=10,
    ).json()
    markdown = artifacts[0]["data"]
    assert artifacts[0]["type"] == "markdown"
    assert markdown.startswith("# trs-analytics check: flagged")
    for run in stuck:
        assert run in markdown

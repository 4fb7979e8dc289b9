"""The notebooks run top to bottom: on the bundled data without a server, and on a real server.

Each notebook's first cell holds its parameters (tagged ``parameters``): the server in
``PREFECT_API_URL`` or the active Prefect profile, else the bundled data.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat
import pytest
from nbclient import NotebookClient

if TYPE_CHECKING:
    from devtools.prefect_harness import PrefectServer
    from devtools.workload import GroundTruth

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_five_notebooks_are_there() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_retries_and_failures.ipynb",
        "03_durations_and_lateness.ipynb",
        "04_flow_runs_and_deployments.ipynb",
        "05_anomalies_and_slas.ipynb",
    ]


def _run(path: Path) -> Any:
    """Execute the notebook in a fresh kernel (its environment is this process's); return it."""
    notebook = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), (
        f"{path.name} is committed with outputs. Hint: clear them (jupyter nbconvert "
        "--clear-output --inplace) to keep diffs small."
    )
    # the timeout bounds a hung cell; how fast a notebook runs is not a test's business
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    errors = [
        o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert errors == []
    return notebook


def _charts(notebook: Any) -> list[Any]:
    return [
        o
        for c in notebook.cells
        for o in c.get("outputs", [])
        if "application/vnd.vegalite.v6+json" in o.get("data", {})
        or ("text/html" in o.get("data", {}) and "vegaEmbed" in o["data"]["text/html"])
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_the_bundled_data(path: Path) -> None:
    notebook = _run(path)
    parameters, load = _code(notebook)[:2]
    assert "parameters" in parameters.metadata.get("tags", [])
    assert re.match(r"from (\.\./data|the bundled)", _text(load))
    assert _charts(notebook), f"{path.name} drew no chart"


def _code(notebook: Any) -> list[Any]:
    return [c for c in notebook.cells if c.cell_type == "code"]


def _text(cell: Any) -> str:
    """What a code cell printed and displayed as plain text."""
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_the_quickstart_reads_the_server_in_prefect_api_url(
    prefect_server: PrefectServer, workload: GroundTruth, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a user does: PREFECT_API_URL=... jupyter nbconvert --execute; the window is the
    # workload's own, so the counts are its ground truth
    monkeypatch.setenv("PREFECT_API_URL", prefect_server.api_url)
    monkeypatch.setenv("TRS_SINCE", workload.started_at.isoformat())
    monkeypatch.setenv("TRS_UNTIL", (workload.finished_at).isoformat())
    notebook = _run(ROOT / "notebooks" / "01_quickstart.ipynb")
    loaded = _text(_code(notebook)[1])
    assert f"from {prefect_server.api_url}" in loaded
    # the load cell shows one row: states, task runs (Polars' plain-text table)
    numbers = [
        int(n.replace(",", "")) for n in re.findall(r"│\s*([\d,]+)\s*┆\s*([\d,]+)", loaded)[0]
    ]
    assert numbers == [workload.n_states, workload.n_task_runs]
    assert _charts(notebook)


def test_the_flow_runs_notebook_groups_runs_without_a_deployment_by_flow(
    prefect_server: PrefectServer, workload: GroundTruth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26: the workload calls most flows directly, as most users do; the notebook groups
    those runs under ``"<flow> (no deployment)"``, as the report does, not all under null."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_server.api_url)
    monkeypatch.setenv("TRS_SINCE", workload.started_at.isoformat())
    monkeypatch.setenv("TRS_UNTIL", workload.finished_at.isoformat())
    notebook = _run(ROOT / "notebooks" / "04_flow_runs_and_deployments.ipynb")
    # the run time per deployment: one row per group (below the header), its name first
    rows = _text(_code(notebook)[2]).split("╞", 1)[1]
    shown = re.findall(r"^│ ([^│┆]+?)\s+┆", rows, flags=re.MULTILINE)
    want = {
        run.deployment_name if run.deployment_id else f"{run.flow_name} (no deployment)"
        for run in workload.flow_runs.values()
    }
    assert any(run.deployment_id is None for run in workload.flow_runs.values())
    assert set(shown) == want

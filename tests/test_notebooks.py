"""The notebooks run top to bottom on the bundled data, without a server, each in under 60 s."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_the_four_notebooks_are_there() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_retries_and_failures.ipynb",
        "03_durations_and_lateness.ipynb",
        "04_flow_runs_and_deployments.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), (
        f"{path.name} is committed with outputs. Hint: clear them (jupyter nbconvert "
        "--clear-output --inplace) to keep diffs small."
    )
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=60,
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - started
    assert elapsed < 60, f"{path.name} took {elapsed:.0f} s"
    errors = [
        o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert errors == []
    charts = [
        o
        for c in notebook.cells
        for o in c.get("outputs", [])
        if "application/vnd.vegalite.v6+json" in o.get("data", {})
        or ("text/html" in o.get("data", {}) and "vegaEmbed" in o["data"]["text/html"])
    ]
    assert charts, f"{path.name} drew no chart"

"""Progress bars for fetch_states / iter_states / export_states: Jupyter, terminal, nowhere.

The fetches run the real client over the recorded Prefect server (4 task runs,
13 states). The Jupyter test runs a real kernel (nbclient) and reads what the
notebook would show.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import nbformat
import pytest
from nbclient import NotebookClient
from rich.console import Console

from tests.recorded import SINCE, UNTIL, Router
from trs_analytics._progress import Progress, progress_bar
from trs_analytics.client import PrefectClient
from trs_analytics.export import export_states
from trs_analytics.fetch import fetch_states, iter_states

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[1]
WINDOW = {"since": SINCE, "until": UNTIL, "source": "events"}


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(tmp_path / "no-profiles.toml"))


@pytest.fixture
def client() -> Iterator[PrefectClient]:
    transport = httpx.MockTransport(Router())
    with PrefectClient("http://test/api", transport=transport, sleep=lambda _: None) as c:
        yield c


def test_iter_states_reports_counts_and_requests(client: PrefectClient) -> None:
    seen: list[Progress] = []
    frames = list(iter_states(client=client, on_progress=seen.append, batch_size=5, **WINDOW))  # type: ignore[arg-type]
    assert len(seen) == len(frames) > 1
    assert (seen[-1].task_runs, seen[-1].states) == (4, 13)
    assert 0 < seen[0].requests <= seen[-1].requests
    assert [p.states for p in seen] == sorted(p.states for p in seen)


def test_nothing_is_drawn_in_a_non_interactive_run(
    client: PrefectClient, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert fetch_states(client=client, **WINDOW).height == 13  # type: ignore[arg-type]
    export_states(tmp_path / "ds", client=client, **WINDOW)  # type: ignore[arg-type]
    assert capfd.readouterr() == ("", "")


def test_a_terminal_draws_counts_and_requests(client: PrefectClient) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160)
    with progress_bar(title="fetch", console=console, interval=0) as on_progress:
        assert on_progress is not None
        list(iter_states(client=client, on_progress=on_progress, **WINDOW))  # type: ignore[arg-type]
    assert "4 task runs, 13 states" in screen.getvalue()
    assert "requests via events" in screen.getvalue()


def test_off_draws_nothing_even_on_a_terminal() -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    with progress_bar(False, console=console) as on_progress:
        assert on_progress is None


NOTEBOOK_CODE = """
import httpx
from tests.recorded import SINCE, UNTIL, Router
import trs_analytics as ta
client = ta.PrefectClient("http://test/api", transport=httpx.MockTransport(Router()))
frame = ta.fetch_states(client=client, since=SINCE, until=UNTIL, source="events")
"""


def test_a_notebook_shows_an_html_bar_and_progress_false_shows_none() -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(NOTEBOOK_CODE),
        nbformat.v4.new_code_cell(
            "quiet = ta.fetch_states(client=client, since=SINCE, until=UNTIL, progress=False)"
        ),
        nbformat.v4.new_code_cell("print(frame.height, quiet.height)"),
    ]
    runner = NotebookClient(
        notebook, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(ROOT)}}
    )
    runner.execute()
    shown = notebook.cells[0].outputs
    bars = [o["data"]["text/html"] for o in shown if "text/html" in o.get("data", {})]
    assert len(bars) == 1, shown  # one bar, updated in place
    assert "<progress" in bars[0]
    assert "done: 4 task runs, 13 states" in bars[0]
    assert notebook.cells[1].outputs == []
    assert notebook.cells[2].outputs[0]["text"] == "13 13\n"

"""``trs-analytics report`` as a user runs it: Ctrl-C, an unwritable --out, section logs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

import trs_analytics as ta
import trs_analytics.testing as tt
from trs_analytics.cli import main
from trs_analytics.report._report import SECTIONS

if TYPE_CHECKING:
    from pathlib import Path

#: The command, run as a child process the way a shell runs it.
COMMAND = [sys.executable, "-c", "from trs_analytics.cli import main; main()"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough states for the report to take well over the few seconds the test waits."""
    states = tt.generate_states(60_000, seed=8, days=10)
    return ta.write_states(states, tmp_path_factory.mktemp("ds") / "states.parquet")


def test_ctrl_c_stops_the_report_at_once(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    child = subprocess.Popen(
        [*COMMAND, "report", str(dataset), "--out", str(out), "-v"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stderr is not None
    line = child.stderr.readline()  # the first section's log: the report is computing
    assert "report: overview in" in line, line
    child.send_signal(signal.SIGINT)
    sent = time.monotonic()
    rest = child.stderr.read()
    code = child.wait(timeout=60)
    waited = time.monotonic() - sent
    assert code == 130
    assert "Error: interrupted; no report was written." in rest
    assert "Traceback" not in rest
    assert not out.exists()
    assert waited < 15, f"the report took {waited:.1f} s to stop"


def test_an_unwritable_out_fails_before_computing(dataset: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(
        main, ["report", str(dataset), "--out", str(blocker / "r.html"), "-v"]
    )
    assert result.exit_code != 0
    assert "Error: cannot write into" in result.output
    assert "report: overview" not in result.output  # nothing was computed


def test_verbose_logs_each_section_once_in_order(tmp_path: Path) -> None:
    path = ta.write_states(tt.generate_states(200, seed=4), tmp_path / "s.parquet")
    result = CliRunner().invoke(
        main, ["report", str(path), "--out", str(tmp_path / "r.html"), "-v"]
    )
    assert result.exit_code == 0, result.output
    found = [
        re.search(r"report: (.+) in [\d.]+ s \(peak RSS (\d+) MiB\)", line)
        for line in result.output.splitlines()
    ]
    logged = [(m[1], int(m[2])) for m in found if m]
    assert [name for name, _ in logged] == list(SECTIONS)
    peaks = [peak for _, peak in logged]  # the process's high-water mark: it only grows
    assert peaks == sorted(peaks)
    assert peaks[0] > 0


def test_the_report_names_cli_options_in_the_cli(tmp_path: Path) -> None:
    """Issue 26.10: hints name the option a CLI user can pass, the argument in Python."""
    small = ta.write_states(tt.generate_states(200, seed=3), tmp_path / "s.parquet")
    result = CliRunner().invoke(main, ["report", str(small), "--out", str(tmp_path / "c.html")])
    assert result.exit_code == 0, result.output
    cli = (tmp_path / "c.html").read_text(encoding="utf-8")
    python = ta.write_report(ta.scan_states(small), tmp_path / "p.html").read_text(encoding="utf-8")
    assert "Pass --ui-url to link the runs to the Prefect UI." in cli
    assert "Pass ui_url= to link the runs to the Prefect UI." in python
    assert "ui_url=" not in cli

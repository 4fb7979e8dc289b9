"""Hostile names: task and rule names cannot inject Markdown into ``check_flow``'s
artifact, nor terminal control sequences into ``check``'s text output."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import polars as pl
import pytest
from click.testing import CliRunner

from tests.clock import DISTANT
from trs_analytics.check import FINDINGS_SCHEMA, CheckResult, findings_markdown
from trs_analytics.cli import main
from trs_analytics.storage import scan_states

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.clock(DISTANT)

HOSTILE = [
    "etl | injected | cells",
    "two\nlines | fake | row",
    "![pixel](http://evil.example/track.png)",
    "[click me](javascript:alert(1))",
    "<img src=x onerror=alert(1)>",
    "see http://evil.example/phish",
    "**bold** _em_ `code` ~~gone~~ # heading",
]
ESCAPES = [
    "\x1b]0;pwned title\x07",
    "\x1b[31mred\x1b[0m",
    "fake\nINFO: all good",
    "carriage\rreturn",
    "bell\x07 and del\x7f",
    "\u009b31m C1 CSI",
]


def findings(subject: str, message: str, url: str | None) -> CheckResult:
    now = datetime(2031, 7, 15, tzinfo=UTC)
    row = dict.fromkeys(FINDINGS_SCHEMA)
    row.update(kind="sla", check="max_run_time", subject=subject, message=message, url=url, at=now)
    frame = pl.DataFrame([row], schema=FINDINGS_SCHEMA)
    return CheckResult(frame, now, 1, 1)


def table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| sla")]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_stays_plain_text_in_one_table_cell(name: str) -> None:
    text = findings_markdown(findings(name, f"task {name} ran long", None))
    rows = table_rows(text)
    assert len(rows) == 1  # no new row, no line break
    cells = re.split(r"(?<!\\)\|", rows[0])[1:-1]
    assert len(cells) == 5  # no extra cell from a '|'
    for raw in (r"\]\(", r"!\[", "<img", "`", r"\*\*", "~~", "#"):
        assert not re.search(r"(?<!\\)" + raw, rows[0]), raw  # only escaped
    assert "http://evil" not in rows[0]  # no autolink


@pytest.mark.parametrize(
    ("url", "linked"),
    [
        ("http://127.0.0.1:4200/runs/task-run/abc", True),
        ("javascript:alert(1)", False),
        ("data:text/html,<b>x</b>", False),
        ("http://127.0.0.1:4200/runs/x) ![i](http://evil/i.png", True),
    ],
)
def test_run_links_are_http_only_and_cannot_break_out(url: str, linked: bool) -> None:
    row = table_rows(findings_markdown(findings("etl", "ran long", url)))[0]
    assert ("[run](http" in row) is linked
    assert "javascript" not in row
    assert "![i]" not in row
    assert row.count("](") == (1 if linked else 0)


def hostile_dataset(tmp_path: Path, name: str) -> Path:
    frame = scan_states("data/sample_states.parquet").collect()
    path = tmp_path / "states.parquet"
    frame.with_columns(task_name=pl.lit(name)).write_parquet(path)
    return path


@pytest.mark.parametrize("name", ESCAPES)
def test_check_text_output_shows_control_characters_as_escapes(tmp_path: Path, name: str) -> None:
    rules = tmp_path / "sla.toml"
    quoted = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in name)
    rules.write_text(f'[[rule]]\nname = "{quoted}"\ntask = "*"\nmax_run_time = "1ms"\n')
    # the name as a task's (matched by task = "*" unless it holds a line break) and the rule's
    states = hostile_dataset(tmp_path, name if "\n" not in name else "etl")
    result = CliRunner().invoke(
        main, ["check", str(states), "--rules", str(rules), "--now", "2026-11-28T15:00:00Z"]
    )
    assert result.exit_code == 1, result.output  # flagged
    lines = result.stdout.splitlines()
    assert len(lines) > 1
    for line in lines:
        assert not any(not c.isprintable() for c in line), repr(line)
    assert not any(line.startswith("INFO: all good") for line in lines)

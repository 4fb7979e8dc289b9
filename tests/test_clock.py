"""The test clock itself (tests/clock.py): tests without a server run years from today."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from tests.clock import DISTANT

if TYPE_CHECKING:
    from pathlib import Path

FAR = datetime.fromisoformat(DISTANT.replace("Z", "+00:00"))


#: Under --clock-shift the whole run is moved instead, so the default and clock(None) are not
#: what these two tests check.
_UNSHIFTED = pytest.mark.skipif(
    "config.getoption('--clock-shift')", reason="the whole run's clock is shifted"
)


@_UNSHIFTED
def test_a_test_without_a_server_runs_at_the_distant_clock() -> None:
    now = datetime.now(UTC)
    assert FAR <= now < FAR + timedelta(minutes=5)  # it ticks from there
    assert abs(time.time() - now.timestamp()) < 5


@pytest.mark.clock("2026-11-28T14:00:00Z")
def test_the_marker_moves_the_clock_where_it_says() -> None:
    now = datetime.now(UTC)
    assert datetime(2026, 11, 28, 14, tzinfo=UTC) <= now < datetime(2026, 11, 28, 14, 5, tzinfo=UTC)


@_UNSHIFTED
@pytest.mark.clock(None)
def test_clock_none_keeps_the_real_clock(tmp_path: Path) -> None:
    # a file's modification time comes from the kernel's clock, which nothing moves
    (tmp_path / "f").write_text("x")
    assert abs((tmp_path / "f").stat().st_mtime - time.time()) < 60

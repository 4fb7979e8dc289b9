"""The test clock: no test may depend on the day it runs on.

A pytest plugin (loaded by the root ``conftest.py``) with two tools:

- the ``clock`` marker, ``@pytest.mark.clock("2026-11-28T14:00:00Z")``, runs a
  test (or, as ``pytestmark``, a module) with the clock moved to that instant
  (``datetime.now``, ``time.time``; it keeps ticking, and ``time.monotonic`` is
  left alone, so timeouts and backoff still work). The modules that read the
  clock (fetch planning, the CLI's windows, the check) run under
  :data:`DISTANT`, far from any real date, so that a test which only passes
  while a fixed date is recent fails at once instead of a month later;
- ``--clock-shift DAYS`` moves the clock of the whole run by that many days
  (``pytest -m "not integration" --clock-shift 365`` and ``--clock-shift -365``):
  the proof that the suite passes on any day. Servers that pytest starts are
  other processes and keep the real clock, so it is for the tests without one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import pytest
import time_machine

if TYPE_CHECKING:
    from collections.abc import Iterator

#: A clock far from today (and from every date in the recordings and the sample).
DISTANT: Final = "2031-07-15T09:30:00Z"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock-shift",
        type=float,
        default=0.0,
        metavar="DAYS",
        help="run with the clock moved this many days (e.g. 365 or -365)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "clock(when): run with the clock moved to this ISO-8601 instant (ticking)"
    )
    days = config.getoption("--clock-shift")
    if days:
        traveller = time_machine.travel(datetime.now(UTC) + timedelta(days=days), tick=True)
        traveller.start()
        config.stash[_SHIFT] = traveller


def pytest_unconfigure(config: pytest.Config) -> None:
    traveller = config.stash.get(_SHIFT, None)
    if traveller is not None:
        traveller.stop()


_SHIFT: Final = pytest.StashKey[time_machine.travel]()


@pytest.fixture(autouse=True)
def _clock(request: pytest.FixtureRequest) -> Iterator[None]:
    """Move the clock where the test's ``clock`` marker says (the closest marker wins)."""
    marker = request.node.get_closest_marker("clock")
    if marker is None:
        yield
        return
    when = datetime.fromisoformat(str(marker.args[0]).replace("Z", "+00:00"))
    with time_machine.travel(when, tick=True):
        yield

"""The test clock: no test may depend on the day it runs on.

A pytest plugin (loaded by the root ``conftest.py``):

- every test that starts no server (no ``integration`` marker), doctests
  included, runs with the clock at :data:`DISTANT`, years from any real date
  (``datetime.now``, ``time.time``; it keeps ticking, and ``time.monotonic`` is
  left alone, so timeouts and backoff still work). A test that only passes
  while a fixed date is recent therefore fails the day it is written, not a
  month later. Tests against a real server keep the real clock: the server
  stamps its states with it;
- the ``clock`` marker, ``@pytest.mark.clock("2026-11-28T14:00:00Z")``, moves a
  test (or, as ``pytestmark``, a module) to that instant instead;
  ``@pytest.mark.clock(None)`` keeps the real clock;
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


def _destination(item: pytest.Item) -> str | None:
    """Where the test's clock goes: its ``clock`` marker, else :data:`DISTANT` without a server."""
    marker = item.get_closest_marker("clock")
    if marker is not None:
        return None if marker.args[0] is None else str(marker.args[0])
    if item.get_closest_marker("integration") or item.config.getoption("--clock-shift"):
        return None  # a real server's clock, or the whole run already moved
    return DISTANT


@pytest.fixture(autouse=True)
def _clock(request: pytest.FixtureRequest) -> Iterator[None]:
    """Move the clock for the test (see the module's docstring)."""
    when = _destination(request.node)
    if when is None:
        yield
        return
    with time_machine.travel(datetime.fromisoformat(when.replace("Z", "+00:00")), tick=True):
        yield

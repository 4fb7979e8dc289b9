"""Which source ``source="auto"`` reads a window from at a moment, for tests on real servers.

Their windows end a minute after the workload, so a test that runs soon after it reads the
window's last :data:`~trs_analytics.fetch._sources.FRESH_SPAN` (or all of it) from the
per-run states, and events for the rest (issue 26.17).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from trs_analytics.fetch._sources import FRESH_SPAN

if TYPE_CHECKING:
    from devtools.workload import GroundTruth

__all__ = ["auto_sources"]


def auto_sources(workload: GroundTruth, *moments: datetime) -> set[str]:
    """The labels auto gives ``workload``'s window (±1 minute) at any of ``moments`` (a
    window inside the event retention, on a server with events).

    Examples:
        >>> from types import SimpleNamespace
        >>> t = datetime(2026, 1, 1, tzinfo=UTC)
        >>> w = SimpleNamespace(started_at=t, finished_at=t + timedelta(minutes=1))
        >>> sorted(auto_sources(w, t + timedelta(minutes=3), t + timedelta(hours=1)))  # type: ignore[arg-type]
        ['events', 'events+states']
    """
    start = workload.started_at - timedelta(minutes=1)
    end = workload.finished_at + timedelta(minutes=1)
    labels = set()
    for now in moments:
        cut = now - FRESH_SPAN
        labels.add("states" if start >= cut else "events" if end <= cut else "events+states")
    return labels


def now() -> datetime:
    """The moment, for :func:`auto_sources` before and after an export."""
    return datetime.now(UTC)

"""Which task runs (or flow runs) can have a state in a window, asked the way each server can answer.

Flow runs are listed the same way through ``/flow_runs/filter`` (``kind=FLOW_RUNS``):
every line's ``FlowRunFilter`` has ``expected_start_time`` (2.20 too), 3.x ``end_time``.

A task run has a state in ``[since, until)`` only if it lived then. The runs are
listed in a few queries, their union de-duplicated by id:

Servers with ``expected_start_time`` (Prefect 3), keyset-paged on it:

1. expected to start inside the window (this includes runs that never started);
2. expected earlier and not finished yet (a non-terminal state type);
3. expected earlier and ended at or after ``since``: the ``end_time`` filter
   (3.6.22 and later), else a walk down ``END_TIME_DESC`` that stops at the
   first run that ended before ``since``.

Prefect 2 filters task runs on ``start_time`` only (set when a run enters
Running), so, by offset:

1. runs that never started (``start_time`` is null);
2. runs started inside the window, or up to :data:`START_SLACK` after it (their
   Pending state can lie inside it);
3. runs started earlier and not finished; 4. started earlier, ended since ``since``
   (the ``END_TIME_DESC`` walk).

Every query carries the filters the server can apply itself (``body``).
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from trs_analytics._time import api_iso, parse_iso
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.fetch._pages import iter_offset_pages, iter_run_pages
from trs_analytics.schema import STATE_TYPES, TASK_RUNS, TERMINAL_TYPES

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trs_analytics.client import PrefectClient, ServerInfo
    from trs_analytics.schema import RunKind

__all__ = ["START_SLACK", "iter_candidates"]

logger = logging.getLogger("trs_analytics.fetch")

#: How long after ``until`` a Prefect 2 run may have started and still have had
#: a Pending state inside the window.
START_SLACK = timedelta(days=1)
_NON_TERMINAL = [t for t in STATE_TYPES if t not in TERMINAL_TYPES]
_ONE_US = timedelta(microseconds=1)


def _where(body: dict[str, Any], kind: RunKind = TASK_RUNS, **runs: Any) -> dict[str, Any]:
    """``body`` with more conditions on ``kind``'s runs."""
    merged = copy.deepcopy(body)
    merged.setdefault(kind.name, {}).update(runs)
    return merged


def _unfinished(body: dict[str, Any], kind: RunKind = TASK_RUNS, **runs: Any) -> dict[str, Any]:
    return _where(body, kind, state={"type": {"any_": _NON_TERMINAL}}, **runs)


def _ended_since(
    client: PrefectClient, body: dict[str, Any], since: datetime, kind: RunKind = TASK_RUNS
) -> Iterator[list[dict[str, Any]]]:
    """Runs of ``body`` that ended at or after ``since``, newest end first."""
    for page in iter_offset_pages(client, body, sort="END_TIME_DESC", kind=kind):
        ends = [parse_iso(r["end_time"]) for r in page if r.get("end_time")]
        yield [r for r in page if r.get("end_time") and parse_iso(r["end_time"]) >= since]
        if ends and min(ends) < since:
            return


def _by_expected_start(
    client: PrefectClient,
    info: ServerInfo,
    body: dict[str, Any],
    start: datetime,
    end: datetime,
    kind: RunKind,
) -> Iterator[list[dict[str, Any]]]:
    before = start - _ONE_US
    yield from iter_run_pages(client, body, after=start, before=end, kind=kind)
    yield from iter_run_pages(client, _unfinished(body, kind), before=before, kind=kind)
    if info.can_filter("end_time", kind.name):
        ended = _where(body, kind, end_time={"after_": api_iso(start)})
        yield from iter_run_pages(client, ended, before=before, kind=kind)
        return
    earlier = _where(body, kind, expected_start_time={"before_": api_iso(before)})
    yield from _ended_since(client, earlier, start, kind)


def _by_start_time(
    client: PrefectClient, body: dict[str, Any], start: datetime, end: datetime
) -> Iterator[list[dict[str, Any]]]:
    sort = "EXPECTED_START_TIME_ASC"
    before = api_iso(start - _ONE_US)
    yield from iter_offset_pages(client, _where(body, start_time={"is_null_": True}), sort=sort)
    inside = {"after_": api_iso(start), "before_": api_iso(end + START_SLACK)}
    yield from iter_offset_pages(client, _where(body, start_time=inside), sort=sort)
    unfinished = _unfinished(body, start_time={"before_": before})
    yield from iter_offset_pages(client, unfinished, sort=sort)
    yield from _ended_since(client, _where(body, start_time={"before_": before}), start)


def iter_candidates(
    client: PrefectClient,
    info: ServerInfo,
    body: dict[str, Any],
    start: datetime,
    end: datetime,
    kind: RunKind = TASK_RUNS,
) -> Iterator[list[dict[str, Any]]]:
    """Yield pages of ``kind``'s runs that can have a state in ``[start, end)``, each run once."""
    seen: set[str] = set()
    if info.can_filter("expected_start_time", kind.name):
        pages = _by_expected_start(client, info, body, start, end, kind)
    elif kind is not TASK_RUNS:
        msg = f"listing {kind.noun}s needs an expected_start_time filter, which this server lacks."
        raise ConfigurationError(msg)
    else:
        logger.info(
            "server %s filters task runs on start_time only: listing runs by start_time, "
            "plus those that never started",
            info.version or "of unknown version",
        )
        pages = _by_start_time(client, body, start, end)
    for page in pages:
        new = [r for r in page if r["id"] not in seen]
        seen.update(r["id"] for r in new)
        if new:
            yield new

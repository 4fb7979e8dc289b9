"""The check: anomalies, stuck runs and SLA breaches in one table of findings, and their events.

A use case above the metrics: :func:`run_check` runs
:func:`~trs_analytics.detect_anomalies` (run time and failure rate, its
defaults), :func:`~trs_analytics.stuck_runs` and, given rules,
:func:`~trs_analytics.sla_report`, and keeps what concerns the *recent*
period (``recent``, default the last day): anomalous run-time buckets that
overlap it, the failure rate of the recent period itself (a trailing window
that ends at ``now``, not calendar buckets, which would split the last 24
hours in two), SLA breaches that happened in it (freshness is always
measured at ``now``), and the runs stuck now. The older states are the history the
checks learn from. :func:`finding_events` turns findings into Prefect events
(``POST /api/events``, :meth:`~trs_analytics.PrefectClient.post_events`), so
that a Prefect automation can notify someone.

Each finding has a stable id (``finding_id``: kind, subject, check, and the
run, or the bucket/window/gap start, each part slugged). :func:`emit_findings`
posts a finding once, when first seen, and ``trs-analytics.<kind>.resolved``
once a later check no longer sees it. Where the state lives, and why: in a
small JSON file (the dataset folder's ``check-state.json`` by default),
written atomically after the events are posted. Not the server's own events,
read back: Prefect keeps them 7 days and persists them seconds after they are
posted, so a check run right after another, or a finding open for more than
a week, would be posted again; and Prefect 2 has no events at all. A crash
between posting and writing the file loses nothing and duplicates nothing:
each event's id is derived from the finding id, the transition (opened or
resolved) and how many times the finding was opened before (uuid5), so the
next check posts the very same events again, and the server keeps one (its
event store skips an id it already holds: ``write_events`` in
``prefect/server/events/storage/database.py``, 3.x).
**What it reads.** The checks need the recent period and the history they
learn from, not the whole dataset: :func:`check_start` gives the oldest state
time they need, and :func:`run_check` keeps only the states from then on, a
filter on ``timestamp`` that a Polars LazyFrame, a DuckDB relation and a Spark
DataFrame of a Parquet scan push down into the scan. It runs on the engine
of the frame it is given, and only the findings (and a few counts) come into
Polars. :func:`check_start` explains the window and its bounds.

:func:`check_from` is the whole use case (load from a path or a server, check, post
the events); ``trs-analytics check`` and :func:`trs_analytics.flows.check_flow` call it.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import narwhals as nw
import polars as pl

from trs_analytics._atomic import write_json_atomic
from trs_analytics._format import count_text, duration_text, markdown_cell, markdown_link
from trs_analytics._progress import logged_step
from trs_analytics._time import duration_micros, iso, parse_duration, parse_iso, parse_when
from trs_analytics.client import task_run_url
from trs_analytics.client import ui_url as ui_from_api
from trs_analytics.engines import check_engine
from trs_analytics.exceptions import ConfigurationError, StorageError
from trs_analytics.fetch import fetch_states, iter_event_pages
from trs_analytics.metrics import (
    detect_anomalies,
    kept_run_table,
    parse_rules,
    sla_report,
    stuck_runs,
    to_polars,
)
from trs_analytics.metrics._buckets import bucket_start
from trs_analytics.metrics._frames import in_group_sets, lazy, narrowed, parts_for
from trs_analytics.schema import EXPECTED_START, REQUIRED_METRIC_COLUMNS, UTC_US
from trs_analytics.storage import require_parquet, scan_states

if TYPE_CHECKING:
    from collections.abc import Sequence

    import duckdb

    from trs_analytics.client import PrefectClient
    from trs_analytics.metrics import SlaRule

__all__ = [
    "EVENTS",
    "FINDINGS_SCHEMA",
    "TRAINING",
    "CheckOutcome",
    "CheckResult",
    "Emitted",
    "check_from",
    "check_start",
    "emit_findings",
    "event_id",
    "finding_events",
    "finding_id",
    "findings_markdown",
    "hung_runs",
    "last_heartbeats",
    "load_rules",
    "read_state",
    "run_check",
    "state_path",
    "with_hung_runs",
]

logger = logging.getLogger(__name__)

#: The Prefect event name of each kind of finding.
EVENTS: Final = {
    "anomaly": "trs-analytics.anomaly.detected",
    "stuck": "trs-analytics.run.stuck",
    "sla": "trs-analytics.sla.breached",
}

#: One row per finding.
FINDINGS_SCHEMA: Final = pl.Schema(
    {
        "kind": pl.String(),  # anomaly, stuck, sla
        "check": pl.String(),  # run_time, failure_rate, RUNNING, PENDING, max_run_time, ...
        "subject": pl.String(),  # the task (anomaly, stuck) or the SLA rule
        "task_run_id": pl.String(),
        "flow_run_id": pl.String(),
        "deployment_id": pl.String(),
        "at": UTC_US,  # the bucket, the run's start, or since when it is stuck
        "message": pl.String(),
        "url": pl.String(),
        "finding_id": pl.String(),  # stable: kind.subject.check.run-or-time, slugged
    }
)

#: The namespace of the events' deterministic ids (uuid5 of finding id and transition).
EVENT_NAMESPACE: Final = uuid.UUID("6f1d3c1e-2a55-4d0b-9a53-7a1e3b8c0d25")

#: A resolved finding is forgotten this long after (longer than Prefect keeps events).
FORGET_AFTER: Final = timedelta(days=30)

#: The anomaly metrics the check runs, each with detect_anomalies' defaults.
ANOMALY_METRICS: Final = ("run_time", "failure_rate")

#: How far back the anomaly detection learns from (detect_anomalies' default,
#: passed to it explicitly so that the states read and the training agree).
TRAINING: Final = "14d"


def load_rules(path: str | Path) -> list[SlaRule]:
    """Read SLA rules from a TOML file (:func:`trs_analytics.parse_rules` gives the format).

    Raises:
        ConfigurationError: the file cannot be read, is not TOML, or holds a
            bad rule (naming the file, the rule and the key).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "sla.toml"
        ...     _ = path.write_text('[[rule]]\\ntask = "extract*"\\nfreshness = "1d"\\n')
        ...     [rule.name for rule in load_rules(path)]
        ['task=extract*']
    """
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_RULES_BYTES + 1)
    except OSError as err:
        msg = (
            f"cannot read the SLA rules {file} ({err.strerror or err}). Hint: pass the path of "
            "a TOML file of [[rule]] tables (docs/sla.md)."
        )
        raise ConfigurationError(msg) from err
    if len(data) > MAX_RULES_BYTES:
        msg = f"the SLA rules {file} are larger than {MAX_RULES_BYTES:,} bytes. Hint: {_RULES_HINT}"
        raise ConfigurationError(msg)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        msg = (
            f"the SLA rules {file} are not UTF-8 text ({err.reason} at byte {err.start}: "
            f"binary, or UTF-16?). Hint: {_RULES_HINT}"
        )
        raise ConfigurationError(msg) from err
    return parse_rules(text, source=str(file))


#: The largest rules file read: rules are a few lines each.
MAX_RULES_BYTES = 1_000_000
_RULES_HINT = "save the rules as a small UTF-8 TOML file of [[rule]] tables (docs/sla.md)."


@dataclass(frozen=True)
class CheckResult:
    """What a check found: ``findings`` (:data:`FINDINGS_SCHEMA`) and what was checked."""

    findings: pl.DataFrame
    now: datetime
    runs: int
    rules: int

    @property
    def flagged(self) -> bool:
        """Whether anything was found."""
        return not self.findings.is_empty()

    def counts(self) -> dict[str, int]:
        """Findings per kind (every kind listed).

        Examples:
            >>> CheckResult(pl.DataFrame(schema=FINDINGS_SCHEMA), datetime.now(UTC), 0, 0).counts()
            {'anomaly': 0, 'stuck': 0, 'sla': 0}
        """
        found = dict(self.findings.group_by("kind").len().iter_rows())
        return {kind: int(found.get(kind, 0)) for kind in EVENTS}

    def summary(self) -> str:
        """One line: what was checked and what was found."""
        counts = self.counts()
        runs = count_text(self.runs, "task run", grouped=False)
        if not self.flagged:
            return f"nothing flagged: {runs} checked, {count_text(self.rules, 'SLA rule')}"
        parts = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        return f"flagged {self.findings.height} ({parts}) in {runs}"


def _recent_start(now: datetime, recent: str) -> datetime:
    span = parse_duration(recent)
    if span is None or span <= timedelta(0):
        msg = f"recent={recent!r} is not a positive duration. Hint: use '1d', '6h' or '1w'."
        raise ConfigurationError(msg)
    return now - span


def check_start(now: datetime, *, recent: str = "1d", every: str = "1d") -> datetime:
    """The oldest state time the check needs at ``now``: it reads the states from then on.

    The recent period starts at ``now - recent``; the first anomaly bucket
    that can overlap it starts at that time's ``every``-wide bucket, and
    learns from the :data:`TRAINING` (14 days) before it. One more bucket
    before that is a margin: a run that began before the training keeps its
    earlier states, so it is seen beginning before the training (and stays
    out of it) instead of seeming to begin with its first state inside it.
    The other checks need no more: SLA breaches are judged on runs that
    began in the recent period, and the stuck runs and their usual times
    are read from the same states.

    What lies before this time is not seen: a run silent for longer than
    ``every`` across it is read from its states after it; a run still open
    whose latest state is older is not listed as stuck; a freshness gap
    that began before it is measured from it; the usual times of
    :func:`~trs_analytics.stuck_runs` come from the runs finished since.
    ``run_check(start=...)`` (``trs-analytics check --since``) reads from
    another time.

    Examples:
        >>> check_start(datetime(2026, 3, 20, 9, 30, tzinfo=UTC))
        datetime.datetime(2026, 3, 4, 0, 0, tzinfo=datetime.timezone.utc)
        >>> check_start(datetime(2026, 3, 20, 9, 30, tzinfo=UTC), recent="6h", every="1h")
        datetime.datetime(2026, 3, 6, 2, 0, tzinfo=datetime.timezone.utc)
    """
    first = bucket_start(_recent_start(now, recent), every)
    return first - timedelta(microseconds=duration_micros(TRAINING) + duration_micros(every))


#: The columns every check reads: the states' own, the run's name, flow and deployment
#: (stuck runs fall back to theirs; findings name them). The rest is never read.
_CHECK_COLUMNS: Final = (
    *REQUIRED_METRIC_COLUMNS,
    "flow_run_id",
    "task_name",
    "flow_name",
    "deployment_id",
)


def _columns(rules: Sequence[SlaRule]) -> tuple[str, ...]:
    """What the check reads: :data:`_CHECK_COLUMNS`, and the expected start time for lateness rules."""
    late = any(rule.max_lateness is not None for rule in rules)
    return (*_CHECK_COLUMNS, EXPECTED_START) if late else _CHECK_COLUMNS


def _window(states: Any, start: datetime | None) -> Any:
    """The states from ``start`` on (all with ``None``), lazily, on their own engine."""
    frame: Any = nw.from_native(states)
    if isinstance(frame, nw.DataFrame):
        frame = frame.lazy()
    if start is not None:
        frame = frame.filter(nw.col("timestamp") >= start)
    return frame.to_native()


def _anomalies(states: Any, now: datetime, recent: str, every: str, parts: int) -> pl.DataFrame:
    """The anomalous run-time buckets that end after ``now - recent``, and an anomalous
    failure rate over ``[now - recent, now)``; only they come into Polars.

    The failure rate's buckets are ``recent`` wide and end at ``now``
    (``origin=now``): the last one is the recent period itself, judged
    against the :data:`TRAINING` before it. Its finding id names the window
    (``last-1d``), not its start, which moves with every check: it stays open
    while the rate stays high, and is resolved once it is not.
    """
    since = _recent_start(now, recent)
    width = timedelta(microseconds=duration_micros(every))
    # only the recent buckets are judged (the older ones only train them), a set of tasks
    # at a time on Polars
    run_time = partial(
        detect_anomalies, metric="run_time", every=every, training=TRAINING, since=since
    )
    rate = partial(
        detect_anomalies,
        metric="failure_rate",
        every=recent,
        origin=now,
        training=TRAINING,
        since=since,
    )
    times = nw.from_native(in_group_sets(states, "task_name", parts, run_time)).filter(
        nw.col("anomalous") & (nw.col("bucket") > since - width)
    )
    rates = nw.from_native(in_group_sets(states, "task_name", parts, rate)).filter(
        nw.col("anomalous") & (nw.col("bucket") == since)
    )
    frames = [
        to_polars(found.to_native()).select(
            kind=pl.lit("anomaly"),
            check=pl.lit(metric),
            subject=pl.col("task_name"),
            at=pl.col("bucket"),
            message=pl.col("reason"),
        )
        for metric, found in zip(ANOMALY_METRICS, (times, rates), strict=True)
    ]
    key = f"last-{recent}"
    ids = [_joined("anomaly", s, "failure_rate", key) for s in frames[1]["subject"]]
    window = frames[1].with_columns(finding_id=pl.Series(ids, dtype=pl.String))
    return pl.concat([frames[0], window], how="diagonal")


def _stuck(states: Any, now: datetime, stuck_after: str | None, min_history: int) -> pl.DataFrame:
    # the run table is read from files again per history, not held (to_polars' read_again)
    found = to_polars(
        stuck_runs(states, now=now, limit=stuck_after, min_history=min_history), read_again=True
    )
    rows = [
        f"{r['task_name']} run {r['task_run_id']} has been {r['state']} for "
        f"{duration_text(r['age'])}, over {duration_text(r['threshold'])} ({r['reason']})"
        for r in found.iter_rows(named=True)
    ]
    return found.select(
        kind=pl.lit("stuck"),
        check=pl.col("state_type").cast(pl.String),
        subject=pl.col("task_name"),
        task_run_id=pl.col("task_run_id"),
        flow_run_id=_column(found, "flow_run_id"),
        deployment_id=_column(found, "deployment_id"),
        at=pl.col("since"),
        message=pl.Series(rows, dtype=pl.String),
    )


def _column(frame: pl.DataFrame, name: str) -> pl.Expr:
    return pl.col(name) if name in frame.columns else pl.lit(None, dtype=pl.String)


def _breaches(
    states: Any,
    rules: Sequence[SlaRule],
    now: datetime,
    since: datetime,
    every: str,
    start: datetime | None,
) -> pl.DataFrame:
    found = nw.from_native(sla_report(states, rules, every=every, now=now).breaches)
    # on the engine: the breaches since `since`, and every freshness gap (one per long gap)
    freshness = nw.col("check") == "freshness"
    breaches = to_polars(
        found.filter(freshness | (nw.col("at") >= since)).to_native(), read_again=True
    )
    gap = (pl.col("value") * 1e6).round().cast(pl.Int64)  # seconds as a float: round, not cut
    gap_end = pl.col("at") + pl.duration(microseconds=gap)
    fresh = (pl.col("check") == "freshness") & (pl.col("at").is_null() | (gap_end >= since))
    at_now = pl.col("check") == "max_running"  # measured at now, as freshness
    dated = ~pl.col("check").is_in(["freshness", "max_running"]) & (pl.col("at") >= since)
    recent = breaches.filter(fresh | at_now | dated)
    runs = _run_ids(states, recent)
    messages = [_breach_message(r, start) for r in recent.iter_rows(named=True)]
    return recent.join(runs, on="task_run_id", how="left").select(
        kind=pl.lit("sla"),
        check=pl.col("check"),
        subject=pl.col("rule"),
        task_run_id=pl.col("task_run_id"),
        flow_run_id=pl.col("flow_run_id"),
        deployment_id=pl.col("deployment_id"),
        at=pl.col("at").fill_null(pl.col("bucket")),
        message=pl.Series(messages, dtype=pl.String),
    )


def _run_ids(states: Any, breaches: pl.DataFrame) -> pl.DataFrame:
    """The flow run and deployment of each breaching run (for the events' related resources)."""
    ids = breaches["task_run_id"].drop_nulls().unique().to_list()
    empty = pl.DataFrame(
        schema={"task_run_id": pl.String, "flow_run_id": pl.String, "deployment_id": pl.String}
    )
    if not ids:
        return empty
    import narwhals as nw

    frame = nw.from_native(states)
    present = [c for c in empty.columns if c in frame.columns]
    found = to_polars(
        frame.filter(nw.col("task_run_id").is_in(ids)).select(present).unique().to_native()
    )
    missing = [pl.lit(None, dtype=pl.String).alias(c) for c in empty.columns if c not in present]
    return found.with_columns(missing).select(empty.columns).unique("task_run_id")


def _breach_message(row: dict[str, Any], start: datetime | None) -> str:
    """What broke the rule; the rule itself is the finding's subject (not repeated here)."""
    check, value, limit = row["check"], row["value"], row["limit"]
    if check == "min_success_rate":
        return f"success rate {value:.1%} below {limit:.1%} in the window from {iso(row['bucket'])}"
    if check == "freshness":
        if value is None:
            read = f" since {iso(start)} (the oldest state read)" if start is not None else ""
            return f"no run has completed{read} (freshness {duration_text(limit)})"
        return (
            f"no run completed for {duration_text(value)} after "
            f"{iso(row['at'])}, over {duration_text(limit)}"
        )
    what = {"max_run_time": "run time", "max_running": "open for"}.get(check, "lateness")
    return (
        f"{row['task_name']} run {row['task_run_id']} {what} "
        f"{duration_text(value)}, over {duration_text(limit)}"
    )


def run_check(
    states: Any,
    *,
    rules: Sequence[SlaRule] = (),
    now: datetime | None = None,
    recent: str = "1d",
    every: str = "1d",
    ui_url: str | None = None,
    stuck_after: str | None = None,
    min_history: int = 5,
    start: datetime | Literal["auto"] | None = "auto",
) -> CheckResult:
    """Check a states frame: anomalies, stuck runs and SLA breaches of the recent period.

    The checks run on the frame's engine (a Polars DataFrame or LazyFrame, a
    DuckDB relation, a Spark DataFrame); the states are never collected, only
    the findings come into Polars.

    Args:
        states: a states frame of any supported engine (its history is what
            the checks learn from).
        rules: SLA rules (:func:`load_rules`); none: no SLA check.
        now: the time the check is made at (aware); default: the current UTC time.
        recent: the period whose findings are reported (``"1d"``); its
            failure rate is tested as one trailing window ending at ``now``.
        every: the bucket width of anomalies and per-run SLA checks.
        ui_url: the Prefect UI's address, to link the runs found.
        stuck_after: a run open longer than this is stuck, whatever its
            history (:func:`~trs_analytics.stuck_runs`' ``limit``).
        min_history: finished runs a group needs before its p99 bounds its
            open runs (fewer: its deployment's or flow's runs, as
            :func:`~trs_analytics.stuck_runs` falls back).
        start: read the states from this time on: ``"auto"``, what the checks
            need (:func:`check_start`); ``None``: every state given.

    Returns:
        A :class:`CheckResult`; its ``findings`` are ordered by kind, time and subject.

    Examples:
        >>> from datetime import UTC, datetime
        >>> from trs_analytics.testing import generate_states
        >>> states = generate_states(300, seed=1, start=datetime(2026, 1, 1, tzinfo=UTC), days=1)
        >>> result = run_check(states, now=datetime(2026, 1, 2, tzinfo=UTC))
        >>> result.counts()
        {'anomaly': 0, 'stuck': 2, 'sla': 0}
    """
    at = (now or datetime.now(UTC)).astimezone(UTC)
    since = _recent_start(at, recent)
    first = check_start(at, recent=recent, every=every) if start == "auto" else start
    first = None if first is None else first.astimezone(UTC)
    states = _window(narrowed(states, _columns(rules), caller="run_check"), first)
    sets = _sets(states)
    # each run's states reduced to one row, once, and kept on the engine: every check reads it
    with ExitStack() as kept:
        with logged_step(logger, "check", "one row per task run"):
            runs = kept.enter_context(kept_run_table(states, parts=sets))
        with logged_step(logger, "check", "anomalies"):
            parts = [_anomalies(runs, at, recent, every, sets)]
        with logged_step(logger, "check", "stuck runs"):
            parts.append(_stuck(runs, at, stuck_after, min_history))
        if rules:
            with logged_step(logger, "check", "SLA breaches"):
                parts.append(_breaches(runs, rules, at, since, every, first))
        checked = to_polars(lazy(runs, caller="run_check").select(nw.len()).to_native()).item()
    empty = pl.DataFrame(schema=FINDINGS_SCHEMA)
    findings = pl.concat([empty, *(p.select(_fill(p)) for p in parts)], how="vertical")
    ids = [r["finding_id"] or finding_id(r) for r in findings.iter_rows(named=True)]
    findings = findings.with_columns(finding_id=pl.Series(ids, dtype=pl.String))
    if ui_url:
        urls = [None if r is None else task_run_url(ui_url, r) for r in findings["task_run_id"]]
        findings = findings.with_columns(url=pl.Series(urls, dtype=pl.String))
    order = {kind: i for i, kind in enumerate(EVENTS)}
    findings = findings.sort(
        pl.col("kind").replace_strict(order, return_dtype=pl.Int8), "at", "subject"
    )
    return CheckResult(findings, at, int(checked), len(rules))


#: States per set of runs on Polars: the check reads its run table in smaller sets
#: than the report (STATES_PER_PART), so that it keeps within 1 GiB.
CHECK_STATES_PER_PART: Final = 1_000_000


def _sets(states: Any) -> int:
    """The sets of runs (and of tasks, for anomalies) a Polars LazyFrame is checked in; else 1.

    A set of 2.5M states took 1,109 MiB to reduce to its runs (a 20M-state
    check), one of 1M 577 MiB in the same time: the scan is read once per
    set, and only one set's states are held.
    """
    if not isinstance(states, pl.LazyFrame):
        return 1
    return parts_for(states.select(pl.len()).collect().item(), per_part=CHECK_STATES_PER_PART)


def _fill(part: pl.DataFrame) -> list[pl.Expr]:
    return [
        (pl.col(c) if c in part.columns else pl.lit(None)).cast(dtype).alias(c)
        for c, dtype in FINDINGS_SCHEMA.items()
    ]


def _slug(text: object) -> str:
    """A resource-id part: runs of characters other than letters, digits, ``_``, ``-`` as ``-``.

    Examples:
        >>> _slug("render fast"), _slug("2026-01-01T00:00:00Z"), _slug("a.b*c")
        ('render-fast', '2026-01-01T00-00-00Z', 'a-b-c')
    """
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-") or "-"


#: The event a running flow run sends on Prefect 3.6.22+ (every 180 s by default).
HEARTBEAT: Final = "prefect.flow-run.heartbeat"


def last_heartbeats(
    client: PrefectClient, *, since: datetime, until: datetime
) -> dict[str, datetime]:
    """Each flow run's latest ``prefect.flow-run.heartbeat`` event in ``[since, until]``.

    Raises:
        NotFoundError: the server has no events (Prefect 2).
    """
    from trs_analytics.schema import FLOW_RUNS

    latest: dict[str, datetime] = {}  # flow-run events: their state changes and heartbeats
    for page in iter_event_pages(client, since=since, until=until, kind=FLOW_RUNS):
        for event in page:
            resource = str((event.get("resource") or {}).get("prefect.resource.id") or "")
            if event.get("event") != HEARTBEAT or not resource.startswith("prefect.flow-run."):
                continue
            run = resource.removeprefix("prefect.flow-run.")
            when = parse_iso(str(event["occurred"]))
            latest[run] = max(latest.get(run, when), when)
    return latest


def hung_runs(
    states: Any, heartbeats: dict[str, datetime], *, now: datetime, after: timedelta
) -> pl.DataFrame:
    """Findings for the open task runs of flow runs whose heartbeats stopped over ``after`` ago.

    A flow run that sent heartbeats and then fell silent while one of its
    task runs is still open (Running or Pending) was killed or lost: it is
    flagged as hung long before any run-time threshold, whatever the history.
    """
    silent = {run: at for run, at in heartbeats.items() if now - at > after}
    if not silent:
        return pl.DataFrame(schema=FINDINGS_SCHEMA)
    import narwhals as nw

    frame = nw.from_native(states)
    mine = frame.filter(nw.col("flow_run_id").is_in(list(silent))).to_native()
    # the open runs: any age over a microsecond, whatever the history
    tiny = timedelta(microseconds=1)
    found = to_polars(stuck_runs(mine, now=now, limit=tiny, min_history=1, fallback=None))
    found = found.filter(pl.col("reason") == "limit")
    rows = [
        {
            "kind": "stuck",
            "check": "heartbeat",
            "subject": r["task_name"],
            "task_run_id": r["task_run_id"],
            "flow_run_id": r["flow_run_id"],
            "deployment_id": r.get("deployment_id"),
            "at": silent[r["flow_run_id"]],
            "message": (
                f"{r['task_name']} run {r['task_run_id']} is {r['state']} but its flow run "
                f"{r['flow_run_id']} sent no heartbeat for "
                f"{duration_text(now - silent[r['flow_run_id']])}, over "
                f"{duration_text(after)} (hung)"
            ),
        }
        for r in found.iter_rows(named=True)
    ]
    if not rows:
        return pl.DataFrame(schema=FINDINGS_SCHEMA)
    part = pl.DataFrame(rows)
    return part.select(_fill(part))


def with_hung_runs(
    result: CheckResult, states: Any, client: PrefectClient, *, after: timedelta
) -> CheckResult:
    """``result`` and the runs :func:`hung_runs` finds from the server's heartbeats.

    Heartbeats are read from ``now - 3 x after`` to ``now``: a flow run silent
    for longer is left to the thresholds of :func:`stuck_runs`.
    """
    beats = last_heartbeats(client, since=result.now - 3 * after, until=result.now)
    hung = hung_runs(states, beats, now=result.now, after=after)
    if hung.is_empty():
        return result
    ids = [finding_id(r) for r in hung.iter_rows(named=True)]
    hung = hung.with_columns(finding_id=pl.Series(ids, dtype=pl.String))
    findings = pl.concat([result.findings, hung])
    return CheckResult(findings, result.now, result.runs, result.rules)


def finding_id(row: dict[str, Any]) -> str:
    """A finding's stable id: kind, subject, check, and the run or the time it is about.

    The same finding has the same id in every check that sees it: a stuck or
    breaching run by its run id; an anomalous bucket, a success-rate window or
    a freshness gap by when it starts (``never`` for no completion at all).
    (The failure rate of the recent period is named by the period instead,
    ``anomaly.<task>.failure_rate.last-1d``: its start moves with ``now``.)

    Examples:
        >>> from datetime import UTC, datetime
        >>> finding_id({"kind": "sla", "subject": "render fast", "check": "max_run_time",
        ...             "task_run_id": "r1", "at": datetime(2026, 1, 1, tzinfo=UTC)})
        'sla.render-fast.max_run_time.r1'
        >>> finding_id({"kind": "anomaly", "subject": "etl", "check": "failure_rate",
        ...             "task_run_id": None, "at": datetime(2026, 1, 1, tzinfo=UTC)})
        'anomaly.etl.failure_rate.2026-01-01T00-00-00Z'
    """
    key = row["task_run_id"] or (iso(row["at"]) if row["at"] else "never")
    return _joined(row["kind"], row["subject"], row["check"], key)


def _joined(*parts: object) -> str:
    """A finding id from its parts, each slugged (:func:`_slug`)."""
    return ".".join(_slug(p) for p in parts)


def _resource_id(row: dict[str, Any]) -> str:
    return f"trs-analytics.check.{row.get('finding_id') or finding_id(row)}"


def event_id(finding: str, transition: str, opened_before: int = 0) -> str:
    """The deterministic id of a finding's event: the same every time it is made again.

    ``transition`` is ``"opened"`` or ``"resolved"``; ``opened_before`` counts
    the finding's earlier openings, so a finding that comes back after its
    resolution gets new events.

    Examples:
        >>> event_id("stuck.etl.RUNNING.r1", "opened") == event_id("stuck.etl.RUNNING.r1", "opened")
        True
        >>> event_id("stuck.etl.RUNNING.r1", "opened") == event_id("stuck.etl.RUNNING.r1", "resolved")
        False
    """
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{finding}:{transition}:{opened_before}"))


def _related(row: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"prefect.resource.id": f"prefect.{kind}.{row[column]}", "prefect.resource.role": kind}
        for kind, column in (
            ("task-run", "task_run_id"),
            ("flow-run", "flow_run_id"),
            ("deployment", "deployment_id"),
        )
        if row.get(column)
    ]


def finding_events(
    findings: pl.DataFrame,
    *,
    now: datetime | None = None,
    opened_before: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Turn findings into Prefect events, for :meth:`PrefectClient.post_events`.

    Each event is named after its kind (:data:`EVENTS`); its resource is
    ``trs-analytics.check.<finding id>`` (:func:`finding_id`); its related
    resources are the task run (role ``task-run``), flow run (``flow-run``)
    and deployment (``deployment``) it concerns, when known; its payload
    holds the finding. Its id is :func:`event_id` (``opened_before``: the
    finding's earlier openings, 0 when not given).

    Examples:
        >>> from datetime import UTC, datetime
        >>> row = {"kind": "stuck", "check": "RUNNING", "subject": "etl", "task_run_id": "r1",
        ...        "flow_run_id": "f1", "at": datetime(2026, 1, 1, tzinfo=UTC), "message": "m"}
        >>> findings = pl.DataFrame([row]).select(_fill(pl.DataFrame([row])))
        >>> event = finding_events(findings, now=datetime(2026, 1, 1, 1, tzinfo=UTC))[0]
        >>> event["event"], event["resource"]["prefect.resource.id"]
        ('trs-analytics.run.stuck', 'trs-analytics.check.stuck.etl.RUNNING.r1')
        >>> [r["prefect.resource.id"] for r in event["related"]]
        ['prefect.task-run.r1', 'prefect.flow-run.f1']
    """
    occurred = iso((now or datetime.now(UTC)).astimezone(UTC), timespec="microseconds")
    events: list[dict[str, Any]] = []
    for row in findings.iter_rows(named=True):
        fid = row.get("finding_id") or finding_id(row)
        payload: dict[str, Any] = {
            k: (iso(v) if isinstance(v, datetime) else v) for k, v in row.items()
        }
        events.append(
            {
                "id": event_id(fid, "opened", (opened_before or {}).get(fid, 0)),
                "occurred": occurred,
                "event": EVENTS[row["kind"]],
                "resource": {
                    "prefect.resource.id": _resource_id(row),
                    "prefect.resource.name": str(row["subject"]),
                },
                "related": _related(row),
                "payload": {**payload, "finding_id": fid},
            }
        )
    return events


def state_path(dataset: str | Path | None, given: str | Path | None = None) -> Path:
    """Where :func:`emit_findings` remembers the open findings: ``given``, else the dataset's.

    Raises:
        ConfigurationError: neither a file given nor a dataset folder.

    Examples:
        >>> state_path(None, "check-state.json")
        PosixPath('check-state.json')
    """
    if given is not None:
        return Path(given)
    if dataset is not None and Path(dataset).is_dir():
        return Path(dataset) / "check-state.json"
    msg = (
        "emitting events needs a file to remember the open findings in. Hint: pass --state "
        "FILE (state= in check_flow), or check a dataset folder (its check-state.json is "
        "the default)."
    )
    raise ConfigurationError(msg)


def read_state(path: Path) -> dict[str, Any]:
    """Read the check's event state (:func:`emit_findings`); a missing file is an empty state.

    Raises:
        StorageError: the file cannot be read or is not the state's JSON.

    Examples:
        >>> read_state(Path("/nonexistent/check-state.json"))
        {'version': 1, 'findings': {}}
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"version": 1, "findings": {}}
    except OSError as err:
        msg = f"cannot read the check state {path} ({err.strerror or err})."
        raise StorageError(msg) from err
    try:
        state = json.loads(text)
    except json.JSONDecodeError as err:
        state = None
        problem = f"is not JSON ({err.msg}, line {err.lineno})"
    else:
        problem = "is not a check state"
    if not isinstance(state, dict) or state.get("version") != 1 or "findings" not in state:
        msg = (
            f"the check state {path} {problem}. Hint: delete it to start afresh (findings "
            "still open are then posted once more)."
        )
        raise StorageError(msg)
    return state


@dataclass(frozen=True)
class Emitted:
    """What :func:`emit_findings` posted: findings opened and resolved (their ids)."""

    opened: list[str]
    resolved: list[str]


def emit_findings(client: PrefectClient, result: CheckResult, state_path: str | Path) -> Emitted:
    """Post each new finding once, and a resolution for each finding no longer seen.

    Reads the state (``state_path``: which findings are open, and how many
    times each was opened), posts an event for each finding it does not hold
    open (:func:`finding_events`) and ``trs-analytics.<kind>.resolved`` for
    each open finding that ``result`` no longer holds, then writes the state
    atomically. Event ids are deterministic (:func:`event_id`): a crash
    after the post and before the write makes the next check post the same
    events, which the server keeps once. Resolved findings are forgotten
    :data:`FORGET_AFTER` after their resolution.

    Raises:
        StorageError: the state cannot be read or written.
        TrsAnalyticsError: the server refused the events (as :meth:`PrefectClient.post_events`).
    """
    path = Path(state_path)
    state = read_state(path)
    known: dict[str, dict[str, Any]] = state["findings"]
    now = iso(result.now, timespec="microseconds")
    seen = set(result.findings["finding_id"].to_list())
    new = result.findings.filter(
        ~pl.col("finding_id").is_in([f for f, v in known.items() if v["open"]])
    ).unique("finding_id", keep="first", maintain_order=True)
    counts = {f: int(known[f]["opened"]) if f in known else 0 for f in new["finding_id"]}
    opened = finding_events(new, now=result.now, opened_before=counts)
    gone = sorted(f for f, v in known.items() if v["open"] and f not in seen)
    resolved = [_resolved_event(f, known[f], now) for f in gone]
    if opened or resolved:
        client.post_events([*opened, *resolved])
    for event in opened:
        fid = event["payload"]["finding_id"]
        known[fid] = {
            "open": True,
            "opened": counts[fid] + 1,
            "changed": now,
            "event": event["event"],
            "resource": event["resource"],
            "related": event["related"],
        }
    for fid in gone:
        known[fid] = {**known[fid], "open": False, "changed": now}
    forget = iso(result.now - FORGET_AFTER, timespec="microseconds")
    state["findings"] = {f: v for f, v in known.items() if v["open"] or v["changed"] >= forget}
    if opened or resolved or len(state["findings"]) != len(known):
        write_json_atomic(path, state)
    return Emitted([e["payload"]["finding_id"] for e in opened], gone)


def _resolved_event(fid: str, entry: dict[str, Any], now: str) -> dict[str, Any]:
    kind = fid.split(".", 1)[0]
    return {
        "id": event_id(fid, "resolved", int(entry["opened"]) - 1),
        "occurred": now,
        "event": f"trs-analytics.{kind}.resolved",
        "resource": entry["resource"],
        "related": entry["related"],
        "payload": {
            "finding_id": fid,
            "opened_event": entry["event"],
            "opened_at": entry["changed"],
        },
    }


def findings_markdown(result: CheckResult) -> str:
    """The findings as a Markdown table (a Prefect artifact), or a line saying none.

    Every cell is plain text (:func:`~trs_analytics._format.markdown_cell`): task and
    rule names cannot make links, images or new rows; run links are http(s) only.

    Examples:
        >>> empty = CheckResult(pl.DataFrame(schema=FINDINGS_SCHEMA), datetime.now(UTC), 3, 0)
        >>> findings_markdown(empty).splitlines()[0]
        '# trs-analytics check: nothing flagged'
    """
    head = f"# trs-analytics check: {'flagged' if result.flagged else 'nothing flagged'}"
    lines = [head, "", result.summary() + f" (at {iso(result.now)}).", ""]
    if not result.flagged:
        return "\n".join(lines)
    lines += ["| kind | check | subject | at | finding |", "|---|---|---|---|---|"]
    for r in result.findings.iter_rows(named=True):
        message = markdown_cell(r["message"] or "")
        if link := markdown_link("run", r["url"]):
            message += f" ({link})"
        at = iso(r["at"]) if r["at"] else ""
        cells = [markdown_cell(r["kind"]), markdown_cell(r["check"]), markdown_cell(r["subject"])]
        lines.append(f"| {' | '.join(cells)} | {at} | {message} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class CheckOutcome:
    """What :func:`check_from` did: the check's ``result`` and the events it ``emitted``."""

    result: CheckResult
    emitted: Emitted


def check_from(
    path: str | Path | None = None,
    *,
    client: PrefectClient | None = None,
    rules: Sequence[SlaRule] = (),
    now: datetime | None = None,
    since: str | None = None,
    recent: str = "1d",
    every: str = "1d",
    ui_url: str | None = None,
    stuck_after: str | None = None,
    min_history: int = 5,
    heartbeat_after: timedelta | None = None,
    engine: str = "polars",
    connection: duckdb.DuckDBPyConnection | None = None,
    emit_events: bool = False,
    state: str | Path | None = None,
    progress: bool = False,
) -> CheckOutcome:
    """The check as ``trs-analytics check`` and the check flow make it: load, check, post.

    Loads the states (the dataset folder or Parquet file ``path``, read on
    ``engine``; without ``path``, fetched from ``client``'s server), runs
    :func:`run_check`, adds the hung runs of the server's heartbeats
    (``heartbeat_after``, :func:`with_hung_runs`) and, with ``emit_events``,
    posts the new and resolved findings (:func:`emit_findings`, its state in
    :func:`state_path`). The findings link to ``ui_url``, by default the UI of
    ``client``'s server.

    Args:
        path: a dataset folder or Parquet file; ``None``: fetch from the server.
        client: the server's client: needed without ``path``, with
            ``emit_events`` and with ``heartbeat_after``.
        rules: SLA rules (:func:`load_rules`).
        now: check as of this time (aware); default the current UTC time.
        since: the oldest state read (an age such as ``7d``, or ISO-8601).
            From a server, default ``7d``; from ``path``, default what the
            checks need (:func:`check_start`).
        recent: the period whose findings are reported.
        every: bucket width of anomalies and per-run SLA checks.
        ui_url: the Prefect UI's address the findings link to.
        stuck_after: a run open longer than this is stuck, whatever its history.
        min_history: finished runs a task needs before its p99 bounds its open runs.
        heartbeat_after: a flow run whose heartbeats stopped this long ago is hung.
        engine: where the checks on ``path`` run: ``"polars"``, ``"duckdb"`` or ``"spark"``.
        connection: the DuckDB connection ``path`` is read on (``engine="duckdb"``).
        emit_events: post each new finding, and each resolution, as a Prefect event.
        state: the file that remembers the open findings (default: the
            ``check-state.json`` of the dataset folder ``path``).
        progress: show the fetch's progress on stderr.

    Raises:
        ConfigurationError: options that cannot work together (no client where
            one is needed, ``engine`` without ``path``, no state file for events).
        StorageError: ``path`` holds no states, or cannot be read.

    Examples:
        >>> from datetime import UTC, datetime
        >>> outcome = check_from("data/sample_states.parquet", now=datetime(2026, 1, 1, tzinfo=UTC))
        >>> outcome.result.counts(), outcome.emitted
        ({'anomaly': 0, 'stuck': 0, 'sla': 0}, Emitted(opened=[], resolved=[]))
    """
    at = (now or datetime.now(UTC)).astimezone(UTC)
    needs = {
        "to fetch the states (no path given)": path is None,
        "to post events (emit_events=True)": emit_events,
        "to read heartbeats (heartbeat_after=)": heartbeat_after is not None,
    }
    why = next((reason for reason, needed in needs.items() if needed), None)
    if client is None and why is not None:
        msg = f"the check needs a client of the server {why}. Hint: pass client=PrefectClient(...)."
        raise ConfigurationError(msg)
    remember = state_path(path, state) if emit_events else None
    start: datetime | Literal["auto"] | None = None  # fetched: every state fetched
    if path is not None:
        require_parquet(path, to="check")
        engine = check_engine(engine)
        states: Any = scan_states(path, engine, connection=connection)
        start = parse_when(since, now=at) if since is not None else "auto"
    else:
        if engine != "polars" or connection is not None:
            msg = "engine= and connection= are for a path. Hint: pass path=, or drop them."
            raise ConfigurationError(msg)
        assert client is not None
        states = fetch_states(client=client, since=since or "7d", until=at, progress=progress)
    if ui_url is None and client is not None:
        ui_url = ui_from_api(client.settings.api_url)
    result = run_check(
        states,
        rules=rules,
        now=at,
        recent=recent,
        every=every,
        ui_url=ui_url,
        stuck_after=stuck_after,
        min_history=min_history,
        start=start,
    )
    if heartbeat_after is not None:
        assert client is not None
        result = with_hung_runs(result, states, client, after=heartbeat_after)
    emitted = Emitted([], [])
    if remember is not None:
        assert client is not None
        emitted = emit_findings(client, result, remember)
    return CheckOutcome(result, emitted)

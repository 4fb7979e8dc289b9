"""Every public metric, as a table of calls the cross-engine tests run on each engine.

A case is ``(id, call, ordered)``: ``call(states)`` returns the metric on any
engine's frame; ``ordered`` says the metric documents its row order (then the
order is compared too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import narwhals as nw
import pytest

import trs_analytics as ta
from trs_analytics.schema import run_id_column

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[Any], Any]
    ordered: bool = False


#: The "now" the stuck-run cases measure ages at: after the sample and the generated histories.
NOW = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


def opened(states: Any) -> Any:
    """Leave some runs open, on the engine they live in: runs whose id ends in 0 or 1 lose
    their terminal states (stuck RUNNING), runs ending in 2 their RUNNING ones too (PENDING)."""
    frame = nw.from_native(states)
    run = nw.col(run_id_column(frame.collect_schema().names()))
    kind = nw.col("type").cast(nw.String())
    ends = run.str.ends_with("0") | run.str.ends_with("1")
    terminal = kind.is_in(["COMPLETED", "FAILED", "CANCELLED", "CRASHED"])
    pending = run.str.ends_with("2") & (terminal | (kind == "RUNNING"))
    return frame.filter(~((ends & terminal) | pending)).to_native()


#: SLA rules with every check and selector kind (the sample has lookup_region in flow reports).
RULES = ta.parse_rules(
    """
[[rule]]
name = "every task"
task = "*"
max_run_time = "1s"
max_lateness = "1s"
freshness = "5s"

[[rule]]
task = "lookup_*"
flow = "re?orts"
min_success_rate = 0.99
window = "1m"
"""
)

#: Limits on runs still open at NOW (max_run_time counts them once over it).
OPEN_RULES = ta.parse_rules(
    """
[[rule]]
name = "open runs"
task = "*"
max_run_time = "2m"
max_running = "1m"
"""
)


def cases(*, window: str, min_runs: int) -> list[Any]:
    """The metric calls; ``window``/``min_runs`` size compare_windows to the data."""
    table = [
        Case("retry_counts", ta.retry_counts, ordered=True),
        Case("retry_distribution", ta.retry_distribution, ordered=True),
        Case("retry_distribution-by-none", lambda s: ta.retry_distribution(s, by=None), True),
        Case("failure_rates", ta.failure_rates, ordered=True),
        Case("failure_rates-by-flow", lambda s: ta.failure_rates(s, by="flow_name"), True),
        Case("failure_rates-by-tags", lambda s: ta.failure_rates(s, by="tags"), True),
        Case(
            "failure_rates-every",
            lambda s: ta.failure_rates(s, by=None, every=window),
            ordered=True,
        ),
        Case(
            "durations-pending-running", lambda s: ta.durations(s, start="PENDING", end="RUNNING")
        ),
        Case(
            "durations-every-step",
            lambda s: ta.durations(s, start="*", end="*", occurrence="every"),
        ),
        Case(
            "durations-last-running-terminal",
            lambda s: ta.durations(s, start="RUNNING", end="TERMINAL", occurrence="last"),
        ),
        Case("queue_wait", ta.queue_wait),
        Case("end_to_end", ta.end_to_end),
        Case("retry_wait", ta.retry_wait),
        Case("time_in_state", ta.time_in_state),
        Case("time_in_state-name", lambda s: ta.time_in_state(s, level="name")),
        Case("run_time", ta.run_time),
        Case("lateness", ta.lateness),
        Case("summarize-run_time", lambda s: ta.summarize(ta.run_time(s), by="task_name")),
        Case("summarize-end_to_end", lambda s: ta.summarize(ta.end_to_end(s))),
        Case("in_seconds", lambda s: ta.in_seconds(ta.summarize(ta.run_time(s), by="task_name"))),
        Case(
            "compare_windows",
            lambda s: ta.compare_windows(s, window=window, min_runs=min_runs),
        ),
        Case(
            "regressions",
            lambda s: ta.regressions(s, window=window, min_runs=min_runs, metric="end_to_end"),
        ),
        Case("state_intervals", ta.state_intervals, ordered=True),
        Case("transitions", ta.transitions),
        Case("transitions-name", lambda s: ta.transitions(s, level="name")),
        Case("run_outcomes", ta.run_outcomes),
        Case("outcome_counts", lambda s: ta.outcome_counts(s, by="flow_name")),
        Case("run_volume", lambda s: ta.run_volume(s, every=window)),
        Case("error_messages", ta.error_messages),
        Case("duration_trend", lambda s: ta.duration_trend(s, every=window)),
        Case("landing_time", ta.landing_time, ordered=True),
        Case("currently_failing", lambda s: ta.currently_failing(s, by="flow_name"), True),
        Case("time_to_resolution", lambda s: ta.time_to_resolution(s, by="task_name"), True),
        Case("cache_hits", ta.cache_hits, ordered=True),
        Case("concurrency-by-tags", lambda s: ta.concurrency(s, by="tags"), ordered=True),
        Case("peak_concurrency", lambda s: ta.peak_concurrency(s, every=window), ordered=True),
        Case("slot_waits", ta.slot_waits, ordered=True),
        Case("critical_path", ta.critical_path, ordered=True),
        Case("flow_time_shares", ta.flow_time_shares, ordered=True),
        Case(
            "sla_report-compliance",
            lambda s: ta.sla_report(s, RULES, every=window, now=NOW).compliance,
            ordered=True,
        ),
        Case(
            "sla_report-breaches",
            lambda s: ta.sla_report(s, RULES, every=window, now=NOW).breaches,
            ordered=True,
        ),
        Case(
            "sla_report-open-runs",
            lambda s: ta.sla_report(opened(s), OPEN_RULES, every=window, now=NOW).breaches,
            ordered=True,
        ),
        Case(
            "stuck_runs-limit-by-tags",
            lambda s: ta.stuck_runs(opened(s), now=NOW, by="tags", limit="10m"),
            ordered=True,
        ),
        Case(
            # more history than most tasks have: the flow's and deployment's, then the default
            "stuck_runs-fallback-default",
            lambda s: ta.stuck_runs(opened(s), now=NOW, min_history=150, default="1h"),
            ordered=True,
        ),
    ]
    return [pytest.param(case, id=case.id) for case in table]

"""stuck_runs: hand-worked tables, and every planted stuck run found (none on a clean history)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.testing as tt
from tests.builders import at, runs

#: Five finished runs of "etl" (run time 2 s, queue wait 1 s) and three open ones.
HISTORY = {
    **{
        f"done{i}": f"Pending@{i * 10} Running@{i * 10 + 1} Completed@{i * 10 + 3}"
        for i in range(5)
    },
    "running": "Pending@100 Running@101",
    "retrying": "Pending@100 Running@101 AwaitingRetry@102 Retrying@103",
    "pending": "Pending@104",
}


@pytest.mark.parametrize(
    ("now", "options", "expected"),
    [
        # ages at 110 s: running 9 s, retrying 7 s (over 3 x 2 s), pending 6 s (over 3 x 1 s)
        (110, {}, [("running", "Running", 9, 6, "k x p99"), ("retrying", "Retrying", 7, 6, "k x p99"), ("pending", "Pending", 6, 3, "k x p99")]),
        # at 106 s: running 5 s and retrying 3 s are under 6 s; pending 2 s under 3 s
        (106, {}, []),
        # a limit of 8 s is tighter than nothing but looser than 3 x p99: the bound stays 6 s
        (110, {"limit": "8s", "k": 10.0}, [("running", "Running", 9, 8, "limit")]),
        # too little history: only the limit applies
        (110, {"min_history": 6, "limit": "6500ms"}, [("running", "Running", 9, 6.5, "limit"), ("retrying", "Retrying", 7, 6.5, "limit")]),
    ],
)  # fmt: skip
def test_hand_worked(
    now: float, options: dict[str, object], expected: list[tuple[object, ...]]
) -> None:
    found = ta.stuck_runs(runs(HISTORY), now=at(now), **options)  # type: ignore[arg-type]
    rows = [
        (r["task_run_id"], r["state"], r["age"].total_seconds(), r["threshold"].total_seconds(), r["reason"])
        for r in found.iter_rows(named=True)
    ]  # fmt: skip
    assert rows == expected


def test_groups_learn_from_their_own_history() -> None:
    names = {"running": "other"}  # the open run's group has no finished run: no bound of its own
    found = ta.stuck_runs(runs(HISTORY, task_names=names), now=at(110), fallback=None)
    assert "running" not in found["task_run_id"].to_list()
    assert ta.stuck_runs(runs(HISTORY, task_names=names), now=at(110), by=None).height == 3


def _bound(found: pl.DataFrame, run: str) -> tuple[object, ...]:
    row = found.filter(pl.col("task_run_id") == run).row(0, named=True)
    return (row["threshold"].total_seconds(), row["basis"], row["history"], row["reason"])


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # "other" has no finished run: its flow's five (run time 2 s) give 3 x 2 s
        ({}, (6.0, "flow_name", 5, "k x p99 of flow_name")),
        # the flow's five are too few as well: the explicit default bounds it
        ({"min_history": 6, "default": "8s"}, (8.0, None, 0, "default")),
        # a limit tighter than the fallback's bound wins
        ({"limit": "7s", "k": 10.0}, (7.0, "flow_name", 5, "limit")),
    ],
)  # fmt: skip
def test_little_history_falls_back_to_the_flow_then_the_default(
    options: dict[str, object], expected: tuple[object, ...]
) -> None:
    names = {"running": "other"}
    found = ta.stuck_runs(runs(HISTORY, task_names=names), now=at(110), **options)  # type: ignore[arg-type]
    assert _bound(found, "running") == expected


def test_the_deployment_comes_before_the_flow() -> None:
    # the flow's first five finished runs take 2 s; the deployment "d"'s five take 1 s
    quick = {f"q{i}": f"Running@{200 + i * 10} Completed@{201 + i * 10}" for i in range(5)}
    frame = runs({**HISTORY, **quick, "open": "Running@300"}, task_names={"open": "new"})
    deployed = pl.col("task_run_id").is_in([*quick, "open"])
    frame = frame.with_columns(deployment_id=pl.when(deployed).then(pl.lit("d")))
    found = ta.stuck_runs(frame, now=at(304))
    assert _bound(found, "open") == (3.0, "deployment_id", 5, "k x p99 of deployment_id")
    # with the flow as the only fallback, the flow's ten (p99 of five 2 s and five 1 s: 2 s) bound it
    assert "open" not in ta.stuck_runs(frame, now=at(304), fallback="flow_name")["task_run_id"]
    assert _bound(ta.stuck_runs(frame, now=at(307), fallback="flow_name"), "open") == (
        6.0,
        "flow_name",
        10,
        "k x p99 of flow_name",
    )


def test_a_naive_now_or_a_bad_k_is_refused() -> None:
    from datetime import datetime

    with pytest.raises(ta.ConfigurationError, match="naive"):
        ta.stuck_runs(runs(HISTORY), now=datetime(2026, 1, 1))
    with pytest.raises(ta.ConfigurationError, match="k > 0"):
        ta.stuck_runs(runs(HISTORY), now=at(0), k=0)


def test_every_planted_stuck_run_is_found_and_nothing_on_a_clean_history() -> None:
    planted = tt.generate_planted(seed=3)
    truth = planted.truth.filter(pl.col("kind") == "stuck")
    found = ta.stuck_runs(planted.states, now=planted.end)
    assert truth.height > 0
    assert sorted(found["task_run_id"]) == sorted(truth["task_run_id"])
    ages = dict(zip(found["task_run_id"], found["age"], strict=True))
    for run, size in truth.select("task_run_id", "size").iter_rows():
        assert abs(ages[run] - timedelta(seconds=size)) < timedelta(milliseconds=1)
    clean = tt.generate_planted(
        seed=3, spikes=0, failure_jumps=0, stuck=0, slow_runs=0, late_runs=0, gaps=0
    )
    assert ta.stuck_runs(clean.states, now=clean.end).is_empty()


def test_the_threshold_is_k_times_the_p99_of_the_finished_runs() -> None:
    # 100 finished runs of 1..100 s. The p99 by linear interpolation (NumPy's default):
    # position 0.99 x (100 - 1) = 98.01 between the sorted 99th (99 s) and 100th (100 s)
    # values, so 99 + 0.01 x (100 - 99) = 99.01 s; the threshold is 3 x 99.01 = 297.03 s.
    finished = {f"done{s}": f"Running@{200 * s} Completed@{200 * s + s}" for s in range(1, 101)}
    open_run = "Running@30000"  # entered Running at T0 + 30000 s, still there
    states = runs({**finished, "open": open_run})
    usual, threshold = timedelta(seconds=99.01), timedelta(seconds=297.03)
    us = timedelta(microseconds=1)
    assert ta.stuck_runs(states, now=at(30000) + threshold - us).is_empty()
    found = ta.stuck_runs(states, now=at(30000) + threshold + us)
    assert found.select("task_run_id", "age", "usual", "threshold", "history", "reason").rows() == [
        ("open", threshold + us, usual, threshold, 100, "k x p99")
    ]

"""SLA rules: parsing errors, hand-worked tables for each check, planted breaches found."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.testing as tt
from tests.builders import at, runs

RUNS = {
    "a": "Pending@0 Running@10 Completed@40",  # run 30 s, late 10 s
    "b": "Pending@0 Running@100 Failed@110",  # run 10 s, late 100 s
    "c": "Pending@3600 Running@3601 Completed@3700",  # next hour: run 99 s, late 1 s
    "d": "Pending@3600 Running@3602",  # open: no run time yet
}
NAMES = {"a": "extract", "b": "extract", "c": "extract", "d": "load"}
EXPECTED = {"c": 3600.0, "d": 3600.0}


def rows(frame: pl.DataFrame, *columns: str) -> list[tuple[object, ...]]:
    return frame.select(columns).rows()


def report(text: str, now: float = 7200) -> ta.SlaReport[pl.DataFrame]:
    data = runs(RUNS, task_names=NAMES, expected=EXPECTED)
    return ta.sla_report(data, ta.parse_rules(text), every="1h", now=at(now))


def test_max_run_time_per_bucket() -> None:
    got = report('[[rule]]\nname = "r"\ntask = "ex*"\nmax_run_time = "20s"')
    assert rows(got.compliance, "bucket", "runs", "breaches", "compliance", "value", "ok") == [
        (at(0), 2, 1, 0.5, 30.0, False),
        (at(3600), 1, 1, 0.0, 99.0, False),
    ]
    assert rows(got.breaches, "task_run_id", "value", "limit") == [
        ("a", 30.0, 20.0),
        ("c", 99.0, 20.0),
    ]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # at 3700 s "d" has run 98 s (from 3602): under 1 h, not counted yet
        (3700, []),
        # at 7300 s it has run 3698 s, over 1 h: a breach while still running
        (7300, [("d", 3698.0)]),
    ],
)
def test_max_run_time_counts_a_run_still_running_once_over(
    now: float, expected: list[tuple[str, float]]
) -> None:
    got = report('[[rule]]\nname = "r"\ntask = "load"\nmax_run_time = "1h"', now=now)
    assert rows(got.breaches, "task_run_id", "value") == expected
    assert rows(got.compliance, "runs", "breaches") == ([(1, 1)] if expected else [])


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (3602 + 600, []),  # Running for exactly 10 min: not over
        (3602 + 601, [("d", 601.0, 600.0)]),
    ],
)
def test_max_running_limits_an_open_run_at_now(
    now: float, expected: list[tuple[str, float, float]]
) -> None:
    # "a", "b" and "c" finished: only the open "d" can breach max_running
    got = report('[[rule]]\nname = "r"\ntask = "*"\nmax_running = "10m"', now=now)
    assert rows(got.breaches, "task_run_id", "value", "limit") == expected
    assert rows(got.compliance, "bucket", "breaches") == ([(at(3600), 1)] if expected else [])


def test_max_lateness() -> None:
    got = report('[[rule]]\nname = "r"\ntask = "*"\nmax_lateness = "1m"')
    assert rows(got.compliance, "runs", "breaches", "ok") == [(2, 1, False), (2, 0, True)]
    assert rows(got.breaches, "task_run_id", "value") == [("b", 100.0)]


def test_min_success_rate_per_window() -> None:
    got = report('[[rule]]\nname = "r"\ntask = "extract"\nmin_success_rate = 0.9\nwindow = "1h"')
    assert rows(got.compliance, "bucket", "runs", "breaches", "value", "ok") == [
        (at(0), 2, 1, 0.5, False),
        (at(3600), 1, 0, 1.0, True),
    ]
    assert rows(got.breaches, "task_run_id", "at", "value", "limit") == [(None, at(0), 0.5, 0.9)]


def test_freshness_now_and_past_gaps() -> None:
    got = report('[[rule]]\nname = "r"\ntask = "extract"\nfreshness = "50m"', now=3700 + 1800)
    assert rows(got.compliance, "runs", "value", "ok") == [(2, 1800.0, True)]
    # a gap of 3660 s between the completions at 40 s and 3700 s
    assert rows(got.breaches, "at", "value") == [(at(40), 3660.0)]
    never = report('[[rule]]\nname = "r"\ntask = "load"\nfreshness = "1h"')
    assert rows(never.breaches, "at", "value") == [(None, None)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]]\nmax_run_time = '1m'", r"sla\.toml: rule 1: selects nothing\. Hint"),
        ("[[rule]]\ntask = 'x'", r"rule 1: sets no check\. Hint"),
        ("[[rule]]\nname = 'n'\ntask = 'x'\nmax_run_time = 60", r"rule 1 \('n'\): max_run_time = 60 is not a duration"),
        ("[[rule]]\ntask = 'x'\nfreshness = '1d'\ncolour = 'red'", r"unknown key 'colour'"),
        ("[[rule]]\ntask = 'x'\nmin_success_rate = 95", r"min_success_rate = 95 is not a rate"),
        ("[[rule]]\ntask = 'x'\nfreshness = '1d'\nwindow = '7d'", r"window is set without min_success_rate"),
        ("[[rule]]\ntask = 'x'\nfreshness = '1d'\n[[rule]]\ntask = 'x'\nfreshness = '2d'", r"two rules are named 'task=x'"),
        ("[rule]\ntask = 'x'", r"no \[\[rule\]\] table"),
        ("rule = [", r"sla\.toml is not valid TOML"),
    ],
)  # fmt: skip
def test_bad_rules_name_the_file_rule_and_key(text: str, message: str) -> None:
    with pytest.raises(ta.ConfigurationError, match=message) as caught:
        ta.parse_rules(text, source="sla.toml")
    assert "Hint:" in str(caught.value)


def test_every_planted_breach_is_found_and_none_on_a_clean_history() -> None:
    planted = tt.generate_planted(seed=5)
    truth = planted.truth
    tasks = dict(planted.tasks.select("task_name", "median_run_time").iter_rows())
    slow, late, gap = (truth.filter(pl.col("kind") == k) for k in ("slow_run", "late_run", "gap"))
    lines = []
    for task in {*slow["task_name"], *late["task_name"], *gap["task_name"]}:
        lines += ["[[rule]]", f'task = "{task}"', f'max_run_time = "{10 * tasks[task]:.3f}s"']
        lines += ['max_lateness = "15m"', 'freshness = "12h"']
    rules = ta.parse_rules("\n".join(lines))
    found = ta.sla_report(planted.states, rules, now=planted.end).breaches
    by_check = {c: found.filter(pl.col("check") == c) for c in ("max_run_time", "max_lateness")}
    assert set(slow["task_run_id"]) <= set(by_check["max_run_time"]["task_run_id"])
    assert set(late["task_run_id"]) == set(by_check["max_lateness"]["task_run_id"])
    gaps = found.filter((pl.col("check") == "freshness") & pl.col("value").is_not_null())
    for task, day in gap.select("task_name", "bucket").iter_rows():
        mine = gaps.filter(pl.col("rule") == f"task={task}")
        assert mine.filter((pl.col("at") < day) & (pl.col("value") > 86_400)).height == 1
    # the slow runs are the only breaches outside the planted duration-spike days
    spikes = truth.filter(pl.col("kind") == "duration_spike").select("task_name", "bucket")
    other = by_check["max_run_time"].join(spikes, on=["task_name", "bucket"], how="anti")
    assert set(other["task_run_id"]) == set(slow["task_run_id"])

    clean = tt.generate_planted(
        seed=5, spikes=0, failure_jumps=0, stuck=0, slow_runs=0, late_runs=0, gaps=0
    )
    assert ta.sla_report(clean.states, rules, now=clean.end).breaches.is_empty()
    assert timedelta(0) < rules[0].freshness  # type: ignore[operator]

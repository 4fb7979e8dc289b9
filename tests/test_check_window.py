"""What the check reads: the states from ``check_start`` on, and the runs across that time.

The check at ``NOW`` (recent 1d, every 1d) reports the buckets from 03-19 on,
which learn from the 14 days before: from 03-05 (``TRAINING_START``). It reads
one bucket more, from 03-04 (``READ_FROM``), so that a run which began before
the training is seen beginning there, not at its first state inside it.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import polars as pl

import trs_analytics as ta
from tests.builders import history, states
from trs_analytics.check import check_start, run_check

NOW = datetime(2026, 3, 20, 9, 30, tzinfo=UTC)
READ_FROM = datetime(2026, 3, 4, tzinfo=UTC)
TRAINING_START = READ_FROM + timedelta(days=1)
HOUR = timedelta(hours=1)


@functools.cache
def _regular() -> list[pl.DataFrame]:
    """``etl`` every hour from the training's start: 1 s pending, 60 s running, completed."""
    hours = int((NOW - TRAINING_START) / HOUR)
    return [
        history(
            [
                ("Pending", t),
                ("Running", t + timedelta(seconds=1)),
                ("Completed", t + timedelta(seconds=61)),
            ],
            task_run_id=f"regular-{i}",
            task_name="etl",
        )
        for i in range(hours)
        if (t := TRAINING_START + i * HOUR)
    ]


def _across_the_training_start(n: int) -> list[pl.DataFrame]:
    """``etl`` runs begun an hour before the training, retried, done an hour into it (600 s)."""
    start = TRAINING_START - HOUR
    return [
        history(
            [
                ("Running", start),
                ("AwaitingRetry", start + HOUR / 2),
                ("Retrying", TRAINING_START + HOUR),
                ("Completed", TRAINING_START + HOUR + timedelta(seconds=600)),
            ],
            task_run_id=f"across-{i}",
            task_name="etl",
        )
        for i in range(n)
    ]


@functools.cache
def _frame() -> pl.DataFrame:
    return states(
        *_regular(),
        *_across_the_training_start(400),
        # pending since before the states read, running for 5 h now: stuck
        history(
            [("Pending", READ_FROM - timedelta(days=2)), ("Running", NOW - 5 * HOUR)],
            task_run_id="open",
            task_name="etl",
        ),
        # running since before the states read: not seen
        history([("Running", READ_FROM - HOUR)], task_run_id="ancient", task_name="etl"),
    )


def test_check_start_is_the_training_of_the_first_recent_bucket_and_one_bucket() -> None:
    assert check_start(NOW) == READ_FROM
    assert check_start(NOW, recent="1d", every="1d") == TRAINING_START - timedelta(days=1)


def test_a_run_begun_before_the_training_stays_out_of_it() -> None:
    frame = _frame()
    read = run_check(frame, now=NOW)
    whole = run_check(frame, now=NOW, start=None)
    # the same findings as from every state, but for the run whose states all lie before
    assert read.findings.equals(whole.findings.filter(pl.col("task_run_id") != "ancient"))
    assert whole.findings.filter(kind="stuck")["task_run_id"].sort().to_list() == [
        "ancient",
        "open",
    ]
    stuck = read.findings.select("kind", "task_run_id", "at").rows()
    assert stuck == [("stuck", "open", NOW - 5 * HOUR)]  # its state since 4:30, read whole
    assert (read.runs, whole.runs) == (len(_regular()) + 400 + 1, len(_regular()) + 400 + 2)


def test_cut_at_the_training_start_the_runs_across_it_would_be_misread() -> None:
    """Without the margin, the 400 runs seem to begin in the training, with 600 s runs."""
    cut = run_check(_frame(), now=NOW, start=TRAINING_START)
    anomalies = cut.findings.filter(kind="anomaly").select("check", "subject", "at").rows()
    assert anomalies == [("run_time", "etl", datetime(2026, 3, 19, tzinfo=UTC))]


def test_a_freshness_gap_from_before_the_states_read_says_so() -> None:
    done = READ_FROM - timedelta(days=3)
    frame = states(
        *_regular(),
        history(
            [("Running", done), ("Completed", done + timedelta(seconds=10))],
            task_run_id="rare-1",
            task_name="rare",
        ),
    )
    rules = ta.parse_rules('[[rule]]\nname = "rare"\ntask = "rare"\nfreshness = "1d"')
    read = run_check(frame, rules=rules, now=NOW).findings.filter(kind="sla")
    assert read["message"].to_list() == [
        "no run has completed since 2026-03-04T00:00:00Z (the oldest state read) "
        "(freshness 1 d 0 h)"
    ]
    whole = run_check(frame, rules=rules, now=NOW, start=None).findings.filter(kind="sla")
    assert whole["at"].to_list() == [done + timedelta(seconds=10)]

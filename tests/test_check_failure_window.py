"""The check tests the failure rate of the recent period itself: a trailing window ending at now.

The case of issue 25: a task that failed 9 of 336 runs (2.7%) over two weeks
fails 7 of its 33 runs of the last 24 hours (21%), 5 of them on one calendar
day and 2 on the next. Calendar days split those 24 hours in two; the check
judges them whole, against the 14 days before them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl
import pytest
from click.testing import CliRunner

from tests.builders import history, states
from tests.chance import upper
from trs_analytics.check import check_start, run_check
from trs_analytics.cli import main

if TYPE_CHECKING:
    from pathlib import Path

NOW = datetime(2031, 7, 15, 9, 30, tzinfo=UTC)
SINCE = NOW - timedelta(days=1)


def _run(i: int, start: datetime, *, failed: bool) -> pl.DataFrame:
    end = "Failed" if failed else "Completed"
    spec = [("Pending", start), ("Running", start), (end, start + timedelta(seconds=2))]
    return history(spec, task_run_id=f"r{i:03}", task_name="flaky")


def _flaky() -> pl.DataFrame:
    """336 hourly runs, 9 failed, in the two weeks before SINCE; 33 runs, 7 failed, after it."""
    first = SINCE - timedelta(days=14) + timedelta(minutes=15)
    training = [first + timedelta(hours=h) for h in range(336)]
    day_one = [datetime(2031, 7, 14, 10, tzinfo=UTC) + timedelta(minutes=35 * i) for i in range(24)]
    day_two = [datetime(2031, 7, 15, 0, 10, tzinfo=UTC) + timedelta(hours=i) for i in range(9)]
    failed = {20 + 37 * i for i in range(9)}  # 9 of the training runs, none in its first day
    failed |= {336 + 3, 336 + 7, 336 + 11, 336 + 15, 336 + 19}  # 5 of the 24 on July 14
    failed |= {360, 361}  # 2 of the 9 on July 15, both before 03:30
    starts = training + day_one + day_two
    return states(*(_run(i, s, failed=i in failed) for i, s in enumerate(starts)))


@pytest.fixture(scope="module")
def flaky() -> pl.DataFrame:
    frame = _flaky()
    assert frame["task_run_id"].n_unique() == 369
    assert check_start(NOW) <= SINCE - timedelta(days=14)  # the check reads all the training
    return frame


def test_seven_of_the_last_33_runs_failed_against_9_of_336_is_flagged(flaky: pl.DataFrame) -> None:
    result = run_check(flaky, now=NOW, recent="1d")
    assert result.counts() == {"anomaly": 1, "stuck": 0, "sla": 0}
    finding = result.findings.row(0, named=True)
    chance = upper(7, 33, 9, 336)  # 0.000121, under the level 0.00135 of z = 3
    assert chance < 0.00135
    assert (finding["check"], finding["subject"], finding["at"]) == ("failure_rate", "flaky", SINCE)
    assert finding["message"] == (
        "failure rate 21.2% (7 of 33 runs) against 2.7% expected; "
        f"as many failures by chance: 1 in {round(1 / chance)}"
    )
    assert finding["finding_id"] == "anomaly.flaky.failure_rate.last-1d"


def test_the_window_keeps_its_finding_id_while_it_moves_and_clears_once_the_jump_leaves(
    flaky: pl.DataFrame,
) -> None:
    ids = []
    for hours in (0, 1, 2):  # the window still holds the 5 + 2 failures (from 11:45 on July 14)
        found = run_check(flaky, now=NOW + timedelta(hours=hours)).findings
        ids.append(found.filter(pl.col("check") == "failure_rate")["finding_id"].to_list())
    assert ids == [["anomaly.flaky.failure_rate.last-1d"]] * 3
    # a day later the window holds only the last 9 runs: 2 failed, 22%, but 9 runs is little
    later = run_check(flaky, now=NOW + timedelta(days=1), recent="1d").findings
    assert later.filter(pl.col("check") == "failure_rate").is_empty()


def test_cli_recent_sets_the_window_whose_failure_rate_is_tested(
    flaky: pl.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "flaky.parquet"
    flaky.write_parquet(path)
    now = ["--now", "2031-07-15T09:30:00Z"]
    day = CliRunner().invoke(main, ["check", str(path), *now, "--recent", "1d"])
    assert day.exit_code == 1, day.output
    line = day.stdout.splitlines()[0]
    assert line.startswith("anomaly  failure_rate     flaky: failure rate 21.2% (7 of 33 runs)")
    # the last 6 hours: 5 runs, none failed (the July 15 failures were at 00:10 and 01:10)
    six = CliRunner().invoke(main, ["check", str(path), *now, "--recent", "6h"])
    assert six.exit_code == 0, six.output
    assert six.stdout.startswith("nothing flagged:")

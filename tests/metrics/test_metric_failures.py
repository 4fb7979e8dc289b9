"""Failure rates per group and time bucket, with Wilson intervals."""

from __future__ import annotations

import math
from datetime import datetime

import narwhals as nw
import polars as pl
import pytest

import trs_analytics as ta
from tests.builders import T0, history, states
from trs_analytics.exceptions import ConfigurationError, SchemaError
from trs_analytics.metrics import wilson

OK = "Pending@0 Running@1 Completed@2"
RETRIED_OK = "Pending@0 Running@1 Retrying@2 Completed@3"
FAILED = "Pending@0 Running@1 Failed@2"
CRASHED = "Pending@0 Running@1 Crashed@2"
CANCELLED = "Pending@0 Running@1 Cancelled@2"
RUNNING = "Pending@0 Running@1"


def _frame() -> pl.DataFrame:
    return states(
        history(OK, task_run_id="a1", task_name="a", tags=["etl"]),
        history(RETRIED_OK, task_run_id="a2", task_name="a"),
        history(FAILED, task_run_id="a3", task_name="a", tags=["etl", "hot"]),
        history(CANCELLED, task_run_id="a4", task_name="a"),
        history(RUNNING, task_run_id="a5", task_name="a"),
        history(OK, task_run_id="b1", task_name="b"),
        history(CRASHED, task_run_id="b2", task_name="b", tags=["hot"]),
    )


def test_failure_rates_by_task_name() -> None:
    out = ta.failure_rates(_frame(), by="task_name")
    rows = out.select(
        "task_name",
        "runs",
        "completed",
        "failed",
        "crashed",
        "cancelled",
        "unfinished",
        "failure_rate",
        "first_attempt_failed",
        "first_attempt_failure_rate",
        "rescued",
    ).rows()
    assert rows == [
        # a: 2 completed + 1 failed; cancelled and running apart; a2's first attempt failed
        ("a", 3, 2, 1, 0, 1, 1, 1 / 3, 2, 2 / 3, 1),
        ("b", 2, 1, 1, 1, 0, 0, 0.5, 1, 0.5, 0),
    ]


def test_failure_rates_wilson_interval_values() -> None:
    out = ta.failure_rates(_frame(), by="task_name")
    low, high = out.row(0, named=True)["ci_low"], out.row(0, named=True)["ci_high"]
    # 1 failure in 3 runs, 95% Wilson interval, worked out with the textbook formula
    z, n, p = 1.959963984540054, 3, 1 / 3
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert low == pytest.approx(centre - half)
    assert high == pytest.approx(centre + half)
    assert (round(low, 4), round(high, 4)) == (0.0615, 0.7923)


@pytest.mark.parametrize(
    ("failed", "runs", "low", "high"),
    [
        # published reference values (Newcombe 1998, table I / Brown-Cai-DasGupta)
        (0, 10, 0.0, 0.2775),
        (1, 10, 0.0179, 0.4042),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),
        (0, 0, None, None),
    ],
)
def test_wilson_reference_values(
    failed: int, runs: int, low: float | None, high: float | None
) -> None:
    lo, hi = wilson(nw.col("x"), nw.col("n"))
    got = (
        nw.from_native(pl.DataFrame({"x": [failed], "n": [runs]}))
        .select(lo.round(4).alias("low"), hi.round(4).alias("high"))
        .row(0)
    )
    assert got == (low, high)


def test_failure_rates_overall() -> None:
    out = ta.failure_rates(_frame(), by=None)
    assert out.select("runs", "failed", "unfinished", "cancelled").rows() == [(5, 2, 1, 1)]


def test_failure_rates_by_tags_counts_a_run_in_each_tag() -> None:
    out = ta.failure_rates(_frame(), by="tags")
    # etl: a1 ok, a3 failed; hot: a3 failed, b2 crashed; untagged: a2 and b1 ok
    # (a4 cancelled and a5 running are untagged too, counted apart)
    assert out.select("tags", "runs", "failed", "cancelled", "unfinished").rows() == [
        ("etl", 2, 1, 0, 0),
        ("hot", 2, 2, 0, 0),
        (None, 2, 0, 1, 1),
    ]


def test_failure_rates_by_two_columns() -> None:
    out = ta.failure_rates(_frame(), by=["flow_name", "task_name"])
    assert out.select("flow_name", "task_name", "runs").rows() == [
        ("flow", "a", 3),
        ("flow", "b", 2),
    ]


def test_failure_rates_per_day_buckets_by_first_state() -> None:
    day = 86_400.0
    frame = states(
        # starts late on day 1, ends on day 2: counted on day 1
        history(f"Pending@{day - 5} Running@{day - 4} Failed@{day + 5}", task_run_id="r1"),
        history(f"Pending@{day + 10} Running@{day + 11} Completed@{day + 12}", task_run_id="r2"),
        history(f"Pending@{day + 20} Running@{day + 21} Completed@{day + 22}", task_run_id="r3"),
        history("Pending@100 Running@101 Completed@102", task_run_id="r4"),
    )
    out = ta.failure_rates(frame, by="task_name", every="1d")
    assert out.select("bucket", "runs", "failed").rows() == [
        (T0, 2, 1),
        (datetime(2026, 1, 2, tzinfo=T0.tzinfo), 2, 0),
    ]
    assert out.schema["bucket"] == pl.Datetime("us", "UTC")


def test_failure_rates_no_finished_runs_gives_null_rates() -> None:
    out = ta.failure_rates(states(history(RUNNING, task_run_id="r")))
    assert out.select("runs", "unfinished", "failure_rate", "ci_low", "ci_high").rows() == [
        (0, 1, None, None, None)
    ]


def test_failure_rates_lazy() -> None:
    out = ta.failure_rates(_frame().lazy(), by="task_name", every="1h")
    assert isinstance(out, pl.LazyFrame)
    assert out.collect().equals(ta.failure_rates(_frame(), by="task_name", every="1h"))


@pytest.mark.parametrize("every", ["soon", "-1d", "0d"])
def test_failure_rates_bad_every(every: str) -> None:
    with pytest.raises(ConfigurationError, match="every="):
        ta.failure_rates(_frame(), every=every)


def test_failure_rates_missing_by_column() -> None:
    with pytest.raises(SchemaError, match=r"'team'.*Hint:"):
        ta.failure_rates(_frame(), by="team")

"""The failure-rate test of detect_anomalies: its chances, its false-alarm level, its power.

Independent truth: ``math.lgamma``; exact beta-binomial sums in rational
arithmetic (``tests/chance.py``); binomial weights summed exactly over every
outcome of a training window and a detection window, so the false-alarm rate
and the power are computed, not sampled.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING

import narwhals as nw
import polars as pl
import pytest

import trs_analytics as ta
from tests.builders import T0
from tests.chance import binomial, pmf, upper
from trs_analytics.metrics._chance import (
    beta_binomial_log_norm,
    beta_binomial_log_term,
    log_gamma,
    one_sided_level,
)
from trs_analytics.metrics._failures import wilson

if TYPE_CHECKING:
    from trs_analytics.metrics import AnomalyOptions


@pytest.mark.parametrize("x", [0.5, 1.0, 1.5, 2.0, 3.7, 9.5, 10.0, 100.5, 12_345.5, 1e6 + 0.5])
def test_log_gamma_is_math_lgamma(x: float) -> None:
    got = nw.from_native(pl.DataFrame({"x": [x]})).select(g=log_gamma(nw.col("x"))).item()
    assert got == pytest.approx(math.lgamma(x), rel=1e-12, abs=1e-11)


@pytest.mark.parametrize(("n", "f", "m"), [(5, 0, 10), (24, 9, 336), (33, 1, 60), (100, 30, 40)])
def test_beta_binomial_probabilities_are_the_exact_ones(n: int, f: int, m: int) -> None:
    k = pl.DataFrame({"k": range(n + 1)}, schema={"k": pl.Float64})
    a, b, size = nw.lit(f + 0.5), nw.lit(m - f + 0.5), nw.lit(float(n))
    log_p = beta_binomial_log_norm(size, a, b) + beta_binomial_log_term(nw.col("k"), size, a, b)
    got = nw.from_native(k).select(p=log_p.exp())["p"].to_list()
    exact = [float(p) for p in pmf(n, f, m)]
    assert got == pytest.approx(exact, rel=1e-9, abs=1e-300)
    assert sum(got) == pytest.approx(1.0, rel=1e-12)


M, N = 168, 24  # a week of hourly runs trains; a day of them is judged
FAILED = range(21)  # P(more than 20 of 168 fail) < 1e-8 at the rates tried here


def _grid(m: int, n: int) -> pl.DataFrame:
    """One task per (training failures f, window failures x): m runs in hour 0, n in hour 1."""
    cells = [(f, x) for f in FAILED for x in range(n + 1)]
    runs = pl.DataFrame(cells, schema=["f", "x"], orient="row").with_columns(
        i=pl.int_ranges(0, m + n)
    )
    runs = (
        runs.explode("i")
        .with_columns(
            task_name=pl.format("f{}-x{}", "f", "x"),
            window=pl.col("i") >= m,
            failed=pl.when(pl.col("i") < m)
            .then(pl.col("i") < pl.col("f"))
            .otherwise(pl.col("i") - m < pl.col("x")),
        )
        .with_columns(
            task_run_id=pl.format("{}-{}", "task_name", "i"),
            start=pl.lit(T0)
            + pl.duration(hours=pl.col("window").cast(pl.Int64), seconds=pl.col("i")),
        )
    )
    pending = runs.select("task_run_id", "task_name", name=pl.lit("Pending"), timestamp="start")
    end = pl.when(pl.col("failed")).then(pl.lit("Failed")).otherwise(pl.lit("Completed"))
    final = runs.select(
        "task_run_id",
        "task_name",
        name=end,
        timestamp=pl.col("start") + timedelta(seconds=0.5),
    )
    return pl.concat([pending, final]).with_columns(
        id=pl.format("{}-{}", "task_run_id", "name"),
        type=pl.col("name").str.to_uppercase().cast(ta.STATES_SCHEMA["type"]),
    )


@pytest.fixture(scope="module")
def decisions() -> dict[float, dict[tuple[int, int], bool]]:
    """Whether detect_anomalies flags each (f, x), at z = 2 and z = 3 (no minimum change)."""
    states = _grid(M, N)
    out = {}
    for z in (2.0, 3.0):
        options: AnomalyOptions = {"every": "1h", "training": "1h", "min_training": 1}
        options |= {"min_runs": 1, "metric": "failure_rate", "z": z, "min_change": 0.0}
        found = ta.detect_anomalies(states, **options)
        judged = found.filter(pl.col("training_size") == M)
        assert judged.height == len(FAILED) * (N + 1)
        cells = judged.select(
            f=pl.col("task_name").str.extract(r"f(\d+)").cast(pl.Int64),
            x=pl.col("task_name").str.extract(r"x(\d+)").cast(pl.Int64),
            flagged="anomalous",
        )
        out[z] = {(f, x): flagged for f, x, flagged in cells.iter_rows()}
    return out


@pytest.mark.parametrize("z", [2.0, 3.0])
def test_each_decision_is_the_exact_tail_against_the_level(
    decisions: dict[float, dict[tuple[int, int], bool]], z: float
) -> None:
    alpha = one_sided_level(z)
    exact = {(f, x): upper(x, N, f, M) <= alpha for f, x in decisions[z]}
    assert decisions[z] == exact


def _rate(flagged: dict[tuple[int, int], bool], base: float, window: float) -> float:
    """P(flagged) when the training fails at ``base`` and the window at ``window``."""
    train, judged = binomial(M, base), binomial(N, window)
    return sum(train[f] * judged[x] for (f, x), hit in flagged.items() if hit)


@pytest.mark.parametrize("base", [0.01, 0.03, 0.1])
@pytest.mark.parametrize("z", [2.0, 3.0])
def test_the_false_alarm_rate_is_at_most_the_level_and_not_far_below(
    decisions: dict[float, dict[tuple[int, int], bool]], z: float, base: float
) -> None:
    alpha = one_sided_level(z)  # 0.0228 at z = 2, 0.00135 at z = 3
    false_alarms = _rate(decisions[z], base, base)
    assert false_alarms <= alpha
    # a discrete test cannot hit its level exactly, but it is of its order (0.25 to
    # 0.61 of it here); the Wilson intervals that had to part at z were 4 to 1,800
    # times below it
    assert false_alarms >= alpha / 5
    assert _rate(_wilson_flags(z), base, base) < alpha / 4


def _wilson_flags(z: float) -> dict[tuple[int, int], bool]:
    """The former test: the window's Wilson interval above the training's, both at z."""
    frame = pl.DataFrame(
        [(f, x) for f in FAILED for x in range(N + 1)], schema=["f", "x"], orient="row"
    )
    window_low, _ = wilson(nw.col("x"), nw.lit(N), z=z)
    _, base_high = wilson(nw.col("f"), nw.lit(M), z=z)
    flags = nw.from_native(frame).select("f", "x", hit=window_low > base_high)
    return {(f, x): hit for f, x, hit in flags.iter_rows()}


@pytest.mark.parametrize(("window", "least"), [(0.1, 0.05), (0.2, 0.39), (0.4, 0.95)])
def test_power_against_a_jump_from_3_percent_over_24_runs(
    decisions: dict[float, dict[tuple[int, int], bool]], window: float, least: float
) -> None:
    power = _rate(decisions[3.0], 0.03, window)  # 0.053, 0.396, 0.955
    assert power >= least
    # the former test: 0.011, 0.187, 0.871
    assert power > 1.09 * _rate(_wilson_flags(3.0), 0.03, window)

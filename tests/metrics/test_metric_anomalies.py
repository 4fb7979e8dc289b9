"""detect_anomalies on tiny hand-worked histories: every option, values not shapes.

Runs are written as (start second after T0, run time in seconds, outcome):
``Pending`` at the start, ``Running`` 0 s later, the terminal state after the
run time. Run times are powers of two, so that medians and MADs of their
logarithms are worked out by hand in units of ln 2.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
import pytest

import trs_analytics as ta
from tests.builders import T0, at
from tests.chance import lower, upper
from trs_analytics.exceptions import ConfigurationError, SchemaError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from trs_analytics.metrics import AnomalyOptions

HOUR = 3600.0
DAY = 24 * HOUR
LN2 = math.log(2)
#: The standard error of one run's log duration, in units of ln 2 per unit of MAD.
SE1 = math.sqrt(math.pi / 2) * 1.482602218505602

#: Options that let one run judge a bucket, with no minimum change.
LOOSE: AnomalyOptions = {
    "every": "1h",
    "training": "3h",
    "min_training": 1,
    "min_runs": 1,
    "min_change": 0.0,
}


def frame(runs: Sequence[tuple[float, float, str]], *, task: str | None = "t") -> pl.DataFrame:
    """States of ``runs``: (start second, run time in seconds, "ok" or "fail")."""
    rows = []
    for i, (start, seconds, outcome) in enumerate(runs):
        end = "Completed" if outcome == "ok" else "Failed"
        for j, (name, second) in enumerate(
            [("Pending", start), ("Running", start), (end, start + seconds)]
        ):
            rows.append(
                {
                    "id": f"r{i}-{j}",
                    "task_run_id": f"r{i}",
                    "type": {"Pending": "PENDING", "Running": "RUNNING"}.get(name, name.upper()),
                    "name": name,
                    "timestamp": at(second),
                    "task_name": task,
                }
            )
    return pl.DataFrame(
        rows, schema_overrides={"type": ta.STATES_SCHEMA["type"], "task_name": pl.String}
    )


#: Training runs of 1, 2, 4 (hour 0, 1), 8, 16 s (hour 2): log2 = 0..4, median 2 (4 s), MAD 1.
TRAINING = [
    (0, 1, "ok"),
    (10, 2, "ok"),
    (HOUR, 4, "ok"),
    (HOUR + 10, 8, "ok"),
    (2 * HOUR, 16, "ok"),
]


def row(result: pl.DataFrame, hour: int) -> dict[str, Any]:
    return result.filter(pl.col("bucket") == T0 + timedelta(hours=hour)).row(0, named=True)


def test_a_spike_is_scored_against_the_training_median_and_mad() -> None:
    states = frame([*TRAINING, (3 * HOUR, 64, "ok")])  # log2 = 6: 4 ln2 above the median
    got = row(ta.detect_anomalies(states, **(LOOSE | {"z": 2.0})), 3)
    assert got["observed"] == pytest.approx(64.0)
    assert got["expected"] == pytest.approx(4.0)
    assert got["training_size"] == 5
    assert got["runs"] == 1
    assert got["score"] == pytest.approx(4 / SE1)  # 2.1527
    width = 2 * SE1 * LN2
    assert got["upper"] == pytest.approx(4.0 * math.exp(width))
    assert got["lower"] == pytest.approx(4.0 * math.exp(-width))
    assert got["anomalous"] is True
    assert got["direction"] == "spike"
    assert got["reason"] == "median run_time 16.0 times the expected (robust z 2.2)"


def test_z_sets_the_threshold() -> None:
    states = frame([*TRAINING, (3 * HOUR, 64, "ok")])
    got = row(ta.detect_anomalies(states, **(LOOSE | {"z": 3.0})), 3)  # 2.15 < 3
    assert got["score"] == pytest.approx(4 / SE1)
    assert (got["anomalous"], got["direction"], got["reason"]) == (False, None, None)


def test_the_training_window_excludes_older_buckets_and_the_bucket_itself() -> None:
    # 2 h back: hours 1 and 2 only (4, 8, 16 s: median 8 s); the bucket's own 64 s not in it
    states = frame([*TRAINING, (3 * HOUR, 64, "ok")])
    got = row(ta.detect_anomalies(states, **(LOOSE | {"z": 2.0, "training": "2h"})), 3)
    assert got["training_size"] == 3
    assert got["expected"] == pytest.approx(8.0)
    first = row(ta.detect_anomalies(states, **LOOSE), 0)
    assert first["training_size"] == 0
    assert first["expected"] is None
    assert first["anomalous"] is False


def test_a_drop_is_flagged_below_and_direction_picks_the_side() -> None:
    states = frame([*TRAINING, (3 * HOUR, 0.25, "ok")])  # log2 = -2: 4 ln2 below
    both = row(ta.detect_anomalies(states, **(LOOSE | {"z": 2.0})), 3)
    assert (both["anomalous"], both["direction"]) == (True, "drop")
    assert both["score"] == pytest.approx(-4 / SE1)
    assert both["reason"] == "median run_time 94% below the expected (robust z 2.2)"
    spikes_only = row(ta.detect_anomalies(states, **(LOOSE | {"z": 2.0, "direction": "spike"})), 3)
    assert spikes_only["anomalous"] is False
    drops_only = row(ta.detect_anomalies(states, **(LOOSE | {"z": 2.0, "direction": "drop"})), 3)
    assert drops_only["anomalous"] is True


def test_min_change_widens_the_band() -> None:
    states = frame([*TRAINING, (3 * HOUR, 64, "ok")])  # 16 times the expected 4 s
    loose = LOOSE | {"z": 2.0, "min_change": 10.0}  # band up to 11x
    got = row(ta.detect_anomalies(states, **loose), 3)
    assert got["upper"] == pytest.approx(4.0 * math.exp(2 * SE1 * LN2))  # 13.1x > 11x
    assert got["anomalous"] is True
    strict = LOOSE | {"z": 2.0, "min_change": 20.0}  # band up to 21x: 16x is inside
    got = row(ta.detect_anomalies(states, **strict), 3)
    assert got["upper"] == pytest.approx(4.0 * 21)
    assert got["lower"] == pytest.approx(4.0 / 21)
    assert got["anomalous"] is False


@pytest.mark.parametrize(("option", "value"), [("min_training", 6), ("min_runs", 2)])
def test_buckets_without_enough_runs_or_training_are_not_judged(
    option: Literal["min_training", "min_runs"], value: int
) -> None:
    states = frame([*TRAINING, (3 * HOUR, 64, "ok")])
    options = LOOSE | {"z": 2.0}
    options[option] = value
    got = row(ta.detect_anomalies(states, **options), 3)
    assert got["expected"] == pytest.approx(4.0)  # still computed
    assert got["anomalous"] is False


def test_the_bucket_median_has_a_standard_error_that_shrinks_with_runs() -> None:
    # four runs of 32 s in hour 3: median log2 5, 3 ln2 above; se = SE1 ln2 / 2
    states = frame([*TRAINING, *((3 * HOUR + i, 32, "ok") for i in range(4))])
    got = row(ta.detect_anomalies(states, **(LOOSE | {"z": 3.0})), 3)
    assert got["runs"] == 4
    assert got["score"] == pytest.approx(3 / (SE1 / 2))
    assert got["anomalous"] is True


def test_hour_of_day_trains_on_the_same_hour_only() -> None:
    hour5 = 5 * HOUR
    runs = [(hour5, 1, "ok"), (hour5 + 10, 2, "ok"), (DAY + hour5, 4, "ok")]
    runs += [(DAY + 6 * HOUR, 1000, "ok"), (2 * DAY + hour5, 64, "ok")]
    options = LOOSE | {"z": 2.0, "training": "3d", "seasonality": "hour_of_day"}
    got = row(ta.detect_anomalies(frame(runs), **options), 53)
    assert got["training_size"] == 3  # 1, 2, 4 s; not the 1000 s of 06:00
    assert got["expected"] == pytest.approx(2.0)
    plain = row(ta.detect_anomalies(frame(runs), **(LOOSE | {"z": 2.0, "training": "3d"})), 53)
    assert plain["training_size"] == 4


def test_day_of_week_trains_on_the_same_weekday_only() -> None:
    # T0 is a Thursday: days 0, 7 and 14 are Thursdays; day 1 a Friday
    runs = [(0, 4, "ok"), (DAY, 1000, "ok"), (7 * DAY, 8, "ok"), (14 * DAY, 64, "ok")]
    options: AnomalyOptions = {"every": "1d", "training": "14d", "min_training": 1, "min_runs": 1}
    got = ta.detect_anomalies(frame(runs), **(options | {"seasonality": "day_of_week"}))
    last = got.filter(pl.col("bucket") == T0 + timedelta(days=14)).row(0, named=True)
    assert last["training_size"] == 2  # day 0 is exactly 14 days back: in the window
    assert last["expected"] == pytest.approx(math.sqrt(32))  # geometric middle of 4 and 8


def test_no_spread_means_any_change_beyond_min_change_is_flagged() -> None:
    runs = [(h * HOUR, 4, "ok") for h in range(3)] + [(3 * HOUR, 5, "ok")]
    got = row(ta.detect_anomalies(frame(runs), **LOOSE), 3)
    assert got["score"] is None  # MAD 0: no z-score
    assert got["anomalous"] is True
    assert got["reason"] == "median run_time 1.3 times the expected"
    quiet = row(ta.detect_anomalies(frame(runs), **(LOOSE | {"min_change": 0.5})), 3)
    assert quiet["anomalous"] is False


def wilson(x: int, n: int, z: float) -> tuple[float, float]:
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(centre - half, 0.0), min(centre + half, 1.0)


#: Three hours of 20 runs, one failed.
ONE_IN_60 = [
    (h * HOUR + i, 1, "fail" if i == 0 and h == 0 else "ok") for h in range(3) for i in range(20)
]


def test_a_failure_rate_jump_is_flagged_when_its_chance_is_under_the_level() -> None:
    jump = [(3 * HOUR + i, 1, "fail" if i < 12 else "ok") for i in range(20)]
    rates = LOOSE | {"metric": "failure_rate"}
    got = row(ta.detect_anomalies(frame(ONE_IN_60 + jump), **rates), 3)
    base_low, base_high = wilson(1, 60, 3.0)  # the band drawn: the training's interval
    assert (got["observed"], got["training_size"], got["runs"]) == (0.6, 60, 20)
    assert got["expected"] == pytest.approx(1 / 60)
    assert got["lower"] == pytest.approx(base_low)
    assert got["upper"] == pytest.approx(base_high)
    chance = upper(12, 20, 1, 60)  # 7.96e-9, exact sums of rational terms
    assert got["score"] == pytest.approx(-math.log10(chance), rel=1e-9)
    assert (got["anomalous"], got["direction"]) == (True, "spike")
    assert got["reason"] == (
        "failure rate 60.0% (12 of 20 runs) against 1.7% expected; "
        "as many failures by chance: under 1 in 1000000"
    )


def test_a_small_failure_rate_rise_is_not_flagged() -> None:
    rise = [(3 * HOUR + i, 1, "fail" if i < 2 else "ok") for i in range(20)]  # 10%
    rates = LOOSE | {"metric": "failure_rate"}
    got = row(ta.detect_anomalies(frame(ONE_IN_60 + rise), **rates), 3)
    chance = upper(2, 20, 1, 60)  # 0.147: 2 of 20 is not unusual against 1 of 60
    assert got["score"] == pytest.approx(-math.log10(chance), rel=1e-9)
    assert got["anomalous"] is False
    # at z = 1 the level is 0.159 (one-sided), and 0.147 is under it
    loose = row(ta.detect_anomalies(frame(ONE_IN_60 + rise), **(rates | {"z": 1.0})), 3)
    assert (loose["anomalous"], loose["reason"]) == (
        True,
        "failure rate 10.0% (2 of 20 runs) against 1.7% expected; "
        f"as many failures by chance: 1 in {round(1 / chance)}",
    )


def test_failure_rate_drops_count_only_when_asked() -> None:
    training = [(h * HOUR + i, 1, "fail" if i < 10 else "ok") for h in range(3) for i in range(20)]
    clean = [(3 * HOUR + i, 1, "ok") for i in range(30)]
    states = frame(training + clean)
    rates = LOOSE | {"metric": "failure_rate"}
    assert not row(ta.detect_anomalies(states, **rates), 3)["anomalous"]
    both = row(ta.detect_anomalies(states, **(rates | {"direction": "both"})), 3)
    assert (both["anomalous"], both["direction"]) == (True, "drop")
    assert both["score"] == pytest.approx(math.log10(lower(0, 30, 30, 60)), rel=1e-9)
    assert both["reason"].startswith(
        "failure rate 0.0% (0 of 30 runs) against 50.0% expected; as few"
    )


def test_groups_are_apart_and_a_null_group_is_a_group() -> None:
    a = frame([*TRAINING, (3 * HOUR, 64, "ok")], task="a")
    b = frame([(0, 64, "ok"), (3 * HOUR, 1, "ok")], task=None).with_columns(
        pl.col("id", "task_run_id") + "-b"
    )
    got = ta.detect_anomalies(pl.concat([a, b]), **(LOOSE | {"z": 2.0}))
    assert got.select("task_name", "training_size").rows() == [
        ("a", 0),
        ("a", 2),
        ("a", 4),
        ("a", 5),
        (None, 0),
        (None, 1),
    ]
    # hour 3 of "a" is the spike above; of the null group 1 s against 64 s, a drop
    last = got.filter(pl.col("bucket") == T0 + timedelta(hours=3))
    assert last.select("task_name", "anomalous", "direction").rows() == [
        ("a", True, "spike"),
        (None, True, "drop"),
    ]
    overall = ta.detect_anomalies(pl.concat([a, b]), **(LOOSE | {"by": None, "z": 2.0}))
    assert overall.columns[0] == "bucket"
    assert overall["runs"].to_list() == [3, 2, 1, 2]


def test_by_a_column_the_durations_do_not_carry() -> None:
    states = frame([*TRAINING, (3 * HOUR, 64, "ok")]).with_columns(region=pl.lit("eu"))
    got = ta.detect_anomalies(states, **(LOOSE | {"by": "region", "z": 2.0}))
    assert row(got, 3)["region"] == "eu"
    assert row(got, 3)["anomalous"] is True


def test_a_lazy_frame_stays_lazy() -> None:
    states = frame([*TRAINING, (3 * HOUR, 64, "ok")])
    result = ta.detect_anomalies(states.lazy(), **(LOOSE | {"z": 2.0}))
    assert isinstance(result, pl.LazyFrame)
    assert result.collect().equals(ta.detect_anomalies(states, **(LOOSE | {"z": 2.0})))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metric": "p95"}, "metric='p95' is not one of"),
        ({"direction": "up"}, "direction='up' is not"),
        ({"z": 0}, "need z > 0"),
        ({"min_change": -1}, "min_change >= 0"),
        ({"seasonality": "month"}, "seasonality='month' is not"),
        ({"seasonality": "hour_of_day", "every": "1d"}, "needs buckets that divide 1h"),
        ({"seasonality": "day_of_week", "every": "1w"}, "needs buckets that divide 1d"),
        ({"every": "1mo"}, "every='1mo' is not a duration"),
        ({"training": "0s"}, "training='0s' must be a positive duration"),
    ],
)
def test_bad_options_are_refused_with_a_hint(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match="Hint") as caught:
        ta.detect_anomalies(frame(TRAINING), **options)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_a_missing_by_column_is_named() -> None:
    with pytest.raises(SchemaError, match="'team'"):
        ta.detect_anomalies(frame(TRAINING), by="team")

"""Anomalies per group and time bucket: durations by robust z-score, failure rates by a
beta-binomial test.

Each group's runs fall in ``every``-wide UTC buckets (by the start of the
measured duration, or by the run's first state for failure rates), aligned
to the epoch or to ``origin``. Every
bucket is a *detection bucket*; its *training window* is the group's runs in
the ``training`` before the bucket (the bucket itself excluded), optionally
only those in buckets of the same hour of day or day of week.

Durations (``run_time``, ``queue_wait``, ...), on log durations:

- ``expected`` is the median of the training runs' log durations (read back
  as seconds), ``sigma = 1.4826 * MAD`` their robust standard deviation;
- ``observed`` is the bucket's median (of log durations, read back as seconds),
  whose standard error is ``1.2533 * sigma / sqrt(runs)``;
- ``score = (log observed - log expected) / standard error``: the robust
  z-score of the bucket's median;
- the band is ``expected`` times/divided by ``max(exp(z * se), 1 + min_change)``;
  a bucket outside it is a spike (above) or a drop (below).

Failure rates: a bucket is a spike when the chance of its failures or more,
if nothing changed, is at most the one-sided level of ``z`` (0.00135 for
z = 3): beta-binomial, the rate Beta(training failures + 1/2, training
successes + 1/2), so the training's own uncertainty counts (a drop: the
chance of that few); and its rate is at least ``1 + min_change`` times (at
most ``1 / (1 + min_change)`` times) the training's. The band (``lower``,
``upper``) is the training's Wilson interval at ``z``.

Everything is one narwhals query: the training window is an equi-join of each
detection bucket with its group's runs, filtered on the bucket range.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final, Literal, TypedDict, get_args

import narwhals as nw

from trs_analytics._time import micros_at
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.metrics._buckets import bucket_of, duration_micros
from trs_analytics.metrics._chance import (
    JEFFREYS,
    beta_binomial_log_norm,
    beta_binomial_log_term,
    one_sided_level,
)
from trs_analytics.metrics._common import RUN, as_list, explode_tags, group_keys, outcomes
from trs_analytics.metrics._durations import (
    end_to_end,
    lateness,
    queue_wait,
    retry_wait,
    run_time,
    run_time_rows,
)
from trs_analytics.metrics._failures import wilson
from trs_analytics.metrics._frames import finish, lazy, reused, schema_of, with_micros
from trs_analytics.metrics._run_table import per_run
from trs_analytics.schema import FAILURE_TYPES, require_columns, run_id_column

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from trs_analytics.metrics._frames import Frame

__all__ = [
    "ANOMALY_COLUMNS",
    "MAD_SCALE",
    "AnomalyMetric",
    "AnomalyOptions",
    "Direction",
    "Seasonality",
    "detect_anomalies",
]

#: What :func:`detect_anomalies` can watch.
AnomalyMetric = Literal[
    "run_time", "end_to_end", "queue_wait", "lateness", "retry_wait", "failure_rate"
]

#: Which side of the band is an anomaly.
Direction = Literal["spike", "drop", "both"]

#: Train only on buckets of the same hour of day, or of the same day of week.
Seasonality = Literal["hour_of_day", "day_of_week"]

#: The columns of :func:`detect_anomalies` after the ``by`` columns.
ANOMALY_COLUMNS: Final = (
    "bucket",
    "metric",
    "runs",
    "observed",
    "expected",
    "lower",
    "upper",
    "score",
    "training_size",
    "anomalous",
    "direction",
    "reason",
)

#: 1.4826 * MAD estimates the standard deviation of normal data (1 / Phi^-1(3/4)).
MAD_SCALE: Final = 1.482602218505602

#: The standard error of a median is sqrt(pi / 2) ~ 1.2533 times that of a mean.
_MEDIAN_SE: Final = math.sqrt(math.pi / 2)

_DURATIONS: Final[dict[str, Callable[[Any], Any]]] = {
    "run_time": run_time,
    "end_to_end": end_to_end,
    "queue_wait": queue_wait,
    "lateness": lateness,
    "retry_wait": retry_wait,
}

_HOUR: Final = 3_600_000_000
_DAY: Final = 24 * _HOUR
_WEEK: Final = 7 * _DAY
_MONDAY: Final = 4 * _DAY  # 1970-01-05, the first Monday after the epoch

#: Separates the parts of the group key that joins a bucket with its training runs.
_SEPARATOR: Final = "\x1f"
_NULL: Final = "\x00"


class AnomalyOptions(TypedDict, total=False):
    """The options of :func:`detect_anomalies` (for callers that pass them through)."""

    by: str | Sequence[str] | None
    metric: AnomalyMetric
    every: str
    training: str | None
    min_training: int
    min_runs: int
    z: float
    direction: Direction | None
    seasonality: Seasonality | None
    min_change: float
    origin: datetime | None
    since: datetime | None


def _defaults(option: str) -> object:
    """The default of one of :func:`detect_anomalies`' options: its signature's."""
    return (detect_anomalies.__kwdefaults__ or {})[option]


class _Settings:
    """The checked options of one call."""

    def __init__(self, options: AnomalyOptions) -> None:
        # every option given: the defaults are written once, in detect_anomalies' signature
        self.keys: list[str] = as_list(options["by"])
        self.metric = str(options["metric"])
        self.every = str(options["every"])
        self.width = duration_micros(self.every)
        self.seasonality = options["seasonality"]
        training = options["training"]
        if training is None:
            training = "98d" if self.seasonality == "day_of_week" else "14d"
        self.training = duration_micros(training, argument="training")
        self.min_training = int(options["min_training"])
        self.min_runs = int(options["min_runs"])
        self.z = float(options["z"])
        self.min_change = float(options["min_change"])
        self.origin = _aware_micros(options.get("origin"), "origin")
        self.since = _aware_micros(options.get("since"), "since")
        direction = options["direction"]
        if direction is None:
            direction = "spike" if self.metric == "failure_rate" else "both"
        self.direction: str = direction
        self._check()

    def _check(self) -> None:
        metrics = get_args(AnomalyMetric)
        if self.metric not in metrics:
            msg = f"metric={self.metric!r} is not one of {list(metrics)}. Hint: use metric='run_time'."
            raise ConfigurationError(msg)
        if self.direction not in get_args(Direction):
            msg = (
                f"direction={self.direction!r} is not 'spike', 'drop' or 'both'. "
                "Hint: 'spike' flags values above the band, 'drop' below, 'both' either."
            )
            raise ConfigurationError(msg)
        if self.z <= 0 or self.min_change < 0 or self.min_training < 1 or self.min_runs < 1:
            msg = (
                f"need z > 0, min_change >= 0, min_training >= 1 and min_runs >= 1, got "
                f"z={self.z}, min_change={self.min_change}, min_training={self.min_training}, "
                f"min_runs={self.min_runs}. Hint: the defaults are {_defaults('z')}, "
                f"{_defaults('min_change')}, {_defaults('min_training')} and {_defaults('min_runs')}."
            )
            raise ConfigurationError(msg)
        self._check_seasonality()

    def _check_seasonality(self) -> None:
        limits = {"hour_of_day": (_HOUR, "1h"), "day_of_week": (_DAY, "1d")}
        if self.seasonality is None:
            return
        if self.seasonality not in limits:
            msg = (
                f"seasonality={self.seasonality!r} is not 'hour_of_day', 'day_of_week' or None. "
                "Hint: 'hour_of_day' compares 10:00 with earlier 10:00s (every='1h')."
            )
            raise ConfigurationError(msg)
        limit, text = limits[self.seasonality]
        if self.width > limit or limit % self.width:
            msg = (
                f"seasonality={self.seasonality!r} needs buckets that divide {text}, got "
                f"every={self.every!r}. Hint: use every='{text}' or a divisor of it."
            )
            raise ConfigurationError(msg)

    def bucket(self, us: nw.Expr) -> nw.Expr:
        """The start of the bucket holding ``us`` (microseconds), aligned to ``origin``."""
        return bucket_of(us, self.every, origin=self.origin)

    def season(self, bucket: nw.Expr) -> nw.Expr:
        """The bucket's place in its day (hour_of_day) or week (day_of_week), in microseconds."""
        if self.seasonality == "hour_of_day":
            return _mod(bucket, _DAY) - _mod(bucket, _HOUR)
        if self.seasonality == "day_of_week":
            return _mod(bucket - _MONDAY, _WEEK) - _mod(bucket - _MONDAY, _DAY)
        return nw.lit(0, dtype=nw.Int64())

    @property
    def spikes(self) -> bool:
        return self.direction in ("spike", "both")

    @property
    def drops(self) -> bool:
        return self.direction in ("drop", "both")


def _aware_micros(at: datetime | None, argument: str) -> int | None:
    """``at`` in microseconds since the epoch (it must be time-zone aware); None stays None."""
    return None if at is None else micros_at(at, argument=argument)


def _mod(value: nw.Expr, width: int) -> nw.Expr:
    """``value`` modulo ``width``, never negative, on every engine."""
    return (value % width + width) % width


def _group_key(keys: Sequence[str]) -> nw.Expr:
    """One string per group, nulls included, to join a bucket with its group's training runs."""
    if not keys:
        return nw.lit("")
    parts = [nw.col(k).cast(nw.String()).fill_null(_NULL) for k in keys]
    return nw.concat_str(parts, separator=_SEPARATOR)


def _judged(detect: nw.LazyFrame[Any], s: _Settings) -> nw.LazyFrame[Any]:
    """The buckets judged: every one, or those that end after ``since``."""
    if s.since is None:
        return detect
    return detect.filter(nw.col("bucket") + s.width > s.since)


def _training_pairs(
    detect: nw.LazyFrame[Any], points: nw.LazyFrame[Any], s: _Settings, *, key: str = "_gk"
) -> nw.LazyFrame[Any]:
    """Each judged bucket joined with its group's points in the training window.

    The window is found on buckets first (each judged bucket with the
    group's earlier buckets in range: a few hundred rows per group), and only
    then are the points joined in, each to the buckets it trains: a point is
    copied once per bucket it trains, so judging only the recent buckets
    (``since``) copies it once, not once per bucket of the training window.
    """
    window = (
        (nw.col("_tb") < nw.col("bucket"))
        & (nw.col("_tb") >= nw.col("bucket") - s.training)
        & (nw.col("_ts") == nw.col("_season"))
    )
    buckets = _judged(detect, s).select(key, "bucket", "_season")
    earlier = detect.select(
        nw.col(key), nw.col("bucket").alias("_tb"), nw.col("_season").alias("_ts")
    )
    if points is detect:  # bucket-level points (failure counts): one join is enough
        values = [nw.col(c).alias(f"_t{c}") for c in ("runs", "failed")]
        train = detect.select(nw.col(key), *values, _tb="bucket", _ts="_season")
        return buckets.join(train, on=key).filter(window)
    ranges = buckets.join(earlier, on=key).filter(window).select(key, "bucket", "_tb")
    train = points.select(nw.col(key), _tb=nw.col("bucket"), _t_x=nw.col("_x"))
    return ranges.join(train, on=[key, "_tb"])


def _median(expr: nw.Expr) -> nw.Expr:
    """The linear-interpolated median (the same on every engine)."""
    return expr.quantile(0.5, interpolation="linear")


def _tenths(value: nw.Expr) -> nw.Expr:
    """A non-negative number as text with one decimal, the same on every engine."""
    tenths = (value * 10 + 0.5).floor().cast(nw.Int64())
    return nw.concat_str(
        (tenths // 10).cast(nw.String()), nw.lit("."), (tenths % 10).cast(nw.String())
    )


def _whole(value: nw.Expr) -> nw.Expr:
    """A non-negative number rounded half up, as text."""
    return (value + 0.5).floor().cast(nw.Int64()).cast(nw.String())


def _duration_points(states: Any, s: _Settings) -> nw.LazyFrame[Any]:
    """One row per measured duration: group key, bucket, log duration."""
    if s.metric == "run_time":  # its rows unsorted, already in microseconds
        run = run_id_column(schema_of(states).names())
        carry = [k for k in s.keys if k in schema_of(states).names() and k != run]
        rows = run_time_rows(states, carry).select(
            nw.col(RUN).alias(run), *carry, _start=nw.col("start_time"), _d=nw.col("duration")
        )
    else:
        rows = with_micros(
            lazy(_DURATIONS[s.metric](states), caller="detect_anomalies"),
            timestamps={"_start": "start_time"},
            durations={"_d": "duration"},
        )
    measured = rows.filter(~nw.col("_d").is_null() & ~nw.col("_start").is_null())
    present = measured.collect_schema().names()
    missing = [k for k in s.keys if k not in present]
    if missing:
        run = run_id_column(schema_of(states).names())
        built = per_run(
            states,
            caller="detect_anomalies",
            needs=missing,
            build=lambda tl: outcomes(tl, group_keys(missing)),
        )
        runs = built.select(nw.col(RUN).alias(run), *missing)
        measured = measured.join(runs, on=run, how="left")
    points: nw.LazyFrame[Any] = explode_tags(measured.select(*s.keys, "_start", "_d"), s.keys)
    bucket = s.bucket(nw.col("_start"))
    measured_points = points.with_columns(
        _gk=_group_key(s.keys),
        bucket=bucket,
        _x=nw.col("_d").clip(lower_bound=1).cast(nw.Float64()).log(),
    ).with_columns(_season=s.season(nw.col("bucket")))
    # read by the bucket medians and by the training window
    return reused(measured_points)


def _duration_anomalies(states: Any, s: _Settings) -> nw.LazyFrame[Any]:
    points = _duration_points(states, s)
    detect = points.group_by("_gk", *s.keys, "bucket", "_season", drop_null_keys=False).agg(
        runs=nw.len(), _obs=_median(nw.col("_x"))
    )
    # the pairs copy a point once per bucket it trains: they carry a whole number per
    # group (``_gid``), not the group key's text
    ids = (
        detect.select("_gk")
        .unique()
        .with_columns(_gid=nw.col("_gk").rank(method="dense").cast(nw.Int64()))
    )
    detect = detect.join(ids, on="_gk")
    measured = points.select("_gk", "bucket", "_x").join(ids, on="_gk")
    pairs = _training_pairs(detect, measured, s, key="_gid")
    on = ["_gid", "bucket"]
    centre = pairs.group_by(*on).agg(_med=_median(nw.col("_t_x")), training_size=nw.len())
    spread = (
        pairs.join(centre.select(*on, "_med"), on=on)
        .with_columns(_dev=(nw.col("_t_x") - nw.col("_med")).abs())
        .group_by(*on)
        .agg(_mad=_median(nw.col("_dev")))
    )
    stats = _judged(detect, s).join(centre, on=on, how="left").join(spread, on=on, how="left")
    se = MAD_SCALE * _MEDIAN_SE * nw.col("_mad") / nw.col("runs").cast(nw.Float64()).sqrt()
    stats = stats.with_columns(_se=se).with_columns(
        _width=nw.max_horizontal(s.z * nw.col("_se"), nw.lit(math.log1p(s.min_change))),
        score=nw.when(nw.col("_se") > 0).then((nw.col("_obs") - nw.col("_med")) / nw.col("_se")),
    )
    above = nw.col("_obs") - nw.col("_med") > nw.col("_width")
    below = nw.col("_med") - nw.col("_obs") > nw.col("_width")
    seconds = math.log(1_000_000)
    stats = stats.with_columns(
        observed=(nw.col("_obs") - seconds).exp(),
        expected=(nw.col("_med") - seconds).exp(),
        lower=(nw.col("_med") - nw.col("_width") - seconds).exp(),
        upper=(nw.col("_med") + nw.col("_width") - seconds).exp(),
    )
    stats = _flag(stats, s, above, below)
    ratio = (nw.col("_obs") - nw.col("_med")).exp()
    times = nw.concat_str(_tenths(ratio), nw.lit(" times the expected"))
    below = nw.concat_str(_whole((1 - ratio) * 100), nw.lit("% below the expected"))
    change = nw.when(nw.col("direction") == "spike").then(times).otherwise(below)
    z_text = nw.when(~nw.col("score").is_null()).then(
        nw.concat_str(nw.lit(" (robust z "), _tenths(nw.col("score").abs()), nw.lit(")"))
    )
    sentence = nw.concat_str(nw.lit(f"median {s.metric} "), change, z_text.fill_null(""))
    return _explain(stats, s, sentence)


def _failure_runs(states: Any, s: _Settings) -> nw.LazyFrame[Any]:
    """One row per run (per tag with ``by="tags"``): group key, bucket, counted, failed."""
    built = per_run(
        states,
        caller="detect_anomalies",
        needs=s.keys,
        build=lambda tl: outcomes(tl, group_keys(s.keys)),
    )
    runs = explode_tags(built, s.keys)
    final = nw.col("final_type")
    failed = final.is_in(FAILURE_TYPES)
    counted = runs.with_columns(
        _gk=_group_key(s.keys),
        bucket=s.bucket(nw.col("start_time")),
        _counted=((final == "COMPLETED") | failed).cast(nw.Int64()),
        _failed=failed.cast(nw.Int64()),
    ).with_columns(_season=s.season(nw.col("bucket")))
    # read by the bucket counts and by the tail sums
    return reused(counted)


def _tails(runs: nw.LazyFrame[Any], stats: nw.LazyFrame[Any], s: _Settings) -> nw.LazyFrame[Any]:
    """Per bucket with training, the beta-binomial chance of its failures or more (``_p_up``)
    and of its failures or fewer (``_p_down``), if nothing changed.

    The chance of ``k`` failures among the bucket's ``n`` runs is
    beta-binomial, its rate Beta(training failures + 1/2, training successes
    + 1/2). The tail sums over ``k`` need one row per ``k``: the bucket's own
    counted runs, numbered 1..n, give them (``k`` for the upper tail, ``k -
    1`` for the lower), so the sum is a group-by on every engine.
    """
    on = ["_gk", "bucket"]
    base_failed = nw.col("_base_failed").cast(nw.Float64())
    params = (
        stats.filter(nw.col("training_size") > 0)
        .select(
            *on,
            _x=nw.col("failed"),
            _n=nw.col("runs").cast(nw.Float64()),
            _a=base_failed + JEFFREYS,
            _b=nw.col("training_size").cast(nw.Float64()) - base_failed + JEFFREYS,
        )
        .with_columns(_norm=beta_binomial_log_norm(nw.col("_n"), nw.col("_a"), nw.col("_b")))
    )
    ranked = runs.filter(nw.col("_counted") == 1).select(
        *on, _k=nw.col("start_time").rank(method="ordinal").over(*on)
    )
    rows = ranked.join(params, on=on)
    k = nw.col("_k").cast(nw.Float64())

    def chance(count: nw.Expr) -> nw.Expr:
        term = beta_binomial_log_term(count, nw.col("_n"), nw.col("_a"), nw.col("_b"))
        return (nw.col("_norm") + term).exp()

    tails = {}
    if s.spikes:
        tails["_p_up"] = nw.when(nw.col("_k") >= nw.col("_x")).then(chance(k)).sum()
    if s.drops:
        tails["_p_down"] = nw.when(nw.col("_k") - 1 <= nw.col("_x")).then(chance(k - 1)).sum()
    return rows.group_by(*on).agg(**tails)


#: The smallest chance told apart (its reciprocal is written as a whole number).
_LEAST_CHANCE: Final = 1e-6


def _chance_text(p: nw.Expr) -> nw.Expr:
    """``"1 in 2786"`` for a chance of 0.000359, ``"under 1 in 1000000"`` below a millionth."""
    under = nw.when(p < _LEAST_CHANCE).then(nw.lit("under ")).otherwise(nw.lit(""))
    whole = _whole(1 / p.clip(lower_bound=_LEAST_CHANCE))
    return nw.concat_str(under, nw.lit("1 in "), whole)


def _with_chances(stats: nw.LazyFrame[Any], s: _Settings) -> nw.LazyFrame[Any]:
    """The tail sums as chances: within ``[1e-300, 1]`` (an underflow to 0 stays a number
    under ``log`` and ``1 / x``), certain at the edges, null without training."""
    trained = nw.col("training_size") > 0
    tiny = 1e-300
    if s.spikes:  # no failure at all is certain to be matched or beaten
        up = nw.col("_p_up").clip(lower_bound=tiny, upper_bound=1.0)
        edge = nw.when(nw.col("failed") == 0).then(1.0).otherwise(up)
        stats = stats.with_columns(_p_up=nw.when(trained).then(edge))
    if s.drops:  # nor is every run failed
        down = nw.col("_p_down").clip(lower_bound=tiny, upper_bound=1.0)
        edge = nw.when(nw.col("failed") == nw.col("runs")).then(1.0).otherwise(down)
        stats = stats.with_columns(_p_down=nw.when(trained).then(edge))
    return stats


def _failure_anomalies(states: Any, s: _Settings) -> nw.LazyFrame[Any]:
    runs = _failure_runs(states, s)
    detect = runs.group_by("_gk", *s.keys, "bucket", "_season", drop_null_keys=False).agg(
        runs=nw.col("_counted").sum(), failed=nw.col("_failed").sum()
    )
    on = ["_gk", "bucket"]
    # each side's bounds are computed before the join, which Spark does not inline through
    n = nw.col("training_size")
    base_low, base_high = wilson(nw.col("_base_failed"), n, z=s.z)
    base = (
        _training_pairs(detect, detect, s)
        .group_by(*on)
        .agg(training_size=nw.col("_truns").sum(), _base_failed=nw.col("_tfailed").sum())
        .with_columns(
            expected=nw.when(n > 0).then(nw.col("_base_failed") / n.cast(nw.Float64())),
            lower=base_low,
            upper=base_high,
        )
    )
    runs_n = nw.col("runs")
    stats = (
        _judged(detect, s)
        .with_columns(
            observed=nw.when(runs_n > 0).then(nw.col("failed") / runs_n.cast(nw.Float64()))
        )
        .join(base, on=on, how="left")
        .with_columns(training_size=nw.col("training_size").fill_null(0))
    )
    stats = _with_chances(stats.join(_tails(runs, stats, s), on=on, how="left"), s)
    alpha = one_sided_level(s.z)
    factor = 1 + s.min_change
    above = (nw.col("_p_up") <= alpha) & (nw.col("observed") >= nw.col("expected") * factor)
    below = (nw.col("_p_down") <= alpha) & (nw.col("observed") * factor <= nw.col("expected"))
    # log10(1 / p): 3 is a chance of 1 in 1,000; negative for a drop
    rise, fall = (1 / nw.col("_p_up")).log(10), nw.col("_p_down").log(10)
    score: nw.Expr = rise if s.spikes else fall
    chance: nw.Expr = nw.col("_p_up") if s.spikes else nw.col("_p_down")
    if s.spikes and s.drops:
        score = nw.when(nw.col("_p_up") <= nw.col("_p_down")).then(rise).otherwise(fall)
        spike = nw.col("direction") == "spike"
        chance = nw.when(spike).then(nw.col("_p_up")).otherwise(nw.col("_p_down"))
    stats = _flag(stats.with_columns(score=score), s, above, below)
    many = nw.when(nw.col("direction") == "spike").then(nw.lit("many")).otherwise(nw.lit("few"))
    return _explain(
        stats,
        s,
        nw.concat_str(
            nw.lit("failure rate "),
            _tenths(nw.col("observed") * 100),
            nw.lit("% ("),
            nw.col("failed").cast(nw.String()),
            nw.lit(" of "),
            runs_n.cast(nw.String()),
            nw.lit(" runs) against "),
            _tenths(nw.col("expected") * 100),
            nw.lit("% expected; as "),
            many,
            nw.lit(" failures by chance: "),
            _chance_text(chance),
        ),
    )


def _flag(
    stats: nw.LazyFrame[Any], s: _Settings, above: nw.Expr, below: nw.Expr
) -> nw.LazyFrame[Any]:
    """Set ``anomalous`` and ``direction`` on buckets with enough runs and training."""
    assessed = (nw.col("runs") >= s.min_runs) & (nw.col("training_size") >= s.min_training)
    spike = (assessed & above).fill_null(value=False) if s.spikes else nw.lit(value=False)
    drop = (assessed & below).fill_null(value=False) if s.drops else nw.lit(value=False)
    none = nw.lit(None, dtype=nw.String())
    return stats.with_columns(
        nw.col("training_size").fill_null(0),
        anomalous=spike | drop,
        direction=nw.when(spike)
        .then(nw.lit("spike"))
        .otherwise(nw.when(drop).then(nw.lit("drop")).otherwise(none)),
    )


def _explain(stats: nw.LazyFrame[Any], s: _Settings, sentence: nw.Expr) -> nw.LazyFrame[Any]:
    """Add ``reason`` to flagged buckets and keep the output columns, ordered."""
    result = stats.select(
        *s.keys,
        "bucket",
        metric=nw.lit(s.metric),
        runs=nw.col("runs"),
        observed=nw.col("observed"),
        expected=nw.col("expected"),
        lower=nw.col("lower"),
        upper=nw.col("upper"),
        score=nw.col("score"),
        training_size=nw.col("training_size"),
        anomalous=nw.col("anomalous"),
        direction=nw.col("direction"),
        reason=nw.when(nw.col("anomalous")).then(sentence),
    )
    return result.sort([*s.keys, "bucket"], nulls_last=True)


def detect_anomalies(
    states: Frame,
    *,
    by: str | Sequence[str] | None = "task_name",
    metric: AnomalyMetric = "run_time",
    every: str = "1d",
    training: str | None = None,
    min_training: int = 14,
    min_runs: int = 5,
    z: float = 3.0,
    direction: Direction | None = None,
    seasonality: Seasonality | None = None,
    min_change: float = 1.0,
    origin: datetime | None = None,
    since: datetime | None = None,
) -> Frame:
    """Flag the time buckets in which a group's durations or failure rate left their normal range.

    Every bucket of every group is compared with the group's runs in the
    ``training`` window before it (the bucket itself excluded). Durations:
    the bucket's median log duration gets a robust z-score,
    ``(median - training median) / (1.2533 * 1.4826 * MAD / sqrt(runs))``,
    and is flagged outside ``z`` standard errors *and* outside ``1 +
    min_change`` times the expected value. Failure rates: flagged when the
    bucket's failures are that unlikely if nothing changed (a one-sided
    beta-binomial test of its failures against the training's rate, with that
    rate's own uncertainty, at the level of ``z``: 0.00135 for 3) and the
    rate moved by ``1 + min_change`` times. ``docs/anomalies.md`` gives the
    method and where each default comes from.

    Args:
        states: a states frame of any supported engine.
        by: grouping column(s) constant within a run; ``None`` for one series.
        metric: ``"run_time"``, ``"end_to_end"``, ``"queue_wait"``,
            ``"lateness"``, ``"retry_wait"`` (the functions of the same name)
            or ``"failure_rate"``.
        every: the bucket width (``"1h"``, ``"1d"``), aligned to the epoch (UTC).
        training: how far back the training window reaches; ``None``: ``"14d"``,
            or ``"98d"`` with ``seasonality="day_of_week"`` (14 weeks: 14
            buckets of the same weekday, as 14 days hold 14 daily buckets).
        min_training: the fewest training runs for a bucket to be judged.
        min_runs: the fewest runs (durations, or completed + failed runs) in
            the bucket for it to be judged.
        z: how many standard errors from the expected median is an anomaly
            (durations); for failure rates, the level of the test is the
            one-sided normal tail beyond ``z`` (0.00135 for 3), and the
            training's Wilson interval (``lower``, ``upper``) is taken at ``z``.
        direction: ``"spike"``, ``"drop"`` or ``"both"``; ``None``: ``"both"``
            for durations, ``"spike"`` (more failures) for failure rates.
        seasonality: ``"hour_of_day"`` (``every`` of at most 1h) or
            ``"day_of_week"`` (at most 1d): train only on buckets at the same
            hour of day, or day of week.
        min_change: the smallest relative change that is an anomaly: 1.0
            means at least twice (or at most half) the expected value.
        origin: a bucket boundary instead of the epoch (aware): with the
            time of a check and ``every="1d"``, the last bucket is the 24
            hours before it, a trailing window (what ``trs-analytics check``
            does for failure rates).
        since: judge only the buckets that end after this time (aware);
            earlier buckets still train them. What a check of the last day
            needs: the rows of older buckets are neither computed nor
            returned, and each training run is compared once, not once per
            bucket it trains. ``None``: every bucket.

    Returns:
        The kind of frame given, one row per group and bucket with runs,
        ordered by group and bucket: the ``by`` columns, ``bucket`` (its
        start, UTC), ``metric``, ``runs`` (durations, or completed + failed
        runs, in the bucket), ``observed``, ``expected``, ``lower``,
        ``upper`` (seconds for durations, rates for failure rates),
        ``score`` (robust z; for failure rates ``log10(1 / p)`` of the
        test's chance ``p``, negative for a drop), ``training_size`` (training runs),
        ``anomalous``, ``direction`` (``"spike"``, ``"drop"`` or null) and
        ``reason`` (a sentence, null when normal).

    Raises:
        SchemaError: a required or ``by`` column is missing.
        ConfigurationError: an option is not valid.

    Examples:
        >>> import trs_analytics as ta
        >>> from trs_analytics.testing import generate_planted
        >>> planted = generate_planted(seed=1, n_tasks=3, days=21, spikes=1, failure_jumps=1)
        >>> found = ta.detect_anomalies(planted.states, by="task_name")
        >>> flagged = found.filter("anomalous")
        >>> planted_spike = planted.truth.filter(kind="duration_spike")
        >>> flagged.select("task_name", "bucket").equals(planted_spike.select("task_name", "bucket"))
        True
        >>> flagged["reason"].to_list()
        ['median run_time 2.9 times the expected (robust z 8.5)']
        >>> rates = ta.detect_anomalies(planted.states, metric="failure_rate").filter("anomalous")
        >>> rates["reason"].to_list()
        ['failure rate 50.0% (12 of 24 runs) against 1.5% expected; as many failures by chance: under 1 in 1000000']
        >>> found.columns[1:]
        ['bucket', 'metric', 'runs', 'observed', 'expected', 'lower', 'upper', 'score', 'training_size', 'anomalous', 'direction', 'reason']
    """
    s = _Settings(
        AnomalyOptions(
            by=by,
            metric=metric,
            every=every,
            training=training,
            min_training=min_training,
            min_runs=min_runs,
            z=z,
            direction=direction,
            seasonality=seasonality,
            min_change=min_change,
            origin=origin,
            since=since,
        )
    )
    require_columns(lazy(states, caller="detect_anomalies"), s.keys, caller="detect_anomalies")
    if s.metric == "failure_rate":
        result = _failure_anomalies(states, s)
    else:
        result = _duration_anomalies(states, s)
    return finish(result, states, timestamps=["bucket"], counts=["runs", "training_size"])

"""SLA rules: typed rules read from TOML text, and each rule's compliance and breaches.

A rule selects task runs by task, flow or deployment name, each a glob
(``"extract*"``; several selectors must all match), and sets at least one check:

==================  ==========================================================
``max_run_time``    each run's run time (all attempts, as :func:`run_time`)
``max_running``     the time a run still Running or Pending has been so, at ``now``
``max_lateness``    each run's first RUNNING state minus its expected start
``min_success_rate`` completed / (completed + failed) per ``window`` (default 1d)
``freshness``       the time since the last COMPLETED run, at ``now``
==================  ==========================================================

Durations are strings read by :func:`trs_analytics._time.parse_duration`
(``"90s"``, ``"10m"``, ``"1h30m"``, ``"7d"``). Reading the file is the use
case's job (:func:`trs_analytics.check.load_rules`); this module only parses
text, so the metrics stay free of I/O.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Generic, NamedTuple

import narwhals as nw

from trs_analytics._time import micros_at, parse_duration
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.metrics._buckets import bucket_of, duration_micros
from trs_analytics.metrics._common import (
    RUN,
    is_type,
    outcomes,
)
from trs_analytics.metrics._frames import Frame, finish, schema_of
from trs_analytics.metrics._run_table import is_run_table, per_run
from trs_analytics.schema import EXPECTED_START, FAILURE_TYPES

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["CHECKS", "SlaReport", "SlaRule", "glob_regex", "parse_rules", "sla_report"]

#: The checks a rule can set, in the order they are reported.
CHECKS: Final = ("max_run_time", "max_running", "max_lateness", "min_success_rate", "freshness")

#: The selectors a rule can use: rule key -> the states column it matches.
SELECTORS: Final = {"task": "task_name", "flow": "flow_name", "deployment": "deployment_id"}

_KEYS: Final = ("name", *SELECTORS, *CHECKS, "window")


@dataclass(frozen=True)
class SlaRule:
    """One SLA rule: what it selects (globs) and the limits it sets (``None``: not checked).

    Examples:
        >>> SlaRule(name="etl", task="extract*", max_run_time=timedelta(minutes=5)).checks()
        ('max_run_time',)
    """

    name: str
    task: str | None = None
    flow: str | None = None
    deployment: str | None = None
    max_run_time: timedelta | None = None
    max_running: timedelta | None = None
    max_lateness: timedelta | None = None
    min_success_rate: float | None = None
    window: timedelta = timedelta(days=1)
    freshness: timedelta | None = None

    def checks(self) -> tuple[str, ...]:
        """The checks this rule sets, in :data:`CHECKS` order."""
        return tuple(c for c in CHECKS if getattr(self, c) is not None)

    def selectors(self) -> dict[str, str]:
        """Selector key -> glob, for the selectors this rule uses."""
        return {k: v for k in SELECTORS if (v := getattr(self, k)) is not None}


class SlaReport(NamedTuple, Generic[Frame]):
    """What :func:`sla_report` returns: two frames of the kind it was given."""

    compliance: Frame
    breaches: Frame


def _bad(source: str, where: str, text: str) -> ConfigurationError:
    return ConfigurationError(f"{source}: {where}: {text}")


def _duration(value: object, source: str, where: str, key: str) -> timedelta:
    try:
        span = parse_duration(value) if isinstance(value, str) else None
    except ConfigurationError as err:  # longer than a century
        raise _bad(source, where, f"{key} = {value!r}: {err}") from err
    if span is None or span <= timedelta(0):
        hint = "Hint: write a positive duration as a string, such as '90s', '10m', '1h30m' or '7d'."
        raise _bad(source, where, f"{key} = {value!r} is not a duration. {hint}")
    return span


#: The longest name or glob a rule may select by (Prefect names are short).
_MAX_GLOB = 1_000


def _rule(index: int, raw: object, source: str) -> SlaRule:
    where = f"rule {index}"
    if not isinstance(raw, dict):
        msg = f"is {type(raw).__name__}, not a table. Hint: write each rule as [[rule]] with keys."
        raise _bad(source, where, msg)
    if isinstance(raw.get("name"), str):
        where = f"rule {index} ({raw['name']!r})"
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        msg = f"unknown key {unknown[0]!r}. Hint: a rule takes {', '.join(_KEYS)}."
        raise _bad(source, where, msg)
    picked = {k: raw[k] for k in SELECTORS if k in raw}
    if not picked or not all(isinstance(v, str) and v for v in picked.values()):
        msg = (
            'selects nothing. Hint: add task = "name-or-glob", flow = ... or deployment = ... '
            '("*" selects every run).'
        )
        raise _bad(source, where, msg)
    if too_long := [k for k, v in picked.items() if len(v) > _MAX_GLOB]:
        msg = (
            f"{too_long[0]} is a glob of {len(picked[too_long[0]]):,} characters. Hint: a name "
            f"or glob is at most {_MAX_GLOB} characters; select with '*' instead."
        )
        raise _bad(source, where, msg)
    values: dict[str, Any] = dict(picked)
    for key in ("max_run_time", "max_running", "max_lateness", "freshness", "window"):
        if key in raw:
            values[key] = _duration(raw[key], source, where, key)
    if "min_success_rate" in raw:
        rate = raw["min_success_rate"]
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            msg = (
                f"min_success_rate = {rate!r} is not a rate. Hint: use a number from 0 to 1 (0.95)."
            )
            raise _bad(source, where, msg)
        values["min_success_rate"] = float(rate)
    if not any(values.get(c) is not None for c in CHECKS):
        msg = f"sets no check. Hint: set at least one of {', '.join(CHECKS)}."
        raise _bad(source, where, msg)
    if "window" in raw and "min_success_rate" not in raw:
        msg = "window is set without min_success_rate. Hint: window sizes the success rate."
        raise _bad(source, where, msg)
    name = raw.get("name", next(f"{k}={v}" for k, v in picked.items()))
    return SlaRule(name=str(name), **values)


def parse_rules(text: str, *, source: str = "<rules>") -> list[SlaRule]:
    """Read SLA rules from TOML text: an array of ``[[rule]]`` tables.

    Args:
        text: the TOML document.
        source: where it came from (a file name), for error messages.

    Raises:
        ConfigurationError: the TOML is invalid, or a rule is (naming the
            source, the rule and the key, with a hint).

    Examples:
        >>> rules = parse_rules('''
        ... [[rule]]
        ... name = "extract"
        ... task = "extract*"
        ... max_run_time = "10m"
        ... min_success_rate = 0.95
        ... window = "7d"
        ... ''')
        >>> rules[0].checks(), rules[0].window
        (('max_run_time', 'min_success_rate'), datetime.timedelta(days=7))
        >>> parse_rules('[[rule]]\\ntask = "x"\\nmax_run_time = "ten"', source="sla.toml")
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: sla.toml: rule 1: max_run_time = 'ten' is not a duration. Hint: write a positive duration as a string, such as '90s', '10m', '1h30m' or '7d'.
    """
    if not isinstance(text, str):
        msg = f"parse_rules takes TOML text (a str), got {type(text).__name__}."
        raise ConfigurationError(msg)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        msg = f"{source} is not valid TOML ({err}). Hint: see docs/sla.md for an example file."
        raise ConfigurationError(msg) from err
    extra = sorted(set(document) - {"rule"})
    raw = document.get("rule")
    if extra or not isinstance(raw, list) or not raw:
        found = f"top-level key {extra[0]!r}" if extra else "no [[rule]] table"
        msg = f"{source}: {found}. Hint: write each rule as a [[rule]] table (docs/sla.md)."
        raise ConfigurationError(msg)
    rules = [_rule(i, item, source) for i, item in enumerate(raw, start=1)]
    names = [r.name for r in rules]
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        msg = f"{source}: two rules are named {twice!r}. Hint: give each rule its own name."
        raise ConfigurationError(msg)
    return rules


# -- the report ----------------------------------------------------------------------

_S: Final = 1_000_000.0

_COMPLIANCE: Final = (
    "rule",
    "check",
    "bucket",
    "runs",
    "breaches",
    "compliance",
    "value",
    "limit",
    "ok",
)
_BREACHES: Final = (
    "rule",
    "check",
    "bucket",
    RUN,
    "task_name",
    "flow_name",
    "at",
    "value",
    "limit",
)


def glob_regex(glob: str) -> str:
    """A glob (``*`` any text, ``?`` one character) as an anchored regex every engine reads.

    Examples:
        >>> glob_regex("extract_*.v?")
        '^extract_.*\\\\.v.$'
    """
    out = []
    for char in glob:
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char in ".^$+(){}[]|\\":
            out.append("\\" + char)
        else:
            out.append(char)
    return "^" + "".join(out) + "$"


def _runs(states: Any, rules: Sequence[SlaRule]) -> nw.LazyFrame[Any]:
    """One row per run with what every check needs (microseconds)."""
    names = schema_of(states).names()
    needs = sorted({SELECTORS[k] for r in rules for k in r.selectors()})
    if any(r.max_lateness is not None for r in rules):
        needs.append(EXPECTED_START)
    running = is_type("RUNNING")
    carry = [c for c in ("task_name", "flow_name", *needs) if c in names]
    extra = {
        "_ran": running.cast(nw.Int64()).max(),
        "_first_run": nw.when(running).then(nw.col("_us")).min(),
    }
    runs = per_run(
        states,
        caller="sla_report",
        needs=needs,
        build=lambda tl: outcomes(tl, list(dict.fromkeys(carry)), extra=extra, spent=running),
    )
    return runs.with_columns(_first_run=nw.col("_run_from")) if is_run_table(states) else runs


def _selected(runs: nw.LazyFrame[Any], rule: SlaRule) -> nw.LazyFrame[Any]:
    for key, glob in rule.selectors().items():
        runs = runs.filter(nw.col(SELECTORS[key]).str.contains(glob_regex(glob), literal=False))
    return runs


def _shape(frame: nw.LazyFrame[Any], rule: SlaRule, check: str, columns: Sequence[str]) -> Any:
    """Give a check's rows the report's columns and types, so that checks concatenate."""
    types: dict[str, Any] = {
        "rule": nw.String(),
        "check": nw.String(),
        "bucket": nw.Int64(),
        "runs": nw.Int64(),
        "breaches": nw.Int64(),
        "compliance": nw.Float64(),
        "value": nw.Float64(),
        "limit": nw.Float64(),
        "ok": nw.Boolean(),
        RUN: nw.String(),
        "task_name": nw.String(),
        "flow_name": nw.String(),
        "at": nw.Int64(),
    }
    present = frame.collect_schema().names()
    frame = frame.with_columns(rule=nw.lit(rule.name), check=nw.lit(check))
    return frame.select(
        (nw.col(c) if c in [*present, "rule", "check"] else nw.lit(None)).cast(types[c]).alias(c)
        for c in columns
    )


def _per_run_check(
    runs: nw.LazyFrame[Any], rule: SlaRule, check: str, value: nw.Expr, limit: timedelta, every: str
) -> tuple[Any, Any]:
    """A limit on a per-run value: compliance per bucket, breaching runs."""
    limit_s = limit / timedelta(seconds=1)
    measured = runs.with_columns(
        _value=value.cast(nw.Float64()) / _S, bucket=bucket_of(nw.col("start_time"), every)
    ).filter(~nw.col("_value").is_null())
    measured = measured.with_columns(_breach=(nw.col("_value") > limit_s).cast(nw.Int64()))
    per_bucket = (
        measured.group_by("bucket")
        .agg(runs=nw.len(), breaches=nw.col("_breach").sum(), value=nw.col("_value").max())
        .with_columns(
            compliance=1.0 - nw.col("breaches").cast(nw.Float64()) / nw.col("runs"),
            limit=nw.lit(limit_s),
            ok=nw.col("breaches") == 0,
        )
    )
    broken = measured.filter(nw.col("_breach") == 1).with_columns(
        at=nw.col("start_time"), value=nw.col("_value"), limit=nw.lit(limit_s)
    )
    return (
        _shape(per_bucket, rule, check, _COMPLIANCE),
        _shape(broken, rule, check, _BREACHES),
    )


def _success_check(runs: nw.LazyFrame[Any], rule: SlaRule) -> tuple[Any, Any]:
    """Success rate per ``window``: compliance per window, windows below the minimum."""
    assert rule.min_success_rate is not None
    window = f"{duration_micros(rule.window, argument='window')}us"
    final = nw.col("final_type")
    finished = runs.filter((final == "COMPLETED") | final.is_in(FAILURE_TYPES))
    per_window = (
        finished.with_columns(
            bucket=bucket_of(nw.col("start_time"), window),
            _failed=final.is_in(FAILURE_TYPES).cast(nw.Int64()),
        )
        .group_by("bucket")
        .agg(runs=nw.len(), breaches=nw.col("_failed").sum())
        .with_columns(
            compliance=1.0 - nw.col("breaches").cast(nw.Float64()) / nw.col("runs"),
            limit=nw.lit(rule.min_success_rate),
        )
        .with_columns(value=nw.col("compliance"), ok=nw.col("compliance") >= nw.col("limit"))
    )
    broken = per_window.filter(~nw.col("ok")).with_columns(at=nw.col("bucket"))
    return (
        _shape(per_window, rule, "min_success_rate", _COMPLIANCE),
        _shape(broken, rule, "min_success_rate", _BREACHES),
    )


def _freshness_check(
    runs: nw.LazyFrame[Any], rule: SlaRule, now_us: int, every: str
) -> tuple[Any, Any]:
    """Time since the last COMPLETED run at ``now``: one row; a breach when too long (or never)."""
    assert rule.freshness is not None
    limit_s = rule.freshness / timedelta(seconds=1)
    done = nw.col("final_type") == "COMPLETED"
    last = runs.select(
        runs=done.cast(nw.Int64()).sum(),
        at=nw.when(done).then(nw.col("end_time")).max(),
    ).with_columns(
        value=(nw.lit(now_us) - nw.col("at")).cast(nw.Float64()) / _S,
        limit=nw.lit(limit_s),
        bucket=bucket_of(nw.lit(now_us), every),
    )
    last = last.with_columns(ok=(nw.col("value") <= nw.col("limit")).fill_null(value=False))
    last = last.with_columns(
        breaches=(~nw.col("ok")).cast(nw.Int64()), compliance=nw.col("ok").cast(nw.Float64())
    )
    broken = last.filter(~nw.col("ok"))
    # the past: each gap between consecutive completions longer than the limit
    ends = runs.filter(done).select(nw.col("end_time"))
    gaps = (
        ends.with_columns(_prev=nw.col("end_time").shift(1).over(order_by="end_time"))
        .with_columns(value=(nw.col("end_time") - nw.col("_prev")).cast(nw.Float64()) / _S)
        .filter(nw.col("value") > limit_s)
        .with_columns(
            at=nw.col("_prev"), limit=nw.lit(limit_s), bucket=bucket_of(nw.col("_prev"), every)
        )
    )
    return (
        _shape(last, rule, "freshness", _COMPLIANCE),
        nw.concat(
            [
                _shape(gaps, rule, "freshness", _BREACHES),
                _shape(broken, rule, "freshness", _BREACHES),
            ],
            how="vertical",
        ),
    )


def _over(still: nw.Expr, value: nw.Expr, limit_us: int) -> nw.Expr:
    """``value`` of a run that is ``still`` open, once it is over the limit; null before."""
    return nw.when(still & (value > limit_us)).then(value)


def sla_report(
    states: Frame,
    rules: Sequence[SlaRule],
    *,
    every: str = "1d",
    now: datetime | None = None,
) -> SlaReport[Frame]:
    """Check SLA rules: each rule's compliance per time bucket, and what broke it.

    Per check of each rule:

    - ``max_run_time`` / ``max_running`` / ``max_lateness``: runs are
      bucketed by their first state (``every`` wide, UTC); a bucket complies
      when none of its runs is over the limit. A run still RUNNING counts
      for ``max_run_time`` once its run time so far (at ``now``) is over the
      limit, not before. ``max_running`` holds each run still in a RUNNING-
      or PENDING-type state to a limit on the time since it entered it, at
      ``now`` (the age :func:`stuck_runs` measures); only runs over it count.
      A run that never ran has no lateness.
    - ``min_success_rate``: runs are bucketed by ``window`` (the rule's, not
      ``every``); the rate is completed / (completed + failed or crashed).
    - ``freshness``: one compliance row, at ``now``: the time since the last
      run that ended COMPLETED (no such run: a breach with a null value). Its
      breaches also list every past gap between two completions longer than
      the limit (``at``: the completion before the gap, ``value``: the gap).

    Args:
        states: a states frame of any supported engine.
        rules: the rules (:func:`parse_rules`, or
            :func:`trs_analytics.check.load_rules` for a file).
        every: the bucket width of the per-run checks (``"1h"``, ``"1d"``).
        now: when freshness is measured (aware); default: the current UTC time.

    Returns:
        An :class:`SlaReport` of two frames of the kind given.
        ``compliance``: ``rule``, ``check``, ``bucket``, ``runs`` (runs
        measured), ``breaches`` (runs over the limit; failed runs for the
        success rate; 0 or 1 for freshness), ``compliance`` (share of runs
        within the limit; the success rate), ``value`` (the worst run's value
        in seconds; the rate; the seconds since the last completion),
        ``limit`` (seconds or rate), ``ok``; ordered by rule, check, bucket.
        ``breaches``: ``rule``, ``check``, ``bucket``, ``task_run_id``,
        ``task_name``, ``flow_name`` (null for a window or freshness breach),
        ``at`` (the run's first state, the window's start, or the last
        completion), ``value``, ``limit``; ordered by rule, check, bucket, run, ``at``.

    Raises:
        ConfigurationError: no rules, or a bad ``every`` or ``now``.
        SchemaError: a column a rule needs is missing.

    Examples:
        >>> from datetime import UTC, datetime
        >>> import polars as pl
        >>> import trs_analytics as ta
        >>> t = lambda m: datetime(2026, 1, 1, 0, m, tzinfo=UTC)
        >>> states = pl.DataFrame({
        ...     "task_run_id": ["a", "a", "b", "b"], "task_name": ["extract"] * 4,
        ...     "type": ["RUNNING", "COMPLETED", "RUNNING", "FAILED"],
        ...     "name": ["Running", "Completed", "Running", "Failed"],
        ...     "timestamp": [t(0), t(2), t(1), t(9)],
        ... })
        >>> rules = ta.parse_rules('[[rule]]\\ntask = "ex*"\\nmax_run_time = "5m"\\nfreshness = "30m"')
        >>> report = ta.sla_report(states, rules, now=t(50))
        >>> report.compliance.select("check", "runs", "breaches", "value", "ok").rows()
        [('freshness', 1, 1, 2880.0, False), ('max_run_time', 2, 1, 480.0, False)]
        >>> report.breaches.select("check", "task_run_id", "value", "limit").rows()
        [('freshness', None, 2880.0, 1800.0), ('max_run_time', 'b', 480.0, 300.0)]
    """
    if not rules:
        msg = "sla_report() got no rules. Hint: pass parse_rules(text) or load_rules(path)."
        raise ConfigurationError(msg)
    if isinstance(rules, str) or not all(isinstance(r, SlaRule) for r in rules):
        msg = (
            f"sla_report() takes a list of SlaRule, got {type(rules).__name__} {rules!r:.40}. "
            "Hint: pass parse_rules(text) or load_rules(path)."
        )
        raise ConfigurationError(msg)
    duration_micros(every)
    now_us = micros_at(now)
    runs = _runs(states, rules)
    parts: list[tuple[Any, Any]] = []
    lateness = nw.col("_first_run") - nw.col(EXPECTED_START)
    age = nw.lit(now_us) - nw.col("end_time")  # in its latest state
    running = nw.col("final_type") == "RUNNING"
    finished = nw.col("terminal") & (nw.col("_ran") > 0)
    per_run: dict[str, Callable[[int], nw.Expr]] = {
        "max_run_time": lambda limit: (
            nw.when(finished)
            .then(nw.col("_run_us"))
            .otherwise(_over(running, nw.col("_run_us") + age, limit))
        ),
        "max_running": lambda limit: _over(
            nw.col("final_type").is_in(["RUNNING", "PENDING"]), age, limit
        ),
        "max_lateness": lambda _: nw.when(lateness >= 0).then(lateness),
    }
    for rule in rules:
        chosen = _selected(runs, rule)
        for check in rule.checks():
            if check in per_run:
                limit: timedelta = getattr(rule, check)
                value = per_run[check](duration_micros(limit))
                parts.append(_per_run_check(chosen, rule, check, value, limit, every))
            elif check == "min_success_rate":
                parts.append(_success_check(chosen, rule))
            else:
                parts.append(_freshness_check(chosen, rule, now_us, every))
    compliance = nw.concat([c for c, _ in parts], how="vertical").sort("rule", "check", "bucket")
    breaches = nw.concat([b for _, b in parts], how="vertical").sort(
        "rule", "check", "bucket", RUN, "at", nulls_last=True
    )
    return SlaReport(
        finish(compliance, states, timestamps=["bucket"], counts=["runs", "breaches"]),
        finish(breaches, states, timestamps=["bucket", "at"]),
    )

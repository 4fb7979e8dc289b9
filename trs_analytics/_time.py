"""Times and durations as the package reads and writes them: one owner for each.

A base module: it imports nothing of trs_analytics but its exceptions, so every
layer (fetch, storage, CLI) may call it.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal

from trs_analytics.exceptions import ConfigurationError

__all__ = [
    "EPOCH",
    "api_iso",
    "duration_micros",
    "epoch_micros",
    "iso",
    "micros_at",
    "parse_age",
    "parse_duration",
    "parse_iso",
    "parse_when",
]

#: One part of a duration: a number and a unit (Polars' spelling).
_PART: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d|w)", re.IGNORECASE)
#: The longest duration read: a century (longer ones overflow date arithmetic).
MAX_DURATION: Final = timedelta(days=36_525)
#: 1970-01-01T00:00Z: where microsecond timestamps count from, and the earliest
#: time read (Prefect has no state before 1970, and Python no year after 9999).
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
_UNIT_MICROS: Final = {
    "us": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 604_800_000_000,
}


def iso(when: datetime, *, timespec: Literal["auto", "seconds", "microseconds"] = "auto") -> str:
    """Format an aware datetime as ISO-8601 in UTC with a ``Z``.

    ``timespec="microseconds"`` is the form Prefect writes and expects in filters;
    ``"auto"`` leaves out microseconds that are zero (dataset markers, logs).

    Examples:
        >>> from datetime import timezone
        >>> iso(datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
        '2024-01-01T00:00:00Z'
        >>> iso(datetime(2024, 1, 1, tzinfo=UTC), timespec="microseconds")
        '2024-01-01T00:00:00.000000Z'
    """
    return when.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def api_iso(when: datetime) -> str:
    """Format an aware datetime as Prefect writes and expects it: UTC, microseconds, ``Z``.

    Examples:
        >>> from datetime import timezone
        >>> api_iso(datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
        '2024-01-01T00:00:00.000000Z'
    """
    return iso(when, timespec="microseconds")


def parse_iso(text: str) -> datetime:
    """Read a timestamp as a Prefect server writes it (ISO-8601, ``Z`` or an offset).

    Examples:
        >>> parse_iso("2024-01-01T00:00:00.5Z")
        datetime.datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=datetime.timezone.utc)
        >>> parse_iso("2024-01-01T01:00:00+01:00") == parse_iso("2024-01-01T00:00:00Z")
        True
    """
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def epoch_micros(when: datetime) -> int:
    """An aware datetime as microseconds since :data:`EPOCH` (as Parquet and the engines hold it).

    Examples:
        >>> epoch_micros(datetime(1970, 1, 2, tzinfo=UTC))
        86400000000
    """
    return (when - EPOCH) // _ONE_US


def micros_at(now: datetime | None, *, argument: str = "now") -> int:
    """An aware datetime (default: the current UTC time) as microseconds since the epoch.

    Raises:
        ConfigurationError: ``now`` is naive.

    Examples:
        >>> micros_at(datetime(1970, 1, 1, 0, 0, 2, tzinfo=UTC))
        2000000
    """
    when = now if now is not None else datetime.now(UTC)
    if not isinstance(when, datetime):
        msg = (
            f"{argument} must be an aware datetime, got {type(when).__name__} {when!r:.40}. "
            "Hint: pass datetime(2026, 1, 1, tzinfo=datetime.UTC), or leave it out for now."
        )
        raise ConfigurationError(msg)
    if when.tzinfo is None or when.utcoffset() is None:
        msg = (
            f"{argument}={when.isoformat()} is naive (no time zone). Hint: pass an aware "
            "datetime such as datetime(2026, 1, 1, tzinfo=datetime.UTC)."
        )
        raise ConfigurationError(msg)
    return epoch_micros(when)


def parse_age(text: str) -> timedelta | None:
    """Read an age such as ``"90s"``, ``"10m"``, ``"12h"``, ``"7d"`` or ``"2w"``; else ``None``.

    Examples:
        >>> parse_age("12h")
        datetime.timedelta(seconds=43200)
        >>> parse_age("1.5d")
        datetime.timedelta(days=1, seconds=43200)
        >>> parse_age("yesterday") is None
        True
    """
    return parse_duration(text)


def parse_duration(text: str) -> timedelta | None:
    """Read a duration such as ``"6h"``, ``"1h30m"``, ``"500ms"`` or ``"1.5d"``; else ``None``.

    Units: ``us``, ``ms``, ``s``, ``m``, ``h``, ``d``, ``w`` (fixed lengths; months vary),
    in either case (``"7D"`` too), except a capital ``M``: minutes or months is a
    guess, so ``"1M"`` is not read.
    The one parser of duration strings: ages (``--since 7d``), bucket widths
    (``every="6h"``) and windows (``window="7d"``) all read through it.

    Raises:
        ConfigurationError: ``text`` is not a string, or the duration is longer
            than :data:`MAX_DURATION` (a century).

    Examples:
        >>> parse_duration("1h30m"), parse_duration("250us")
        (datetime.timedelta(seconds=5400), datetime.timedelta(microseconds=250))
        >>> parse_duration("1mo") is None, parse_duration("7D"), parse_duration("1M") is None
        (True, datetime.timedelta(days=7), True)
        >>> parse_duration("99999999d")
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: duration '99999999d' is longer than a century (36525 days). Hint: give a shorter one, such as 30d.
    """
    if not isinstance(text, str):
        msg = f"a duration must be a string such as '7d', got {type(text).__name__}."
        raise ConfigurationError(msg)
    parts, at = [], 0
    while at < len(text):
        match = _PART.match(text, at)
        if match is None:
            break
        parts.append(match)
        at = match.end()
    if not parts or text[at:].strip() or any(m[2] == "M" for m in parts):
        return None
    micros = sum(round(float(m[1]) * _UNIT_MICROS[m[2].lower()]) for m in parts)
    if micros > MAX_DURATION // timedelta(microseconds=1):
        msg = (
            f"duration {text!r} is longer than a century ({MAX_DURATION.days} days). "
            "Hint: give a shorter one, such as 30d."
        )
        raise ConfigurationError(msg)
    return timedelta(microseconds=micros)


def duration_micros(text: str | timedelta, *, argument: str = "every") -> int:
    """Read a duration (``"6h"``, ``"1d"``, ``"1h30m"`` or a ``timedelta``) as microseconds.

    Raises:
        ConfigurationError: ``text`` is not a positive duration in fixed units.

    Examples:
        >>> duration_micros("1h30m"), duration_micros(timedelta(seconds=2))
        (5400000000, 2000000)
        >>> duration_micros("1mo")
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: every='1mo' is not a duration in fixed units. Hint: use a string such as '1h', '6h', '1d' or '1w' (units us, ms, s, m, h, d, w; months and years vary in length).
    """
    span = text if isinstance(text, timedelta) else parse_duration(text)
    if span is None:
        msg = (
            f"{argument}={text!r} is not a duration in fixed units. Hint: use a string "
            "such as '1h', '6h', '1d' or '1w' (units us, ms, s, m, h, d, w; months and "
            "years vary in length)."
        )
        raise ConfigurationError(msg)
    total = span // timedelta(microseconds=1)
    if total <= 0:
        msg = f"{argument}={text!r} must be a positive duration. Hint: use '1h', '1d' or '1w'."
        raise ConfigurationError(msg)
    return total


def parse_when(value: datetime | date | str, *, now: datetime | None = None) -> datetime:
    """Turn ``since``/``until`` into an aware UTC datetime.

    Accepts an aware ``datetime``; an ISO-8601 string with ``Z`` or an offset;
    a date (``2026-01-01``, read as midnight UTC); or an age before ``now``
    such as ``"90s"``, ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"``. Naive datetimes
    are refused: their time zone is a guess.

    Examples:
        >>> parse_when("2026-01-01T12:00:00+01:00")
        datetime.datetime(2026, 1, 1, 11, 0, tzinfo=datetime.timezone.utc)
        >>> parse_when("7d", now=datetime(2026, 1, 8, tzinfo=UTC))
        datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
        >>> parse_when("2026-01-01")
        datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
        >>> parse_when("2026-01-01T12:00:00")
        Traceback (most recent call last):
        ...
        trs_analytics.exceptions.ConfigurationError: time '2026-01-01T12:00:00' has no time zone. Hint: write it in UTC with a Z, such as 2026-01-01T12:00:00Z, or give an offset such as +02:00.
    """
    return _in_range(_parse_when(value, now=now), value)


def _in_range(when: datetime, value: object) -> datetime:
    if when < EPOCH:
        msg = (
            f"time {value!r} is before 1970, when no Prefect state can exist. "
            "Hint: give a later time, such as 2026-01-01 or 30d."
        )
        raise ConfigurationError(msg)
    return when


def _parse_when(value: datetime | date | str, *, now: datetime | None) -> datetime:
    if not isinstance(value, datetime | date | str):
        msg = (
            f"a time must be a datetime, a date or a string such as '7d', got "
            f"{type(value).__name__} {value!r:.40}."
        )
        raise ConfigurationError(msg)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            msg = (
                f"datetime {value.isoformat()} is naive (no time zone). Hint: use an aware "
                "datetime, for example datetime(2026, 1, 1, tzinfo=datetime.UTC)."
            )
            raise ConfigurationError(msg)
        return _utc(value, value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if (age := parse_age(value)) is not None:
        try:
            return (now or datetime.now(UTC)).astimezone(UTC) - age
        except OverflowError:
            return EPOCH - timedelta(microseconds=1)  # before 1970: refused
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as err:
        msg = (
            f"cannot read {value!r} as a time. Hint: use ISO-8601 such as "
            "2026-01-01T00:00:00Z, a date such as 2026-01-01, or an age such as 7d or 12h."
        )
        raise ConfigurationError(msg) from err
    if parsed.tzinfo is None:
        if len(text) == 10:  # a bare date
            return parsed.replace(tzinfo=UTC)
        msg = (
            f"time {value!r} has no time zone. Hint: write it in UTC with a Z, such as "
            f"{text}Z, or give an offset such as +02:00."
        )
        raise ConfigurationError(msg)
    return _utc(parsed, value)


def _utc(when: datetime, value: object) -> datetime:
    try:
        return when.astimezone(UTC)
    except OverflowError as err:  # 0001-01-01T00:00:00+01:00
        msg = f"time {value!r} is out of range. Hint: give a time after 1970."
        raise ConfigurationError(msg) from err

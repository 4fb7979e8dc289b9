"""Time windows: what ``since`` and ``until`` accept."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from trs_analytics.exceptions import ConfigurationError

__all__ = ["parse_when"]

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


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
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            msg = (
                f"datetime {value.isoformat()} is naive (no time zone). Hint: use an aware "
                "datetime, for example datetime(2026, 1, 1, tzinfo=datetime.UTC)."
            )
            raise ConfigurationError(msg)
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if match := _AGE.match(value):
        amount, unit = float(match[1]), _UNITS[match[2]]
        return (now or datetime.now(UTC)).astimezone(UTC) - timedelta(**{unit: amount})
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
    return parsed.astimezone(UTC)

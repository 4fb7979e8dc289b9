"""Time buckets and windows in integer microseconds, the same on every engine.

Polars truncates timestamps with ``dt.truncate("6h")``; DuckDB and Spark
have no truncation to a multiple of a unit. Computed on microseconds since
the epoch, a bucket is the same integer on every engine, and
:func:`~trs_analytics.metrics._frames.finish` turns it back into a timestamp.
The buckets are those of Polars' ``dt.truncate``: fixed widths are aligned to
the epoch (1970-01-01T00:00Z), weeks to Monday 1970-01-05.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Final

from trs_analytics._time import parse_duration
from trs_analytics.exceptions import ConfigurationError

if TYPE_CHECKING:
    import narwhals as nw

__all__ = ["bucket_of", "duration_micros", "parse_every"]

#: A week in microseconds.
_WEEK: Final = 604_800_000_000

#: Monday 1970-01-05, where Polars starts its weeks, in microseconds.
_MONDAY: Final = 4 * 86_400_000_000


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


def parse_every(every: str) -> str:
    """Check a bucket width such as ``"1d"`` or ``"6h"`` and return it.

    Raises:
        ConfigurationError: ``every`` is not a positive duration in fixed units.

    Examples:
        >>> parse_every("6h")
        '6h'
    """
    duration_micros(every)
    return every


def bucket_of(us: nw.Expr, every: str) -> nw.Expr:
    """The start of the ``every``-wide bucket holding ``us`` (microseconds), in microseconds.

    Examples:
        >>> import narwhals as nw
        >>> import polars as pl
        >>> day = 86_400_000_000
        >>> frame = nw.from_native(pl.DataFrame({"us": [day + 7, 5 * day + 1]}))
        >>> frame.select(d=bucket_of(nw.col("us"), "1d"), w=bucket_of(nw.col("us"), "1w")).rows()
        [(86400000000, -259200000000), (432000000000, 345600000000)]
    """
    width = duration_micros(every)
    origin = _MONDAY if width % _WEEK == 0 else 0
    shifted = us - origin
    # floor division that rounds towards minus infinity on every engine
    return shifted - (shifted % width + width) % width + origin

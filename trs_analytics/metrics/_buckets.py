"""Time buckets and windows in integer microseconds, the same on every engine.

Polars truncates timestamps with ``dt.truncate("6h")``; DuckDB and Spark
have no truncation to a multiple of a unit. Computed on microseconds since
the epoch, a bucket is the same integer on every engine, and
:func:`~trs_analytics.metrics._frames.finish` turns it back into a timestamp.
The buckets are those of Polars' ``dt.truncate``: fixed widths are aligned to
the epoch (1970-01-01T00:00Z), weeks to Monday 1970-01-05.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from trs_analytics._time import EPOCH, duration_micros, epoch_micros

if TYPE_CHECKING:
    import narwhals as nw

__all__ = ["bucket_of", "bucket_start", "duration_micros", "parse_every"]

#: A week in microseconds.
_WEEK: Final = 604_800_000_000

#: Monday 1970-01-05, where Polars starts its weeks, in microseconds.
_MONDAY: Final = 4 * 86_400_000_000


def parse_every(every: str, *, argument: str = "every") -> str:
    """Check a bucket width such as ``"1d"`` or ``"6h"`` and return it.

    ``argument`` names it in the error (``period`` where it is a period).

    Raises:
        ConfigurationError: ``every`` is not a positive duration in fixed units.

    Examples:
        >>> parse_every("6h")
        '6h'
    """
    duration_micros(every, argument=argument)
    return every


def bucket_of(us: nw.Expr, every: str, *, origin: int | None = None) -> nw.Expr:
    """The start of the ``every``-wide bucket holding ``us`` (microseconds), in microseconds.

    ``origin`` (microseconds since the epoch) is a bucket boundary instead of
    the epoch (or, for weeks, Monday 1970-01-05): with the time of a check, the
    bucket that ends at that time is the trailing ``every`` before it.

    Examples:
        >>> import narwhals as nw
        >>> import polars as pl
        >>> day = 86_400_000_000
        >>> frame = nw.from_native(pl.DataFrame({"us": [day + 7, 5 * day + 1]}))
        >>> frame.select(d=bucket_of(nw.col("us"), "1d"), w=bucket_of(nw.col("us"), "1w")).rows()
        [(86400000000, -259200000000), (432000000000, 345600000000)]
        >>> frame.select(d=bucket_of(nw.col("us"), "1d", origin=day // 2)).rows()
        [(43200000000,), (388800000000,)]
    """
    return _floor(us, duration_micros(every), origin)  # type: ignore[no-any-return]


def bucket_start(when: datetime, every: str) -> datetime:
    """The start of the ``every``-wide bucket holding the aware datetime ``when`` (UTC).

    The same bucket as :func:`bucket_of` gives on a frame.

    Examples:
        >>> from datetime import UTC
        >>> bucket_start(datetime(2026, 1, 7, 15, 30, tzinfo=UTC), "1d")
        datetime.datetime(2026, 1, 7, 0, 0, tzinfo=datetime.timezone.utc)
        >>> bucket_start(datetime(2026, 1, 7, 15, 30, tzinfo=UTC), "1w").strftime("%A %d")
        'Monday 05'
    """
    micros = epoch_micros(when)
    return EPOCH + timedelta(microseconds=_floor(micros, duration_micros(every)))


def _floor(us: Any, width: int, origin: int | None = None) -> Any:
    """``us`` (an integer or an expression of one) down to ``origin`` plus a multiple of
    ``width`` (default origin: the epoch; for weeks, Monday)."""
    if origin is None:
        origin = _MONDAY if width % _WEEK == 0 else 0
    shifted = us - origin
    # floor division that rounds towards minus infinity on every engine
    return shifted - (shifted % width + width) % width + origin

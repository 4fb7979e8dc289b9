"""Random numbers and ids as Polars expressions: a hash of a row key, the seed and a stream.

Every generator draws this way, so no random state is carried between rows: ten
million rows take seconds, and the same seed gives the same frame (with the same
Polars version).
"""

from __future__ import annotations

import math

import polars as pl


def uniform(key: pl.Expr, seed: int, stream: int) -> pl.Expr:
    """A uniform number in (0, 1) per row: a hash of ``key`` for this seed and stream.

    Examples:
        >>> import polars as pl
        >>> u = pl.select(uniform(pl.int_range(1000), seed=1, stream=2)).to_series()
        >>> bool(u.min() > 0 and u.max() < 1), round(u.mean(), 1)
        (True, 0.5)
    """
    bits = key.hash(seed=seed * 7919 + stream * 104_729 + 1) // (1 << 11)
    return (bits.cast(pl.Float64) + 0.5) / float(1 << 53)


def normal(key: pl.Expr, seed: int, stream: int) -> pl.Expr:
    """A standard normal number per row (Box-Muller on two uniform streams)."""
    radius = (-2.0 * uniform(key, seed, stream).log()).sqrt()
    return radius * (2 * math.pi * uniform(key, seed, stream + 1)).cos()


def pick(options: tuple[str, ...], index: pl.Expr) -> pl.Expr:
    """The ``index``-th (modulo length) of ``options``."""
    return pl.lit(pl.Series(options)).gather(index % len(options))


def uuid(kind: int, seed: int, index: pl.Expr) -> pl.Expr:
    """A UUID-shaped string, unique per (seed, kind, index).

    Examples:
        >>> import polars as pl
        >>> pl.select(uuid(2, 7, pl.lit(42))).item()
        '00000007-0002-7000-8000-000000000042'
    """
    head = f"{seed % 100_000_000:08d}-{kind:04d}-7000-8000-"
    return pl.concat_str(pl.lit(head), index.cast(pl.String).str.zfill(12))

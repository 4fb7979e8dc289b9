"""Exact beta-binomial chances, by another method than the package's: rational arithmetic.

The package sums ``exp(log-gamma ...)`` terms on the engine; here each
probability is a product of rising factorials in :class:`fractions.Fraction`
(``B(k + a, n - k + b) / B(a, b)`` for half-integer ``a``, ``b``), exact until
the final ``float``. The test the package makes: ``k`` failures of ``n``
runs, against a training of ``f`` failures of ``m`` (Jeffreys' prior).
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache

HALF = Fraction(1, 2)


def _rising(x: Fraction, count: int) -> Fraction:
    product = Fraction(1)
    for i in range(count):
        product *= x + i
    return product


@cache
def pmf(n: int, f: int, m: int) -> tuple[Fraction, ...]:
    """P(k failures of n) for k = 0..n, the rate Beta(f + 1/2, m - f + 1/2)."""
    a, b = f + HALF, m - f + HALF
    whole = _rising(a + b, n)
    return tuple(math.comb(n, k) * _rising(a, k) * _rising(b, n - k) / whole for k in range(n + 1))


def upper(x: int, n: int, f: int, m: int) -> float:
    """The chance of ``x`` failures of ``n`` or more."""
    return float(sum(pmf(n, f, m)[x:]))


def lower(x: int, n: int, f: int, m: int) -> float:
    """The chance of ``x`` failures of ``n`` or fewer."""
    return float(sum(pmf(n, f, m)[: x + 1]))


def binomial(n: int, p: float) -> list[float]:
    """P(k of n) for k = 0..n at rate ``p``."""
    return [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]

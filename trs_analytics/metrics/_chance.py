"""Chances as narwhals expressions: the log-gamma function and the beta-binomial distribution.

narwhals has no special functions, and a metric must run on every engine, so
the log-gamma function is written here with the operations every engine has
(``+ - * /``, ``log``): Stirling's series at ``x + 10``, less the logarithm of
``x (x + 1) ... (x + 9)`` (the recurrence ``Γ(x + 1) = x Γ(x)``). Four terms
of the series at 10 or more leave an error under ``1 / (1188 * 10**9)``, about
1e-12; the rest is the float rounding of the terms.

The beta-binomial distribution is the number of failures among ``n`` runs when
the failure probability is itself uncertain, Beta(``a``, ``b``): with ``a`` =
failures + 1/2 and ``b`` = successes + 1/2 of a training window (Jeffreys'
prior), it is how many of ``n`` new runs fail if nothing changed, the
training's own uncertainty included. Its probability of ``k`` is
``exp(beta_binomial_log_norm(n, a, b) + beta_binomial_log_term(k, n, a, b))``
(split so that the part without ``k`` is computed once per window).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import narwhals as nw

__all__ = [
    "JEFFREYS",
    "beta_binomial_log_norm",
    "beta_binomial_log_term",
    "log_gamma",
    "one_sided_level",
]

#: The prior of a rate (Jeffreys': Beta(1/2, 1/2)), added to failures and successes.
JEFFREYS: Final = 0.5

#: ``log(x (x+1) ... (x+9))`` is taken off Stirling's series at ``x + 10``.
_SHIFT: Final = 10

_HALF_LOG_TAU: Final = 0.5 * math.log(2 * math.pi)


def one_sided_level(z: float) -> float:
    """The chance that a standard normal value exceeds ``z``: the level of a one-sided test at ``z``.

    Examples:
        >>> round(one_sided_level(3.0), 6), round(one_sided_level(1.959964), 4)
        (0.00135, 0.025)
    """
    return 0.5 * math.erfc(z / math.sqrt(2))


def log_gamma(x: nw.Expr) -> nw.Expr:
    """``ln Γ(x)`` for ``0 < x < 1e30``, to about 1e-12, on every engine.

    Examples:
        >>> import narwhals as nw
        >>> import polars as pl
        >>> frame = nw.from_native(pl.DataFrame({"x": [0.5, 1.0, 7.0, 1234.5]}))
        >>> got = frame.select(g=log_gamma(nw.col("x")))["g"].to_list()
        >>> [abs(g - math.lgamma(x)) < 1e-10 for g, x in zip(got, [0.5, 1.0, 7.0, 1234.5])]
        [True, True, True, True]
    """
    w = x + _SHIFT
    inverse = 1 / w
    square = inverse * inverse
    series = inverse * (1 / 12 - square * (1 / 360 - square * (1 / 1260 - square / 1680)))
    stirling = (w - 0.5) * w.log() - w + _HALF_LOG_TAU + series
    product = x
    for i in range(1, _SHIFT):
        product = product * (x + i)
    return stirling - product.log()


def beta_binomial_log_norm(n: nw.Expr, a: nw.Expr, b: nw.Expr) -> nw.Expr:
    """The part of the beta-binomial log probability that does not depend on ``k``.

    ``ln Γ(n+1) - ln Γ(n+a+b) + ln Γ(a+b) - ln Γ(a) - ln Γ(b)``.
    """
    return log_gamma(n + 1) - log_gamma(n + a + b) + log_gamma(a + b) - log_gamma(a) - log_gamma(b)


def beta_binomial_log_term(k: nw.Expr, n: nw.Expr, a: nw.Expr, b: nw.Expr) -> nw.Expr:
    """The part that does: ``ln Γ(k+a) + ln Γ(n-k+b) - ln Γ(k+1) - ln Γ(n-k+1)``.

    Examples:
        With a = b = 1 (a uniform rate) every count of 0..n is as likely:

        >>> import narwhals as nw
        >>> import polars as pl
        >>> frame = nw.from_native(pl.DataFrame({"k": [0.0, 1.0, 2.0, 3.0], "n": [3.0] * 4}))
        >>> one = nw.lit(1.0)
        >>> log_p = beta_binomial_log_norm(nw.col("n"), one, one) + beta_binomial_log_term(
        ...     nw.col("k"), nw.col("n"), one, one
        ... )
        >>> [round(p, 12) for p in frame.select(p=log_p.exp())["p"]]
        [0.25, 0.25, 0.25, 0.25]
    """
    return log_gamma(k + a) + log_gamma(n - k + b) - log_gamma(k + 1) - log_gamma(n - k + 1)

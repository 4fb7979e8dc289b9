"""Time windows: what ``since`` and ``until`` accept (owned by :mod:`trs_analytics._time`)."""

from __future__ import annotations

from trs_analytics._time import parse_when

__all__ = ["parse_when"]

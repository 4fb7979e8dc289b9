"""Fixtures for the chart tests: a million-state synthetic frame, built once per session.

Small hand-made frames come from :mod:`tests.builders`; what a chart draws from
:func:`tests.charts.datasets.rows_of`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import trs_analytics.testing as tt

if TYPE_CHECKING:
    import polars as pl


@pytest.fixture(scope="session")
def million_states() -> pl.DataFrame:
    """About a million states (330,000 task runs over a week)."""
    states = tt.generate_states(330_000, seed=42)
    assert states.height > 1_000_000
    return states

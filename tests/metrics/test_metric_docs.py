"""docs/metrics.md documents every public metric, and the package exports them."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import trs_analytics as ta
import trs_analytics.testing as tt
from trs_analytics import metrics

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")
FUNCTIONS = sorted(
    name
    for name in metrics.__all__
    if inspect.isfunction(getattr(metrics, name)) and name != "wilson"
)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_public_metric_is_documented_and_exported(name: str) -> None:
    assert f"{name}(" in DOCS, f"docs/metrics.md does not show {name}()"
    assert name in ta.__all__
    assert getattr(ta, name).__doc__
    assert "Examples:" in getattr(ta, name).__doc__


@pytest.mark.parametrize("name", [n for n in tt.__all__ if inspect.isfunction(getattr(tt, n))])
def test_test_data_generator_is_documented_under_trs_analytics_testing(name: str) -> None:
    assert f"tt.{name}(" in DOCS, f"docs/metrics.md does not show tt.{name}()"
    assert name not in ta.__all__
    assert "Examples:" in (getattr(tt, name).__doc__ or "")

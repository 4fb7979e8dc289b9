from __future__ import annotations

import re
from typing import TYPE_CHECKING

import altair as alt
import pytest

import trs_analytics.testing as tt
from trs_analytics.charts import AnyChart, retry_chart, save_chart
from trs_analytics.exceptions import ConfigurationError

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def chart() -> AnyChart:
    return retry_chart(tt.generate_states(300, seed=3), top=5)


def test_png(chart: AnyChart, tmp_path: Path) -> None:
    path = save_chart(chart, tmp_path / "chart.png")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width = int.from_bytes(data[16:20], "big")
    assert width > 600  # scale=2 by default


def test_svg_has_the_marks(chart: AnyChart, tmp_path: Path) -> None:
    text = save_chart(chart, tmp_path / "chart.out", format="svg").read_text()
    assert text.startswith("<svg")
    assert "Retried runs per task name" in text
    assert text.count("<path") > 5


def test_html_is_offline(chart: AnyChart, tmp_path: Path) -> None:
    text = save_chart(chart, tmp_path / "chart.html").read_text()
    assert not re.search(r"<script[^>]+src=", text)
    assert "vegaEmbed" in text


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot save a chart as 'jpg'"):
        save_chart(alt.Chart().mark_bar(), tmp_path / "chart.jpg")

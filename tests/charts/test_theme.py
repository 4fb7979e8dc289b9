from __future__ import annotations

import trs_analytics as ta
import trs_analytics.testing as tt
from trs_analytics.charts import STATE_COLORS, retry_chart, state_scale, timeline_chart


def test_every_state_type_has_its_own_colour() -> None:
    assert list(STATE_COLORS) == list(ta.STATE_TYPES)
    assert len(set(STATE_COLORS.values())) == len(STATE_COLORS)


def test_charts_share_the_state_colours() -> None:
    states = tt.generate_states(2_000, seed=8)
    for chart in (retry_chart(states), timeline_chart(states)):
        scale = chart.to_dict()["layer"][0]["encoding"]["color"]["scale"]
        for state_type, colour in zip(scale["domain"], scale["range"], strict=True):
            assert STATE_COLORS[state_type] == colour


def test_scale_keeps_lifecycle_order() -> None:
    assert state_scale(["FAILED", "PENDING"]).to_dict()["domain"] == ["PENDING", "FAILED"]

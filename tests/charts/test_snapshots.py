"""Snapshots of the Vega-Lite specs the charts produce on a small, fixed synthetic frame.

A failing snapshot shows what changed in a chart. When the change is intended, write the
snapshots again with ``UPDATE_SNAPSHOTS=1 uv run pytest tests/charts/test_snapshots.py``
and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.testing as tt
from trs_analytics import charts

if TYPE_CHECKING:
    from collections.abc import Callable

SNAPSHOTS = Path(__file__).parent / "__snapshots__"


def _anomalies(_states: pl.DataFrame) -> Any:
    planted = tt.generate_planted(seed=1, n_tasks=3, days=21, runs_per_day=6, spikes=2)
    return charts.anomaly_chart(ta.detect_anomalies(planted.states), top=2)


CHARTS: dict[str, Callable[[pl.DataFrame], Any]] = {
    "anomaly_chart": _anomalies,
    "duration_chart": lambda s: charts.duration_chart(s, top=5),
    "failure_rate_chart": lambda s: charts.failure_rate_chart(s, by="flow_name", every="1d", top=2),
    "retry_chart": lambda s: charts.retry_chart(s, top=5),
    "timeline_chart": charts.timeline_chart,
    "transition_chart": charts.transition_chart,
    "wait_chart": lambda s: charts.wait_chart(s, every="1d"),
    "critical_path_chart": charts.critical_path_chart,
    "concurrency_chart": lambda s: charts.concurrency_chart(
        s, by="tags", top=1, limits=pl.DataFrame({"tag": ["etl"], "name": ["etl"], "limit": [2]})
    ),
}

#: Charts of flow-run states.
FLOW_CHARTS: dict[str, Callable[[pl.DataFrame], Any]] = {
    "flow_duration_chart": lambda f: charts.flow_duration_chart(f, every="1d", top=3),
    "landing_time_chart": lambda f: charts.landing_time_chart(f, top=3),
    "flow_concurrency_chart": lambda f: charts.concurrency_chart(f, by="work_pool_name"),
}


@pytest.fixture(scope="module")
def states() -> pl.DataFrame:
    return tt.generate_states(400, seed=5, days=2, n_tasks=8, n_flows=2)


@pytest.fixture(scope="module")
def flow_runs() -> pl.DataFrame:
    return tt.generate_flow_run_states(400, seed=5, days=2, n_tasks=8, n_flows=2)


@pytest.mark.parametrize("name", list(CHARTS) + list(FLOW_CHARTS))
def test_spec_matches_snapshot(name: str, states: pl.DataFrame, flow_runs: pl.DataFrame) -> None:
    chart = CHARTS[name](states) if name in CHARTS else FLOW_CHARTS[name](flow_runs)
    spec = json.dumps(chart.to_dict(), indent=1, sort_keys=True) + "\n"
    path = SNAPSHOTS / f"{name}.json"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(spec, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}. Hint: run with UPDATE_SNAPSHOTS=1 once."
    assert spec == path.read_text(encoding="utf-8")

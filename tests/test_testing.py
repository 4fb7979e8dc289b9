"""trs_analytics.testing, the test-data generators: contract schema, determinism, realistic
histories, one naming for every generator, and the top level pointing to them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.testing as tt
from trs_analytics.exceptions import ConfigurationError


@pytest.fixture(scope="module")
def generated() -> pl.DataFrame:
    return tt.generate_states(20_000, seed=5, days=3, n_flows=4, n_tasks=30)


def test_schema_is_exactly_the_contract(generated: pl.DataFrame) -> None:
    assert generated.schema == ta.STATES_SCHEMA
    ta.validate_states(generated)


def test_same_seed_same_frame_other_seed_other_frame() -> None:
    assert tt.generate_states(500, seed=1).equals(tt.generate_states(500, seed=1))
    assert not tt.generate_states(500, seed=1).equals(tt.generate_states(500, seed=2))


def test_counts_ids_and_spread(generated: pl.DataFrame) -> None:
    assert generated["task_run_id"].n_unique() == 20_000
    assert generated["id"].n_unique() == generated.height
    assert generated["task_name"].n_unique() == 30
    assert generated["flow_name"].n_unique() == 4
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert generated["timestamp"].min() >= start  # type: ignore[operator]
    latest = generated["expected_start_time"].max()
    assert start + timedelta(days=2.9) < latest < start + timedelta(days=3, minutes=1)  # type: ignore[operator]


def test_histories_follow_prefect_3(generated: pl.DataFrame) -> None:
    names = set(generated["name"].unique())
    assert names == {
        "Scheduled",
        "Late",
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "Completed",
        "Cached",
        "Failed",
        "Crashed",
        "Cancelled",
    }
    # every run has one Pending and one Running; each retry adds one Retrying
    per_run = generated.group_by("task_run_id").agg(
        pending=(pl.col("name") == "Pending").sum(),
        running=(pl.col("name") == "Running").sum(),
        retrying=(pl.col("name") == "Retrying").sum(),
        run_count=pl.col("run_count").first(),
        ordered=pl.col("timestamp").diff().drop_nulls().min() > pl.duration(microseconds=0),
    )
    assert per_run["pending"].unique().to_list() == [1]
    assert per_run["running"].unique().to_list() == [1]
    assert (per_run["retrying"] + 1 == per_run["run_count"]).all()
    assert per_run["ordered"].fill_null(value=True).all()


def test_retry_counts_agree_with_run_count(generated: pl.DataFrame) -> None:
    counts = ta.retry_counts(generated).join(
        generated.group_by("task_run_id").agg(pl.col("run_count").first()), on="task_run_id"
    )
    assert (counts["attempts"] == counts["run_count"]).all()


def test_outcomes_are_a_realistic_mix(generated: pl.DataFrame) -> None:
    counts = ta.retry_counts(generated)
    share = counts["final_name"].value_counts(normalize=True).to_dict(as_series=False)
    by_name = dict(zip(share["final_name"], share["proportion"], strict=True))
    assert 0.6 < by_name["Completed"] < 0.95
    assert 0.01 < by_name["Failed"] < 0.2
    assert (
        0.001
        < by_name["Running"] + by_name.get("Retrying", 0) + by_name.get("AwaitingRetry", 0)
        < 0.02
    )
    assert 0.05 < (counts["retries"] > 0).mean() < 0.4  # type: ignore[operator]
    assert counts["rescued"].sum() > 0


def test_durations_are_skewed(generated: pl.DataFrame) -> None:
    run = ta.run_time(generated)["duration"].dt.total_microseconds().drop_nulls()
    assert run.mean() > 2 * run.median()  # type: ignore[operator]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_task_runs": -1},
        {"n_flows": 0},
        {"n_flows": 5, "n_tasks": 4},
        {"days": 0},
        {"start": datetime(2026, 1, 1)},
    ],
)
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        tt.generate_states(**kwargs)  # type: ignore[arg-type]


def test_zero_runs_is_an_empty_contract_frame() -> None:
    assert tt.generate_states(0).schema == ta.STATES_SCHEMA
    assert tt.generate_states(0).height == 0


@pytest.mark.parametrize(
    "name", ["Planted", "generate_flow_run_states", "generate_planted", "generate_states"]
)
def test_the_top_level_says_where_a_moved_generator_went(name: str) -> None:
    assert name not in ta.__all__
    with pytest.raises(AttributeError, match=rf"Hint: use trs_analytics\.testing\.{name} "):
        getattr(ta, name)
    assert name in tt.__all__
    assert getattr(tt, name) is not None


@pytest.mark.parametrize("name", ["nope", "generate_nothing"])
def test_an_unknown_top_level_name_is_a_plain_attribute_error(name: str) -> None:
    with pytest.raises(
        AttributeError, match=rf"^module 'trs_analytics' has no attribute '{name}'$"
    ):
        getattr(ta, name)


def test_every_generator_names_tasks_the_same_way() -> None:
    # a verb and a noun per task index (8 verbs, then the next noun), a lap number after 64
    expected = {0: "extract_orders", 1: "load_orders", 8: "extract_users", 63: "aggregate_prices"}
    expected |= {64: "extract_orders_1", 65: "load_orders_1"}
    planted = tt.generate_planted(
        seed=1, days=3, warmup_days=0, n_tasks=66, spikes=0, failure_jumps=0, gaps=0, stuck=0
    )
    names = planted.tasks["task_name"].to_list()
    assert {i: names[i] for i in expected} == expected
    states = tt.generate_states(5_000, seed=1, n_flows=1, n_tasks=66)
    assert set(states["task_name"]) == set(names)
    planted_types = planted.states.select("name", "type").unique().sort("name").rows()
    assert planted_types == [
        ("Completed", "COMPLETED"),
        ("Failed", "FAILED"),
        ("Pending", "PENDING"),
        ("Running", "RUNNING"),
        ("Scheduled", "SCHEDULED"),
    ]

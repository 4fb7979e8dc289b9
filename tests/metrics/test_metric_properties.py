"""Properties of the metrics on generated histories whose ground truth is known."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trs_analytics as ta
from tests.builders import T0, TYPE_OF, history, states

# how each Prefect version writes a retry (the states between two attempts, the last one RUNNING)
RETRY_STYLES = {
    "prefect3-delay": ["AwaitingRetry", "Retrying"],
    "prefect3-no-delay": ["Retrying"],
    "prefect2-old": ["Awaiting Retry", "Running"],
    "failed-between": ["Failed", "Running"],
}
ENDINGS = ["Completed", "Failed", "Crashed", "Cancelled", "Cached", None]
PREFIXES = [[], ["Scheduled"], ["Scheduled", "Late"]]

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Run:
    """One generated task run and what its metrics must be."""

    run_id: str
    names: list[str]
    micros: list[int]  # timestamps, microseconds after T0
    attempts: int
    ending: str | None

    @property
    def final_type(self) -> str:
        return TYPE_OF[self.names[-1]]

    @property
    def rescued(self) -> bool:
        return self.ending in ("Completed", "Cached") and (
            self.attempts > 1 or "Failed" in self.names[:-1]
        )


@st.composite
def runs(draw: st.DrawFn, *, max_runs: int = 6) -> list[Run]:
    out = []
    for index in range(draw(st.integers(1, max_runs))):
        style = RETRY_STYLES[draw(st.sampled_from(sorted(RETRY_STYLES)))]
        ran = draw(st.booleans()) or draw(st.booleans())
        attempts = draw(st.integers(1, 5)) if ran else 0
        ending = draw(st.sampled_from(ENDINGS))
        if ending == "Cached" and attempts != 1:
            ending = "Completed"
        names = [*draw(st.sampled_from(PREFIXES)), "Pending"]
        if attempts:
            names.append("Running")
            for _ in range(attempts - 1):
                names += style
        if ending is not None:
            names.append(ending)
        # a run's timestamps are distinct (as Prefect writes them); ties are tested by hand
        gaps = draw(st.lists(st.integers(1, 10**8), min_size=len(names), max_size=len(names)))
        micros = [sum(gaps[: i + 1]) for i in range(len(names))]
        out.append(Run(f"run-{index}", names, micros, attempts, ending))
    return out


def frame(generated: list[Run]) -> pl.DataFrame:
    return states(
        *(
            history(
                [
                    (name, T0 + timedelta(microseconds=us))
                    for name, us in zip(run.names, run.micros, strict=True)
                ],
                task_run_id=run.run_id,
                task_name=f"task-{int(run.run_id[-1]) % 2}",
            )
            for run in generated
        )
    )


@SETTINGS
@given(runs())
def test_retries_and_outcomes_match_ground_truth(generated: list[Run]) -> None:
    out = ta.retry_counts(frame(generated))
    expected = [
        (
            r.run_id,
            r.attempts,
            max(r.attempts - 1, 0),
            r.final_type,
            r.ending is not None,
            r.rescued,
        )
        for r in sorted(generated, key=lambda r: r.run_id)
    ]
    got = out.select(
        "task_run_id", "attempts", "retries", "final_type", "terminal", "rescued"
    ).rows()
    assert got == expected


@SETTINGS
@given(runs())
def test_retries_are_attempts_minus_one(generated: list[Run]) -> None:
    out = ta.retry_counts(frame(generated))
    ran = out.filter(pl.col("attempts") > 0)
    assert (ran["retries"] == ran["attempts"] - 1).all()
    assert (out.filter(pl.col("attempts") == 0)["retries"] == 0).all()


@SETTINGS
@given(runs())
def test_times_in_state_add_up_to_end_to_end(generated: list[Run]) -> None:
    states = frame(generated)
    total = (
        ta.time_in_state(states)
        .group_by("task_run_id")
        .agg(pl.col("duration").sum())
        .join(ta.end_to_end(states), on="task_run_id", how="right", suffix="_e2e")
    )
    finished = total.filter(pl.col("duration_e2e").is_not_null())
    # a run with a single state has no time in any state
    assert (finished["duration"].fill_null(timedelta(0)) == finished["duration_e2e"]).all()
    for run in generated:
        if run.ending is not None:
            row = total.filter(pl.col("task_run_id") == run.run_id)
            assert row["duration_e2e"].to_list() == [
                timedelta(microseconds=run.micros[-1] - run.micros[0])
            ]


@SETTINGS
@given(runs())
def test_no_duration_is_negative_and_steps_add_up(generated: list[Run]) -> None:
    states = frame(generated)
    steps = ta.durations(states, start="*", end="*", occurrence="every")
    assert (steps["duration"].drop_nulls() >= timedelta(0)).all()
    per_run = steps.group_by("task_run_id").agg(pl.col("duration").sum()).sort("task_run_id")
    expected = [
        timedelta(microseconds=r.micros[-1] - r.micros[0])
        for r in sorted(generated, key=lambda r: r.run_id)
    ]
    assert per_run["duration"].to_list() == expected
    run_time = ta.run_time(states).join(ta.end_to_end(states), on="task_run_id", suffix="_e2e")
    both = run_time.drop_nulls(["duration", "duration_e2e"])
    assert (both["duration"] <= both["duration_e2e"]).all()


@SETTINGS
@given(runs(), st.randoms(use_true_random=False))
def test_shuffled_and_duplicated_states_give_the_same_metrics(
    generated: list[Run], rnd: object
) -> None:
    clean = frame(generated)
    order = list(range(clean.height)) * 2
    rnd.shuffle(order)  # type: ignore[attr-defined]
    messy = clean[order]
    assert ta.retry_counts(messy).equals(ta.retry_counts(clean))
    assert ta.time_in_state(messy).equals(ta.time_in_state(clean))
    assert ta.failure_rates(messy).equals(ta.failure_rates(clean))


@SETTINGS
@given(runs(max_runs=12))
def test_failure_rate_counts_every_run_once_and_ci_holds_the_rate(generated: list[Run]) -> None:
    out = ta.failure_rates(frame(generated), by=None)
    row = out.row(0, named=True)
    assert row["runs"] + row["cancelled"] + row["unfinished"] == len(generated)
    assert row["failed"] == sum(r.ending in ("Failed", "Crashed") for r in generated)
    assert row["unfinished"] == sum(r.ending is None for r in generated)
    if row["runs"]:
        assert row["ci_low"] <= row["failure_rate"] <= row["ci_high"]
        assert row["first_attempt_failure_rate"] >= row["failure_rate"]


@SETTINGS
@given(runs())
def test_lazy_and_eager_agree(generated: list[Run]) -> None:
    states = frame(generated)
    for function in (ta.retry_counts, ta.run_time, ta.queue_wait, ta.retry_wait, ta.time_in_state):
        assert function(states.lazy()).collect().equals(function(states)), function.__name__

"""Durations between states: the general form and the named forms, on hand-worked histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

import trs_analytics as ta
from tests.builders import at, history, states
from trs_analytics.exceptions import ConfigurationError, SchemaError

P3_DELAY = "Pending@0 Running@1 AwaitingRetry@3 Retrying@8 AwaitingRetry@9 Retrying@14 Completed@20"
P3_NO_DELAY = "Pending@0 Running@1 Retrying@4 Retrying@6 Completed@10"
P2_OLD = "Pending@0 Running@2 Awaiting_Retry@5 Running@9 Failed@12"
CACHED = "Pending@0 Running@0.5 Cached@0.75"
LATE = "Scheduled@0 Late@10 Pending@15 Running@16 Completed@19"
UNFINISHED = "Pending@0 Running@3"
NEVER_RAN = "Pending@0 Cancelled@4"


def seconds(column: pl.Series) -> list[float | None]:
    """A Duration column as float seconds (None stays None)."""
    return [None if v is None else v.total_seconds() for v in column.to_list()]


@pytest.mark.parametrize(
    ("spec", "start", "end", "occurrence", "expected"),
    [
        # Pending -> Running
        (P3_DELAY, "PENDING", "RUNNING", "first", [("Pending", "Running", 1.0)]),
        # AwaitingRetry -> Retrying, every wait, by state name
        (
            P3_DELAY,
            "AwaitingRetry",
            "Retrying",
            "every",
            [("AwaitingRetry", "Retrying", 5.0), ("AwaitingRetry", "Retrying", 5.0)],
        ),
        # Running -> any terminal state: first Running (attempt 1) to the end
        (P3_DELAY, "Running", "TERMINAL", "first", [("Running", "Completed", 19.0)]),
        # last RUNNING-type state to the terminal state: the successful attempt
        (P3_DELAY, "RUNNING", "TERMINAL", "last", [("Retrying", "Completed", 6.0)]),
        # every RUNNING-type state to the very next state: each attempt's length
        (
            P3_NO_DELAY,
            "RUNNING",
            "*",
            "every",
            [
                ("Running", "Retrying", 3.0),
                ("Retrying", "Retrying", 2.0),
                ("Retrying", "Completed", 4.0),
            ],
        ),
        # a collection mixing a type and a name
        (
            LATE,
            ["SCHEDULED", "Pending"],
            "RUNNING",
            "every",
            [
                ("Scheduled", "Running", 16.0),
                ("Late", "Running", 6.0),
                ("Pending", "Running", 1.0),
            ],
        ),
        # no end state after the start: null end and duration
        (UNFINISHED, "RUNNING", "TERMINAL", "first", [("Running", None, None)]),
        # the end is searched strictly after the start
        (P2_OLD, "RUNNING", "RUNNING", "first", [("Running", "Running", 7.0)]),
        # no start state: no row
        (NEVER_RAN, "RUNNING", "TERMINAL", "first", []),
    ],
)
def test_durations_general_form(
    spec: str,
    start: ta.metrics.Selector,
    end: ta.metrics.Selector,
    occurrence: ta.metrics.Occurrence,
    expected: list[tuple[str, str | None, float | None]],
) -> None:
    out = ta.durations(
        states(history(spec, task_run_id="r")), start=start, end=end, occurrence=occurrence
    )
    got = list(zip(out["start_state"], out["end_state"], seconds(out["duration"]), strict=True))
    assert got == expected


def test_durations_occurrence_numbers_and_times() -> None:
    out = ta.durations(
        states(history(P3_DELAY, task_run_id="r")), start="RUNNING", end="*", occurrence="every"
    )
    assert out["occurrence"].to_list() == [1, 2, 3]
    assert out["start_time"].to_list() == [at(1), at(8), at(14)]
    assert out["end_time"].to_list() == [at(3), at(9), at(20)]


def test_durations_accepts_an_expression_selector() -> None:
    retry_states = pl.col("name").str.contains("Retry")
    out = ta.durations(
        states(history(P3_DELAY, task_run_id="r")),
        start=retry_states,
        end="TERMINAL",
        occurrence="last",
    )
    assert seconds(out["duration"]) == [6.0]


def test_durations_carries_the_run_columns() -> None:
    frame = states(history(CACHED, task_run_id="r", task_name="extract", tags=["etl"]))
    out = ta.durations(frame, start="*", end="TERMINAL")
    row = out.row(0, named=True)
    assert (row["task_run_id"], row["task_name"], row["task_key"], row["flow_name"]) == (
        "r",
        "extract",
        "extract-key",
        "flow",
    )
    assert row["tags"] == ["etl"]
    assert out.schema["duration"] == pl.Duration("us")


# named forms: (function, spec, expected seconds per row)
NAMED = [
    (ta.queue_wait, P3_DELAY, [1.0]),
    (ta.queue_wait, LATE, [16.0]),  # first Scheduled, not Pending
    (ta.queue_wait, NEVER_RAN, [None]),  # waited, never ran
    (ta.run_time, P3_DELAY, [2.0 + 1.0 + 6.0]),
    (ta.run_time, P3_NO_DELAY, [9.0]),
    (ta.run_time, P2_OLD, [3.0 + 3.0]),
    (ta.run_time, CACHED, [0.25]),
    (ta.run_time, UNFINISHED, [None]),  # still running: unknown
    (ta.run_time, NEVER_RAN, []),
    (ta.retry_wait, P3_DELAY, [5.0, 5.0]),
    (ta.retry_wait, P3_NO_DELAY, []),  # retry_delay_seconds=0: no wait
    (ta.retry_wait, P2_OLD, [4.0]),
    (ta.retry_wait, LATE, []),  # Late before the first attempt is not a retry wait
    (ta.end_to_end, P3_DELAY, [20.0]),
    (ta.end_to_end, LATE, [19.0]),
    (ta.end_to_end, UNFINISHED, [None]),
    (ta.end_to_end, NEVER_RAN, [4.0]),
    # a Failed state written between attempts is not the end
    (ta.end_to_end, "Pending@0 Running@1 Failed@2 Running@3 Completed@5", [5.0]),
]


@pytest.mark.parametrize(("function", "spec", "expected"), NAMED)
def test_named_durations(function: object, spec: str, expected: list[float | None]) -> None:
    out = function(states(history(spec, task_run_id="r")))  # type: ignore[operator]
    assert seconds(out["duration"]) == expected


def test_run_time_counts_attempts_and_bounds() -> None:
    out = ta.run_time(states(history(P3_DELAY, task_run_id="r")))
    assert out.select("attempts", "start_time", "end_time").row(0) == (3, at(1), at(20))


@pytest.mark.parametrize(
    ("expected_start", "spec", "duration", "negative"),
    [
        (0.0, "Pending@1 Running@3 Completed@4", 3.0, False),
        (3.0, "Pending@1 Running@3 Completed@4", 0.0, False),
        # Running before the expected start: another clock; not reported as real
        (5.0, "Pending@1 Running@3 Completed@4", None, True),
    ],
)
def test_lateness(expected_start: float, spec: str, duration: float | None, negative: bool) -> None:
    out = ta.lateness(states(history(spec, task_run_id="r", expected_start_time=expected_start)))
    assert seconds(out["duration"]) == [duration]
    assert out["negative"].to_list() == [negative]


@pytest.mark.parametrize(
    ("spec", "level", "expected"),
    [
        (P3_DELAY, "type", {"PENDING": (1, 1.0), "RUNNING": (3, 9.0), "SCHEDULED": (2, 10.0)}),
        (
            P3_DELAY,
            "name",
            {
                "Pending": (1, 1.0),
                "Running": (1, 2.0),
                "AwaitingRetry": (2, 10.0),
                "Retrying": (2, 7.0),
            },
        ),
        (UNFINISHED, "type", {"PENDING": (1, 3.0)}),  # the open Running adds nothing
        (LATE, "type", {"SCHEDULED": (2, 15.0), "PENDING": (1, 1.0), "RUNNING": (1, 3.0)}),
    ],
)
def test_time_in_state(spec: str, level: str, expected: dict[str, tuple[int, float]]) -> None:
    out = ta.time_in_state(states(history(spec, task_run_id="r")), level=level)  # type: ignore[arg-type]
    got = {
        str(k): (n, d.total_seconds())
        for k, n, d in out.select(level, "entries", "duration").rows()
    }
    assert got == expected


def test_time_in_state_adds_up_to_end_to_end() -> None:
    frame = states(
        history(P3_DELAY, task_run_id="a"),
        history(P2_OLD, task_run_id="b"),
        history(LATE, task_run_id="c"),
    )
    total = (
        ta.time_in_state(frame)
        .group_by("task_run_id")
        .agg(pl.col("duration").sum())
        .sort("task_run_id")
    )
    assert total["duration"].to_list() == ta.end_to_end(frame)["duration"].to_list()


# ---- out-of-order, duplicated and skewed input --------------------------------------------


def test_duplicates_and_arrival_order_do_not_change_results() -> None:
    frame = states(
        history(P3_DELAY, task_run_id="a"),
        history(P2_OLD, task_run_id="b"),
        history(UNFINISHED, task_run_id="c"),
    )
    messy = pl.concat([frame, frame.sample(fraction=0.5, seed=1)]).sample(
        fraction=1.0, shuffle=True, seed=2
    )
    for function in (ta.queue_wait, ta.run_time, ta.retry_wait, ta.end_to_end, ta.time_in_state):
        assert function(messy).equals(function(frame)), function.__name__


def test_a_state_with_a_skewed_clock_reorders_the_timeline_instead_of_going_negative() -> None:
    # Running stamped before Pending (skewed worker clock): on the timeline Running comes first,
    # so Pending is followed by no Running and the queue wait is unknown, not negative.
    frame = states(history("Running@1 Pending@2 Completed@5", task_run_id="r"))
    assert seconds(ta.queue_wait(frame)["duration"]) == [None]
    assert seconds(ta.end_to_end(frame)["duration"]) == [4.0]


def test_equal_timestamps_are_ordered_by_lifecycle_then_id() -> None:
    # same microsecond: Pending (PENDING) before Running (RUNNING) before Completed
    frame = states(history("Completed@1 Running@1 Pending@1", task_run_id="r"))
    steps = ta.durations(frame, start="*", end="*", occurrence="every")
    assert steps["start_state"].to_list() == ["Pending", "Running", "Completed"]
    assert steps["end_state"].to_list() == ["Running", "Completed", None]
    assert ta.retry_counts(frame)["final_name"].to_list() == ["Completed"]


def test_duplicates_without_an_id_column_are_dropped_by_content() -> None:
    frame = states(history("Pending@0 Running@1 Completed@3", task_run_id="r")).drop("id")
    doubled = pl.concat([frame, frame])
    assert ta.time_in_state(doubled)["entries"].to_list() == [1, 1]


# ---- frames in, frames out ------------------------------------------------------------------

FUNCTIONS = [ta.queue_wait, ta.run_time, ta.retry_wait, ta.end_to_end, ta.time_in_state]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_lazy_in_lazy_out(function: object) -> None:
    frame = states(history(P3_DELAY, task_run_id="a"), history(LATE, task_run_id="b"))
    lazy = function(frame.lazy())  # type: ignore[operator]
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect().equals(function(frame))  # type: ignore[operator]


@pytest.mark.parametrize("function", [*FUNCTIONS, ta.lateness])
def test_empty_frame_gives_empty_result(function: object) -> None:
    assert function(ta.empty_states()).height == 0  # type: ignore[operator]


def test_missing_column_is_named_with_a_hint() -> None:
    with pytest.raises(SchemaError, match=r"durations\(\) needs column 'timestamp'.*Hint:"):
        ta.durations(states(history(CACHED, task_run_id="r")).drop("timestamp"), start="*", end="*")


def test_lateness_needs_expected_start_time() -> None:
    with pytest.raises(SchemaError, match="expected_start_time"):
        ta.lateness(states(history(CACHED, task_run_id="r")).drop("expected_start_time"))


def test_naive_timestamps_are_refused() -> None:
    frame = states(history(CACHED, task_run_id="r")).with_columns(
        pl.col("timestamp").dt.replace_time_zone(None)
    )
    with pytest.raises(SchemaError, match="time zone"):
        ta.end_to_end(frame)


def test_other_time_zones_are_converted_to_utc() -> None:
    frame = states(history(CACHED, task_run_id="r"))
    paris = frame.with_columns(pl.col("timestamp").dt.convert_time_zone("Europe/Paris"))
    out = ta.end_to_end(paris)
    assert out["start_time"].to_list() == [datetime(2026, 1, 1, tzinfo=UTC)]
    assert out["start_time"].dtype == pl.Datetime("us", "UTC")
    assert out["duration"].to_list() == [timedelta(seconds=0.75)]


@pytest.mark.parametrize("selector", [[], 3, ["RUNNING", 3]])
def test_bad_selectors_are_refused(selector: object) -> None:
    with pytest.raises(ConfigurationError, match="start= must name"):
        ta.durations(states(history(CACHED, task_run_id="r")), start=selector, end="*")  # type: ignore[arg-type]


def test_bad_occurrence_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="occurrence='all'"):
        ta.durations(states(history(CACHED, task_run_id="r")), start="*", end="*", occurrence="all")  # type: ignore[arg-type]


def test_bad_level_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="level="):
        ta.time_in_state(states(history(CACHED, task_run_id="r")), level="kind")  # type: ignore[arg-type]

"""The check use case and ``trs-analytics check`` on planted histories (no server needed)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import TYPE_CHECKING

import polars as pl
import pytest
from click.testing import CliRunner

import trs_analytics as ta
import trs_analytics.testing as tt
from tests.builders import at, history, states
from trs_analytics.check import (
    EVENTS,
    CheckResult,
    Emitted,
    check_from,
    check_start,
    finding_events,
    run_check,
)
from trs_analytics.cli import main

if TYPE_CHECKING:
    from pathlib import Path

CLEAN = {"spikes": 0, "failure_jumps": 0, "stuck": 0, "slow_runs": 0, "late_runs": 0, "gaps": 0}


@pytest.fixture(scope="module")
def planted() -> tt.Planted:
    return tt.generate_planted(seed=7)


def test_the_recent_period_holds_the_stuck_runs_and_the_late_slow_runs(planted: tt.Planted) -> None:
    truth = planted.truth
    rules = ta.parse_rules('[[rule]]\nname = "late"\ntask = "*"\nmax_lateness = "15m"')
    result = run_check(planted.states, rules=rules, now=planted.end, recent="35d")
    found = result.findings
    stuck = truth.filter(pl.col("kind") == "stuck")["task_run_id"]
    late = truth.filter(pl.col("kind") == "late_run")["task_run_id"]
    assert sorted(found.filter(pl.col("kind") == "stuck")["task_run_id"]) == sorted(stuck)
    assert sorted(found.filter(pl.col("kind") == "sla")["task_run_id"]) == sorted(late)
    # anomalies: every planted spike (its task-day) is among them
    anomalies = found.filter(pl.col("kind") == "anomaly").select("subject", "at").rows()
    for task, day in truth.filter(kind="duration_spike").select("task_name", "bucket").iter_rows():
        assert (task, day) in anomalies
    # and every failure jump, by the check made at the end of its day (its last 24 hours)
    for task, day in truth.filter(kind="failure_jump").select("task_name", "bucket").iter_rows():
        then = run_check(planted.states, now=day + timedelta(days=1), recent="1d").findings
        rates = then.filter(pl.col("check") == "failure_rate")
        assert (task, day) in rates.select("subject", "at").rows()
    # a day later only the stuck runs are recent
    recent = run_check(planted.states, rules=rules, now=planted.end, recent="1d")
    assert recent.counts() == {"anomaly": 0, "stuck": stuck.len(), "sla": 0}


US = timedelta(microseconds=1)


def found(result: CheckResult, kind: str, *columns: str) -> list[tuple[object, ...]]:
    return result.findings.filter(pl.col("kind") == kind).select(columns).rows()


def test_an_anomalous_bucket_is_recent_when_it_ends_after_the_recent_period_starts(
    planted: tt.Planted,
) -> None:
    spike = planted.truth.filter(pl.col("kind") == "duration_spike").row(0, named=True)
    task, day = spike["task_name"], spike["bucket"]
    end = day + timedelta(days=1)  # the bucket's end (every="1d")
    # the recent period starts exactly at the end of the bucket: it is history
    at_end = run_check(planted.states, now=end + timedelta(days=1), recent="1d")
    assert (task, day) not in found(at_end, "anomaly", "subject", "at")
    # the recent period starts a microsecond earlier: the bucket ends inside it
    inside = run_check(planted.states, now=end + timedelta(days=1) - US, recent="1d")
    assert (task, day) in found(inside, "anomaly", "subject", "at")


def test_a_breach_is_recent_from_the_first_microsecond_of_the_recent_period() -> None:
    since = at(86_400)  # now - recent
    twenty = timedelta(seconds=20)
    frame = states(
        history([("Running", since), ("Completed", since + twenty)], task_run_id="on"),
        history(
            [("Running", since - US), ("Completed", since - US + twenty)], task_run_id="before"
        ),
    )
    rules = ta.parse_rules('[[rule]]\nname = "slow"\ntask = "*"\nmax_run_time = "10s"')
    result = run_check(frame, rules=rules, now=since + timedelta(days=1), recent="1d")
    assert found(result, "sla", "task_run_id", "at") == [("on", since)]


@pytest.mark.parametrize(
    "gap",
    # 8,298.091148 s: a length whose seconds, as a float, times 1e6 fall just under the integer
    [timedelta(hours=2), timedelta(microseconds=8_298_091_148)],
    ids=["2h", "8298.091148s"],
)
def test_a_past_freshness_gap_is_recent_when_it_ends_in_the_recent_period(gap: timedelta) -> None:
    since = at(86_400)  # now - recent, and the end of a gap between two completions
    completions = [since - gap, since, since + timedelta(minutes=40)]
    frame = states(
        *(history([("Completed", c)], task_run_id=f"r{i}") for i, c in enumerate(completions))
    )
    rules = ta.parse_rules('[[rule]]\nname = "fresh"\ntask = "*"\nfreshness = "1h"')
    now = since + timedelta(hours=1)  # 20 minutes after the last completion: fresh now
    ends_at_start = run_check(frame, rules=rules, now=now, recent="1h")
    assert found(ends_at_start, "sla", "check", "at") == [("freshness", completions[0])]
    ends_before = run_check(frame, rules=rules, now=now + US, recent="1h")
    assert found(ends_before, "sla", "check", "at") == []


def test_events_carry_the_finding_and_its_runs(planted: tt.Planted) -> None:
    result = run_check(planted.states, now=planted.end, recent="1d")
    events = finding_events(result.findings, now=planted.end)
    assert [e["event"] for e in events] == [EVENTS["stuck"]] * result.findings.height
    for event, run in zip(events, result.findings["task_run_id"], strict=True):
        roles = {r["prefect.resource.role"]: r["prefect.resource.id"] for r in event["related"]}
        assert roles["task-run"] == f"prefect.task-run.{run}"
        assert event["payload"]["task_run_id"] == run


def test_cli_exit_0_when_clean_1_when_flagged_json_lines(
    tmp_path: Path, planted: tt.Planted
) -> None:
    flagged, clean = tmp_path / "planted.parquet", tmp_path / "clean.parquet"
    planted.states.write_parquet(flagged)
    tt.generate_planted(seed=7, **CLEAN).states.write_parquet(clean)  # type: ignore[arg-type]
    now = ["--now", planted.end.isoformat()]
    ok = CliRunner().invoke(main, ["check", str(clean), *now])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("nothing flagged:")
    bad = CliRunner().invoke(main, ["--log-format", "json", "check", str(flagged), *now])
    assert bad.exit_code == 1, bad.output
    records = [json.loads(line) for line in bad.stdout.splitlines()]
    stuck = planted.truth.filter(pl.col("kind") == "stuck")["task_run_id"].to_list()
    assert sorted(r["task_run_id"] for r in records[:-1]) == sorted(stuck)
    assert records[-1]["event"] == "check"
    assert records[-1]["stuck"] == len(stuck)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (None, r"cannot read the SLA rules .*missing\.toml"),
        ('[[rule]]\ntask = "x"\nmax_run_time = "soon"', r"rule 1: max_run_time = 'soon' is not"),
    ],
)
def test_cli_bad_rules_exit_2(tmp_path: Path, rules: str | None, message: str) -> None:
    path = tmp_path / ("missing.toml" if rules is None else "sla.toml")
    if rules is not None:
        path.write_text(rules, encoding="utf-8")
    states = tmp_path / "s.parquet"
    tt.generate_states(50, seed=1).write_parquet(states)
    result = CliRunner().invoke(main, ["check", str(states), "--rules", str(path)])
    assert result.exit_code == 2, result.output
    errors = [x for x in result.stderr.splitlines() if x.startswith("Error: ")]
    assert len(errors) == 1
    assert "Hint:" in errors[0]
    assert re.search(message, errors[0]), errors[0]


def test_finding_ids_are_stable_and_resource_ids_hold_no_spaces(planted: tt.Planted) -> None:
    rules = ta.parse_rules('[[rule]]\nname = "render fast"\ntask = "*"\nmax_run_time = "1s"')
    first = run_check(planted.states, rules=rules, now=planted.end, recent="1d")
    later = run_check(planted.states, rules=rules, now=planted.end + timedelta(hours=1))
    assert first.findings["finding_id"].n_unique() == first.findings.height > 0
    kept = set(first.findings["finding_id"]) & set(later.findings["finding_id"])
    assert {f for f in first.findings["finding_id"] if f.startswith("stuck.")} <= kept
    for event in finding_events(first.findings, now=planted.end):
        resource = event["resource"]["prefect.resource.id"]
        assert re.fullmatch(r"trs-analytics\.check(\.[A-Za-z0-9_-]+){4}", resource), resource
    sla = first.findings.filter(pl.col("kind") == "sla").row(0, named=True)
    assert sla["finding_id"] == f"sla.render-fast.max_run_time.{sla['task_run_id']}"


def test_stuck_after_and_min_history_reach_stuck_runs() -> None:
    # four finished runs of 2 s and one run open for 100 s: too little history by default
    done = [
        history(f"Running@{i * 10} Completed@{i * 10 + 2}", task_run_id=f"d{i}") for i in range(4)
    ]
    frame = states(*done, history("Running@50", task_run_id="open"))
    now = at(150)
    assert run_check(frame, now=now).counts()["stuck"] == 0
    by_history = run_check(frame, now=now, min_history=4).findings
    assert by_history.select("task_run_id", "message").rows() == [
        ("open", "task run open has been Running for 1 min 40 s, over 6.0 s (k x p99)")
    ]
    by_limit = run_check(frame, now=now, stuck_after="99s").findings
    assert by_limit["message"].to_list() == [
        "task run open has been Running for 1 min 40 s, over 1 min 39 s (limit)"
    ]


def test_cli_emit_events_without_a_folder_needs_a_state_file(tmp_path: Path) -> None:
    states_file = tmp_path / "s.parquet"
    tt.generate_states(50, seed=1).write_parquet(states_file)
    result = CliRunner().invoke(main, ["check", str(states_file), "--emit-events"])
    assert result.exit_code == 2, result.output
    assert "emitting events needs a file to remember the open findings in" in result.stderr


def test_check_from_a_path_is_what_the_command_prints_and_what_run_check_finds(
    tmp_path: Path, planted: tt.Planted
) -> None:
    path = tmp_path / "planted.parquet"
    planted.states.write_parquet(path)
    outcome = check_from(path, now=planted.end, engine="duckdb")
    direct = run_check(planted.states, now=planted.end)
    assert outcome.result.findings.drop("at").equals(direct.findings.drop("at"))
    read = planted.states.filter(pl.col("timestamp") >= check_start(planted.end))
    assert outcome.result.runs == direct.runs == read["task_run_id"].n_unique() > 0
    assert outcome.emitted == Emitted([], [])
    stuck = planted.truth.filter(pl.col("kind") == "stuck")["task_run_id"].to_list()
    assert outcome.result.counts()["stuck"] == len(stuck)
    cli = CliRunner().invoke(
        main, ["--log-format", "json", "check", str(path), "--now", planted.end.isoformat()]
    )
    records = [json.loads(line) for line in cli.stdout.splitlines()]
    assert [r["finding_id"] for r in records[:-1]] == outcome.result.findings[
        "finding_id"
    ].to_list()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (None, "needs a client of the server to fetch the states (no path given)"),
        ("STATES", None),
    ],
)
def test_check_from_says_when_it_needs_a_client(
    tmp_path: Path, path: str | None, message: str | None
) -> None:
    states_file = tmp_path / "s.parquet"
    tt.generate_states(50, seed=1).write_parquet(states_file)
    given = None if path is None else states_file
    if message is None:
        with pytest.raises(ta.ConfigurationError, match="to read heartbeats"):
            check_from(given, heartbeat_after=timedelta(hours=1))
        return
    with pytest.raises(ta.ConfigurationError, match=re.escape(message)):
        check_from(given)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "duckdb"], r"--engine and --memory-limit are for PATH\. Hint:"),
        (["STATES", "--memory-limit", "1GB"], r"--memory-limit is for --engine duckdb"),
    ],
)
def test_cli_engine_options_need_a_path_and_duckdb(
    tmp_path: Path, args: list[str], message: str
) -> None:
    states = tmp_path / "s.parquet"
    tt.generate_states(50, seed=1).write_parquet(states)
    args = [str(states) if a == "STATES" else a for a in args]
    result = CliRunner().invoke(main, ["check", *args, "--api-url", "http://127.0.0.1:9/api"])
    assert result.exit_code == 2, result.output
    assert re.search(message, result.stderr), result.stderr


@pytest.mark.parametrize(
    ("command", "words"),
    [("check", "nothing to check"), ("report", "nothing to report on")],
)
def test_an_empty_folder_says_what_the_command_cannot_do(
    command: str, words: str, tmp_path: Path
) -> None:
    args = [command, str(tmp_path)] + (["--out", str(tmp_path / "r.html")] * (command == "report"))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 6, result.output
    assert f"holds no Parquet files, so there is {words} (folder" in result.output

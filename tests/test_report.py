"""write_report: the HTML is self-contained, and headless Chromium draws every chart without errors.

Chromium is driven by :func:`tests.chromium.open_in_chromium`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import trs_analytics as ta
import trs_analytics.testing as tt
from tests.chromium import open_in_chromium
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.report import write_report

SAMPLE = Path(__file__).parent.parent / "data" / "sample_states.parquet"
CHARTS = 8  # charts in a report


@pytest.fixture(scope="module")
def states() -> pl.DataFrame:
    assert SAMPLE.exists(), f"the bundled sample {SAMPLE} is missing"
    return ta.scan_states(SAMPLE).collect()


@pytest.fixture(scope="module")
def report(states: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(states.lazy(), tmp_path_factory.mktemp("report") / "report.html")


def test_report_is_self_contained(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", text, flags=re.IGNORECASE)
    assert not re.search(r"<link[^>]+href=[\"']?https?:", text, flags=re.IGNORECASE)
    assert not re.search(r"@import|url\(\s*[\"']?https?:", text)
    assert "vegaEmbed" in text
    assert text.count('class="chart"') == CHARTS


def test_report_has_numbers_tables_and_regressions(report: Path, states: pl.DataFrame) -> None:
    text = report.read_text(encoding="utf-8")
    runs = states["task_run_id"].n_unique()
    assert f'<div class="value">{runs:,}</div>' in text
    overall = ta.failure_rates(states, by=None).row(0, named=True)
    assert f"{overall['failure_rate']:.2%}" in text
    for heading in ("Worst tasks by p95 run time", "Worst tasks by failure rate", "Regressions"):
        assert heading in text
    worst = ta.summarize(ta.run_time(states), by="task_name").sort("p95", descending=True)
    assert f"<td>{worst['task_name'][0]}</td>" in text


def test_report_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    result = open_in_chromium(report, tmp_path / "report.png")
    assert result["errors"] == [], "\n".join(result["errors"])
    assert result["rendered"] == str(CHARTS)
    assert len(result["charts"]) == CHARTS
    for chart in result["charts"]:
        assert chart["svg"], chart
        # issue 26.5: each chart fills its card (a fixed 620 px left 30-45% of it empty)
        assert 0.85 * chart["card"] <= chart["width"] <= chart["card"], chart
        assert chart["height"] > 100, chart
        assert chart["marks"] > 20, chart
        assert all(n > 0 for n in chart["panels"]), f"a blank panel: {chart}"
    pixels = result["pixels"]
    assert pixels["width"] == 1280
    assert pixels["height"] > 2000
    assert pixels["std"] > 10
    assert pixels["colours"] > 50


def test_chromium_check_sees_errors_and_blank_pages(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('boom'); missing();</script></body></html>")
    result = open_in_chromium(page, tmp_path / "bad.png", wait_ms=1000)
    assert any("boom" in e for e in result["errors"])
    assert any("missing" in e for e in result["errors"])
    assert result["rendered"] is None
    assert result["pixels"]["std"] < 1


@pytest.mark.clock("2031-07-15T09:30:00Z")  # after the recording: a fetch never reads past now
def test_the_waits_caption_names_no_server_line_on_prefect_2_data(tmp_path: Path) -> None:
    """Issue 26.6: on Prefect 2 data the caption said "Prefect 3 sets ...": say what the data
    shows instead (the states do not say which line wrote them)."""
    import httpx

    from tests.recorded import SINCE, UNTIL, Router
    from trs_analytics.charts import WAITS_AGREE_NOTE
    from trs_analytics.client import PrefectClient

    transport = httpx.MockTransport(Router(server="2.20.16"))
    with PrefectClient("http://test/api", transport=transport) as client:
        states = ta.fetch_states(client=client, since=SINCE, until=UNTIL)
    text = write_report(states, tmp_path / "r.html").read_text(encoding="utf-8")
    assert WAITS_AGREE_NOTE in text  # the waits agree in this capture: one panel, and why
    assert "expected start time is the moment its first state was written" in WAITS_AGREE_NOTE
    assert "Prefect 3" not in text


def test_report_refuses_an_empty_dataset(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no task-run states"):
        write_report(ta.empty_states(), tmp_path / "r.html")


def test_report_uses_now_and_period(states: pl.DataFrame, tmp_path: Path) -> None:
    end = states["timestamp"].max()
    assert isinstance(end, datetime)
    path = write_report(states, tmp_path / "r.html", title="Nightly", period="12h", now=end)
    text = path.read_text(encoding="utf-8")
    assert "<title>Nightly</title>" in text
    assert "Regressions against the previous 12h" in text
    assert f"to {end.astimezone(UTC):%H:%M:%S} UTC" in text


def test_bad_period_fails_before_drawing(states: pl.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="period='soon'"):
        write_report(states, tmp_path / "r.html", period="soon")
    assert list(tmp_path.iterdir()) == []


def test_report_makes_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "report.html"
    assert write_report(tt.generate_states(50, seed=2), out) == out
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


def test_report_without_failures_draws_the_overall_rate(tmp_path: Path) -> None:
    states = tt.generate_states(300, seed=4).filter(~pl.col("type").is_in(["FAILED", "CRASHED"]))
    text = write_report(states, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No task run failed: the rate over all runs." in text
    assert '"all runs"' in text


def _first_seconds(states: pl.DataFrame, seconds: int) -> pl.DataFrame:
    """The task runs of the sample that started in its first ``seconds`` (a short real capture)."""
    start = states["timestamp"].min()
    assert isinstance(start, datetime)
    runs = states.group_by("task_run_id").agg(pl.col("timestamp").min().alias("first"))
    early = runs.filter(pl.col("first") < start + timedelta(seconds=seconds))["task_run_id"]
    return states.filter(pl.col("task_run_id").is_in(early.implode()))


def test_short_capture_has_no_blank_panel(states: pl.DataFrame, tmp_path: Path) -> None:
    short = _first_seconds(states, 45)
    path = write_report(short, tmp_path / "short.html")
    text = path.read_text(encoding="utf-8")
    first, last = short["timestamp"].min(), short["timestamp"].max()
    assert isinstance(first, datetime)
    assert isinstance(last, datetime)
    assert f"{first:%H:%M:%S} to {last:%H:%M:%S} UTC" in text  # not "from 14:10 to 14:10"
    assert "Nothing to compare against: the previous 1m has no runs." in text
    result = open_in_chromium(path, tmp_path / "short.png")
    assert result["errors"] == [], "\n".join(result["errors"])
    for chart in result["charts"]:
        assert chart["panels"], chart
        assert all(n > 0 for n in chart["panels"]), f"a blank panel: {chart}"


def test_run_volume_of_a_short_capture_is_bucketed_by_its_span(states: pl.DataFrame) -> None:
    """Issue 26.4: a 56-second capture was drawn as two thin bars (1-minute buckets)."""
    from trs_analytics.report._report import report_data

    short = _first_seconds(states, 56)
    data = report_data(short)
    assert data["every"] == "5s"  # the shortest round width giving at most 40 buckets
    volume = data["volume"]
    firsts = short.group_by("task_run_id").agg(pl.col("timestamp").min())["timestamp"]
    expected = firsts.dt.truncate("5s").value_counts().sort("timestamp")
    got = volume.group_by("bucket").agg(pl.col("runs").sum()).sort("bucket")
    assert got.rows() == expected.rows()
    assert got.height >= 10


def test_sample_probe_panel_shows_its_failures(states: pl.DataFrame) -> None:
    series = ta.charts.failure_rate_series(states, by="task_name", top=6)
    probe = series.filter(group="probe", rate="final")
    assert probe.select("value", "failed", "runs").rows() == [(1.0, 24, 24)]


def test_text_is_escaped_once(tmp_path: Path) -> None:
    states = tt.generate_states(100, seed=3).with_columns(task_name=pl.lit("<b>x</b>"))
    text = write_report(states, tmp_path / "r.html", title="A & <B>").read_text(encoding="utf-8")
    assert "<title>A &amp; &lt;B&gt;</title>" in text
    assert "<h1>A &amp; &lt;B&gt;</h1>" in text
    assert "<td>&lt;b&gt;x&lt;/b&gt;</td>" in text
    assert "<b>x</b>" not in text.split("<script>")[0]


def test_text_in_a_linked_cell_is_escaped_inside_its_link(tmp_path: Path) -> None:
    evil = "<img src=x onerror=alert(1)>"
    states = tt.generate_states(100, seed=3).with_columns(task_run_name=pl.lit(evil))
    report = write_report(states, tmp_path / "r.html", ui_url="http://127.0.0.1:4200")
    text = report.read_text(encoding="utf-8")
    link = (
        r'<a href="http://127\.0\.0\.1:4200/runs/task-run/[^"<>]+" target="_blank" '
        r'rel="noopener">&lt;img src=x onerror=alert\(1\)&gt;</a>'
    )
    assert len(re.findall(link, text)) >= 10  # the failed and the slowest runs, each a link
    assert evil not in text  # neither in the tables nor in the charts' data


def test_a_name_that_opens_an_html_comment_does_not_stop_the_charts(tmp_path: Path) -> None:
    # In a <script>, "<!--<script>" makes the HTML parser pass over the element's own
    # </script>: the chart data must hold no "<" for the parser to see.
    states = tt.generate_states(100, seed=3).with_columns(task_run_name=pl.lit("<!--<script>"))
    report = write_report(states, tmp_path / "r.html")
    assert open_in_chromium(report, tmp_path / "r.png")["rendered"] == str(CHARTS)
    assert "<!--" not in report.read_text(encoding="utf-8")


def test_runs_link_to_the_prefect_ui(states: pl.DataFrame, tmp_path: Path) -> None:
    api = "https://api.prefect.cloud/api/accounts/A/workspaces/W"
    text = write_report(states, tmp_path / "r.html", api_url=api).read_text(encoding="utf-8")
    failed = ta.retry_counts(states).filter(pl.col("final_type") == "FAILED")["task_run_id"]
    links = re.findall(r'href="([^"]+)"', text)
    prefix = "https://app.prefect.cloud/account/A/workspace/W/runs/task-run/"
    assert sum(link.startswith(prefix) for link in links) >= 15
    assert {link.removeprefix(prefix) for link in links if link.startswith(prefix)} & set(failed)
    local = write_report(states, tmp_path / "l.html", ui_url="http://127.0.0.1:4200")
    assert 'href="http://127.0.0.1:4200/runs/task-run/' in local.read_text(encoding="utf-8")


def test_breakdowns_count_crashed_and_cancelled_apart(tmp_path: Path) -> None:
    text = write_report(tt.generate_states(400, seed=6), tmp_path / "r.html").read_text(
        encoding="utf-8"
    )
    for heading in (
        "Task runs per flow",
        "Task runs per task",
        "Top error messages per task",
        "Run volume",
    ):
        assert f"<h2>{heading}</h2>" in text
    assert "<th>crashed</th><th>cancelled</th>" in text


FLOW_RUNS = Path(__file__).parent.parent / "data" / "sample_flow_run_states.parquet"


def failing_oracle(flow_runs: pl.DataFrame, by: str = "deployment_name") -> dict[str, int]:
    """Deployments (or other ``by`` groups) whose latest finished flow run failed, and their
    failures since the last success: read from each run's last state by a plain sort, not
    with the metrics."""
    finals = (
        flow_runs.sort("timestamp")
        .group_by("flow_run_id", maintain_order=True)
        .last()
        .filter(pl.col("name").is_in(["Completed", "Failed", "Crashed"]))
        .sort("timestamp")
    )
    out: dict[str, int] = {}
    for (deployment,), runs in finals.group_by(by):
        names = runs["name"].to_list()
        streak = (
            len(names) - 1 - max((i for i, n in enumerate(names) if n == "Completed"), default=-1)
        )
        if streak:
            out[str(deployment)] = streak
    return out


@pytest.fixture(scope="module")
def flow_report(states: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    flow_runs = pl.scan_parquet(FLOW_RUNS)
    path = tmp_path_factory.mktemp("flow-report") / "report.html"
    return write_report(states, path, flow_run_states=flow_runs)


def test_report_with_flow_runs_has_their_section(flow_report: Path, report: Path) -> None:
    text = flow_report.read_text(encoding="utf-8")
    assert text.count('class="chart"') == CHARTS + 3
    assert "Flow runs: deployments currently failing" in text
    assert "Flow runs:" not in report.read_text(encoding="utf-8")
    failing = failing_oracle(pl.read_parquet(FLOW_RUNS))
    assert failing, "the bundled flow runs should have a deployment failing at the end"
    for deployment, streak in failing.items():
        assert f"<td>{deployment}</td><td>" in text
        row = text.split(f"<td>{deployment}</td>", 1)[1].split("</tr>", 1)[0]
        assert re.findall(r'<td class="num">([0-9,]+)</td>', row)[0] == str(streak)


def test_report_with_flow_runs_renders_in_chromium(flow_report: Path, tmp_path: Path) -> None:
    result = open_in_chromium(flow_report, tmp_path / "flow-report.png")
    assert result["errors"] == [], "\n".join(result["errors"])
    assert result["rendered"] == str(CHARTS + 3)
    for chart in result["charts"]:
        assert chart["svg"], chart
        assert 0.85 * chart["card"] <= chart["width"] <= chart["card"], chart
        assert all(n > 0 for n in chart["panels"]), f"a blank panel: {chart}"


def undeployed(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` as if its flows had run as scripts (no deployment), as the devtools workload's."""
    return frame.with_columns(
        pl.lit(None, dtype=pl.String).alias(c) for c in ("deployment_id", "deployment_name")
    )


@pytest.fixture(scope="module")
def undeployed_report(states: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("undeployed") / "report.html"
    flow_runs = undeployed(pl.read_parquet(FLOW_RUNS))
    return write_report(undeployed(states), path, flow_run_states=flow_runs)


def test_flow_runs_without_deployments_are_grouped_by_flow(undeployed_report: Path) -> None:
    """Issue 26.2: one "(none)" group lumped every flow together."""
    text = undeployed_report.read_text(encoding="utf-8")
    flow_runs = pl.read_parquet(FLOW_RUNS)
    failing = failing_oracle(flow_runs, by="flow_name")
    assert failing, "a flow of the bundled flow runs should be failing at the end"
    for flow, streak in failing.items():
        row = text.split(f"<td>{flow} (no deployment)</td>", 1)[1].split("</tr>", 1)[0]
        assert re.findall(r'<td class="num">([0-9,]+)</td>', row)[0] == str(streak)
    assert "(none)" not in text
    assert text.count("Flow runs without a deployment are grouped by flow") == 4
    groups = set(re.findall(r'"deployment_name": "([^"]+)"', text))
    flows = set(flow_runs["flow_name"].unique())
    assert groups
    assert groups <= {f"{f} (no deployment)" for f in flows}, groups


def test_a_report_without_deployments_draws_every_chart_in_chromium(
    undeployed_report: Path, tmp_path: Path
) -> None:
    """Issue 26.1: two flow-run charts were blank (Vega's 'Infinite extent' warnings)."""
    result = open_in_chromium(undeployed_report, tmp_path / "undeployed.png")
    assert result["errors"] == [], "\n".join(result["errors"])
    assert result["rendered"] == str(CHARTS + 3)
    for chart in result["charts"]:
        assert chart["svg"], chart
        assert chart["panels"], chart
        assert all(n > 0 for n in chart["panels"]), f"a blank panel: {chart}"


def test_flow_run_charts_draw_runs_without_a_deployment_on_their_own() -> None:
    flow_runs = undeployed(pl.read_parquet(FLOW_RUNS))
    trend = ta.charts.flow_duration_chart(flow_runs, every="6h").to_dict()
    landing = ta.charts.landing_time_chart(flow_runs).to_dict()
    for spec in (trend, landing):
        rows = next(iter(spec["datasets"].values()))
        assert rows, spec.get("title")
        assert {r["deployment_name"] for r in rows} == {"(no deployment)"}


def test_the_anomalies_and_slas_section_lists_what_was_planted_or_says_nothing(
    tmp_path: Path,
) -> None:
    planted = tt.generate_planted(seed=2, days=20, n_tasks=4)
    rules = ta.parse_rules('[[rule]]\nname = "on time"\ntask = "*"\nmax_lateness = "15m"')
    path = write_report(
        planted.states, tmp_path / "r.html", now=planted.end, rules=rules, ui_url="http://ui"
    )
    text = path.read_text(encoding="utf-8")
    assert "<h2>Anomalies and SLAs</h2>" in text
    assert "<h2>Expected run time band</h2>" in text  # the planted spikes, in their band
    truth = planted.truth
    for kind in ("stuck", "late_run"):
        for run in truth.filter(pl.col("kind") == kind)["task_run_id"]:
            assert f'href="http://ui/runs/task-run/{run}"' in text, (kind, run)
    clean = tt.generate_planted(
        seed=2, days=20, n_tasks=4, spikes=0, failure_jumps=0, stuck=0, slow_runs=0,
        late_runs=0, gaps=0,
    )  # fmt: skip
    quiet = write_report(clean.states, tmp_path / "q.html", now=clean.end, rules=rules)
    assert "Nothing flagged: no anomalous day, no stuck run, no SLA breach." in quiet.read_text(
        encoding="utf-8"
    )


@pytest.mark.parametrize(
    ("spec", "notes"),
    [
        pytest.param(
            "Pending@0 Running@1 AwaitingRetry@2 Retrying@3 Completed@5",
            [
                "5 states; 0 unfinished",
                "1 task run failed its first attempt",
                "1 retry; 1 task run rescued",
            ],
            id="one",
        ),
        pytest.param(
            "Pending@0 Running@1 Completed@2",
            [
                "3 states; 0 unfinished",
                "0 task runs failed their first attempt",
                "0 retries; 0 task runs",
            ],
            id="none",
        ),
    ],
)
def test_the_headline_cards_count_in_words_that_agree(spec: str, notes: list[str]) -> None:
    from tests.builders import history, states
    from trs_analytics.report._tables import headlines

    cards = {h.label: h.note for h in headlines(states(history(spec, task_run_id="a")), agree=True)}
    assert [cards["Task runs"], cards["First-attempt failure rate"]] == notes[:2]
    assert cards["Retried task runs"].startswith(notes[2])
    assert cards["Final failure rate"].endswith("; 0 of 1 finished task run")  # not "1 runs"
    assert "unfinished" not in cards["Flow runs"]  # task runs are counted on their own card

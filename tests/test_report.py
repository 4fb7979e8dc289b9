"""write_report: the HTML is self-contained, and headless Chromium draws every chart without errors.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``,
stdlib only): console errors, uncaught exceptions and failed loads are collected
as events, the page is screenshotted, and the screenshot's pixels are checked
in the browser itself (it decodes the PNG on a canvas).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import trs_analytics as ta
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.report import write_report

SAMPLE = Path(__file__).parent.parent / "data" / "sample_states.parquet"
CHARTS = 8  # charts in a report
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "chromium is not installed, so the report cannot be checked in a browser. "
            "Hint: apt-get install -y chromium (the Debian package; .ci/run installs it)."
        )
    return path


class DevTools:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``."""

    def __init__(self, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire() -> None:  # in the child: the protocol reads fd 3 and writes fd 4
            high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)  # dup2 leaves the copy inheritable
            os.dup2(high_w, 4)

        self.process = subprocess.Popen(
            [
                _chromium(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            start_new_session=True,  # its own process group, ended as a whole in close()  # fds 3 and 4 must survive; Python's own fds are close-on-exec
            preexec_fn=wire,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        """Ask Chromium to quit, then make sure its whole process group is gone."""
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close", timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # renderer, GPU... started by it
        self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_chrome], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def send(
        self, method: str, session: str | None = None, timeout: float = 60, **params: Any
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        """Return the first event ``method`` received (reading more until it comes)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event["method"] == method:
                    return event
            seen = len(self.events)
            reply = self._read(deadline)
            if "method" in reply:
                self.events.append(reply)

    def evaluate(self, session: str, expression: str, timeout: float = 60) -> Any:
        result = self.send(
            "Runtime.evaluate",
            session,
            timeout,
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(
                f"evaluating {expression[:60]!r} failed: {result['exceptionDetails']}"
            )
        return result["result"].get("value")


# Decodes the screenshot (a PNG data URL) on a canvas and measures its pixels.
PIXEL_STATS = """
(async (url) => {
  const image = await createImageBitmap(await (await fetch(url)).blob());
  const canvas = new OffscreenCanvas(image.width, image.height);
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const data = context.getImageData(0, 0, image.width, image.height).data;
  let sum = 0, sumSq = 0, n = 0;
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4 * 7) {
    const grey = (data[i] + data[i + 1] + data[i + 2]) / 3;
    sum += grey; sumSq += grey * grey; n += 1;
    if (colours.size < 5000) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  }
  const mean = sum / n;
  return {width: image.width, height: image.height, std: Math.sqrt(sumSq / n - mean * mean),
          colours: colours.size};
})(%s)
"""

# Per chart: the SVG's size, how many marks it drew, and per panel (facet cell) how many
# data marks can be seen (not transparent, not zero-sized: a one-point line is invisible).
CHART_STATS = """
Array.from(document.querySelectorAll(".chart")).map(el => {
  const svg = el.querySelector("svg");
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const cell = el.querySelector("g.cell");
  const panels = svg ? (cell ? Array.from(cell.children) : [svg]) : [];
  const visible = panels.map(panel => Array.from(panel.querySelectorAll("g.role-mark > *"))
    .filter(m => { const b = m.getBBox(), style = getComputedStyle(m);
      const stroked = style.stroke !== "none" && parseFloat(style.strokeWidth) > 0;
      const filled = style.fill !== "none" && b.width > 0 && b.height > 0;
      return Number(m.getAttribute("opacity") ?? 1) > 0 && style.display !== "none"
        && (filled || (stroked && (b.width > 0 || b.height > 0))); }).length);
  return {id: el.id, svg: !!svg, width: box.width, height: box.height, panels: visible,
          marks: svg ? svg.querySelectorAll("path, rect, line, circle, text").length : 0};
})
"""


def open_in_chromium(html: Path, screenshot: Path, *, wait_ms: int = 45_000) -> dict[str, Any]:
    """Load ``html`` in headless Chromium; return errors, chart stats and screenshot stats."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        browser = DevTools(Path(profile))
        try:
            target = browser.send("Target.createTarget", url="about:blank")["targetId"]
            session = browser.send("Target.attachToTarget", targetId=target, flatten=True)[
                "sessionId"
            ]
            for domain in ("Runtime", "Log", "Page"):
                browser.send(f"{domain}.enable", session)
            browser.send(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=1280,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
            browser.send("Page.navigate", session, url=html.as_uri())
            browser.wait_for("Page.loadEventFired")
            rendered = browser.evaluate(
                session,
                """new Promise(done => { const t0 = Date.now(); const poll = () => {
                     const n = document.body && document.body.dataset.chartsRendered;
                     if (n !== undefined || Date.now() - t0 > WAIT) done(n ?? null);
                     else setTimeout(poll, 100); }; poll(); })""".replace("WAIT", str(wait_ms)),
            )
            charts = browser.evaluate(session, CHART_STATS)
            height = browser.evaluate(session, "document.documentElement.scrollHeight")
            shot = browser.send(
                "Page.captureScreenshot",
                session,
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": 1280, "height": min(height, 12000), "scale": 1},
            )["data"]
            screenshot.write_bytes(base64.b64decode(shot))
            pixels = browser.evaluate(
                session, PIXEL_STATS % json.dumps(f"data:image/png;base64,{shot}")
            )
            errors = _errors(browser.events)
        finally:
            browser.close()
    return {"rendered": rendered, "charts": charts, "pixels": pixels, "errors": errors}


def _errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in (
            "error",
            "assert",
            "warning",
        ):
            texts = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
            errors.append(f"console.{params['type']}: {' '.join(texts)}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(f"exception: {details.get('exception', {}).get('description', details)}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            errors.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
    return errors


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
        assert chart["width"] > 200, chart
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
    with pytest.raises(ConfigurationError, match="window='soon'"):
        write_report(states, tmp_path / "r.html", period="soon")
    assert list(tmp_path.iterdir()) == []


def test_report_makes_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "report.html"
    assert write_report(ta.generate_states(50, seed=2), out) == out
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


def test_report_without_failures_draws_the_overall_rate(tmp_path: Path) -> None:
    states = ta.generate_states(300, seed=4).filter(~pl.col("type").is_in(["FAILED", "CRASHED"]))
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


def test_sample_probe_panel_shows_its_failures(states: pl.DataFrame) -> None:
    series = ta.charts.failure_rate_series(states, by="task_name", top=6)
    probe = series.filter(group="probe", rate="final")
    assert probe.select("value", "failed", "runs").rows() == [(1.0, 24, 24)]


def test_text_is_escaped_once(tmp_path: Path) -> None:
    states = ta.generate_states(100, seed=3).with_columns(task_name=pl.lit("<b>x</b>"))
    text = write_report(states, tmp_path / "r.html", title="A & <B>").read_text(encoding="utf-8")
    assert "<title>A &amp; &lt;B&gt;</title>" in text
    assert "<h1>A &amp; &lt;B&gt;</h1>" in text
    assert "<td>&lt;b&gt;x&lt;/b&gt;</td>" in text
    assert "<b>x</b>" not in text.split("<script>")[0]


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
    text = write_report(ta.generate_states(400, seed=6), tmp_path / "r.html").read_text(
        encoding="utf-8"
    )
    for heading in ("Runs per flow", "Runs per task", "Top error messages per task", "Run volume"):
        assert f"<h2>{heading}</h2>" in text
    assert "<th>crashed</th><th>cancelled</th>" in text


def test_the_anomalies_and_slas_section_lists_what_was_planted_or_says_nothing(
    tmp_path: Path,
) -> None:
    planted = ta.generate_planted(seed=2, days=20, n_tasks=4)
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
    clean = ta.generate_planted(
        seed=2, days=20, n_tasks=4, spikes=0, failure_jumps=0, stuck=0, slow_runs=0,
        late_runs=0, gaps=0,
    )  # fmt: skip
    quiet = write_report(clean.states, tmp_path / "q.html", now=clean.end, rules=rules)
    assert "Nothing flagged: no anomalous day, no stuck run, no SLA breach." in quiet.read_text(
        encoding="utf-8"
    )

"""Headless Chromium, driven over the DevTools protocol on a pipe: does a page render?

``--remote-debugging-pipe``, stdlib only: console errors, uncaught exceptions and
failed loads are collected as events, the page is screenshotted, and the
screenshot's pixels are checked in the browser itself (it decodes the PNG on a
canvas). Used by the report tests (tests/test_report*.py).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

__all__ = ["open_in_chromium"]

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
          card: el.clientWidth,
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

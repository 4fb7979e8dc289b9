"""Two ways out of one computation: an HTTP ``/metrics`` endpoint and a textfile.

:func:`serve_metrics` answers scrapes from the last snapshot while a
background thread refreshes it: when the dataset's cursor moves (it is read
every ``poll`` seconds, a small JSON file), or every ``refresh`` seconds. A
failed refresh is logged and counted, and the last values stay served.
:func:`write_textfile` computes once and writes the same text atomically, for
node_exporter's textfile collector.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, BinaryIO, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
)

from trs_analytics._atomic import atomic_write
from trs_analytics.exceptions import TrsAnalyticsError
from trs_analytics.prometheus._families import SnapshotCollector, StatusCollector, registry_for
from trs_analytics.prometheus._snapshot import OTHER, compute_snapshot
from trs_analytics.storage import (
    FLOW_RUN_TABLE,
    MARKER_NAME,
    list_parquet_files,
    read_dataset_info,
    scan_flow_run_states,
    scan_states,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime, timedelta

    from trs_analytics.prometheus._snapshot import Snapshot

__all__ = [
    "MetricsSource",
    "Refresher",
    "dataset_version",
    "metrics_app",
    "render_metrics",
    "serve_metrics",
    "write_textfile",
]

logger = logging.getLogger("trs_analytics.prometheus")

#: How often the server reads the dataset's cursor, in seconds.
POLL_SECONDS: Final = 2.0


def _cursor(folder: Path) -> datetime | None:
    return read_dataset_info(folder).cursor if (folder / MARKER_NAME).is_file() else None


def dataset_version(path: str | Path) -> tuple[Any, ...]:
    """What changes when the dataset at ``path`` does: its cursors, or a file's size and time.

    A dataset's cursor moves after every export that read something (the
    flow-run table has a cursor of its own); a plain Parquet file or folder has
    no cursor, so its files' sizes and modification times stand for it.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> dataset_version(folder)
        ('files', ())
    """
    where = Path(path)
    if (where / MARKER_NAME).is_file():
        return ("cursor", _cursor(where), _cursor(where / FLOW_RUN_TABLE))
    files = [where] if where.is_file() else list_parquet_files(where)
    stats = tuple(sorted((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files))
    return ("files", stats)


def _scan_polars(path: Path) -> tuple[Any, Any]:
    flows = scan_flow_run_states(path) if (path / FLOW_RUN_TABLE).is_dir() else None
    return scan_states(path), flows


@dataclass(frozen=True)
class MetricsSource:
    """Where a refresh reads, and what it computes.

    Attributes:
        path: a dataset folder (or a Parquet file or folder of task-run states).
        scan: opens ``(task-run states, flow-run states or None)`` on the chosen
            engine; called once per refresh, so new files are seen. Default:
            Polars, with the dataset's flow-run table when it has one.
        window: the width of the window families' window.
        now: the window's end; default: the dataset's cursor, else its newest state.
        max_series: groups past this are summed into ``"(other)"``.
    """

    path: Path
    scan: Callable[[], tuple[Any, Any]] | None = None
    window: str | timedelta = "1d"
    now: datetime | None = None
    max_series: int = 200

    def snapshot(self) -> Snapshot:
        """Compute a snapshot of the dataset as it is now, and log how many groups were folded."""
        snap = self.compute()
        _log_folded(snap, self.max_series)
        return snap

    def compute(self) -> Snapshot:
        """Compute a snapshot of the dataset as it is now (nothing logged)."""
        states, flows = (self.scan or (lambda: _scan_polars(self.path)))()
        return compute_snapshot(
            states,
            flow_run_states=flows,
            window=self.window,
            now=self.now,
            cursor=_cursor(self.path) if self.path.is_dir() else None,
            max_series=self.max_series,
        )


def _log_folded(snap: Snapshot, max_series: int) -> None:
    for kind, count in snap.folded.items():
        if count:
            logger.warning(
                "%d %s groups past --max-series %d are summed into the %r series",
                count,
                kind,
                max_series,
                OTHER,
            )


class Refresher:
    """Keeps a collector's snapshot fresh from a background thread.

    It refreshes at once, then whenever :func:`dataset_version` changes
    (checked every ``poll`` seconds) or ``every`` seconds have passed.
    """

    def __init__(
        self,
        source: MetricsSource,
        collector: SnapshotCollector,
        *,
        every: float = 60.0,
        poll: float = POLL_SECONDS,
    ) -> None:
        self.source, self.collector = source, collector
        self.every, self.poll = every, poll
        self._stop = threading.Event()
        self._folded: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name="trs-metrics-refresh", daemon=True)

    def refresh(self) -> bool:
        """Compute and publish a snapshot; on an error, log it, count it, keep the last one.

        Any exception is caught (a DuckDB or Spark error is not a
        ``TrsAnalyticsError``): a long-running server must outlive a bad refresh,
        and ``trs_exporter_refresh_failures_total`` makes the failure alertable.
        """
        try:
            snap = self.source.compute()
        except Exception:  # an engine's own error too: the server keeps serving
            self.collector.failed()
            logger.exception("refresh failed, the last values stay served")
            return False
        self.collector.publish(snap, ended=time.time())
        logger.info(
            "refreshed in %.2f s: %d states, window to %s", snap.seconds, snap.states, snap.at
        )
        if snap.folded != self._folded:  # a warning when it changes, not every refresh
            self._folded = snap.folded
            _log_folded(snap, self.source.max_series)
        return True

    def _run(self) -> None:
        version, last = self._version(), time.monotonic()
        self.refresh()
        while not self._stop.wait(self.poll):
            now_version = self._version()
            if now_version != version or time.monotonic() - last >= self.every:
                version, last = now_version, time.monotonic()
                self.refresh()

    def _version(self) -> tuple[Any, ...]:
        try:
            return dataset_version(self.source.path)
        except (TrsAnalyticsError, OSError) as err:
            return ("unreadable", str(err))

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread (after the refresh under way, if any)."""
        self._stop.set()
        self._thread.join()


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per scrape; the threads die with the process."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log line per scrape."""


def metrics_app(collector: SnapshotCollector) -> Callable[..., list[bytes]]:
    """A WSGI app answering ``/metrics`` from the last published text and the live part.

    ``prometheus_client`` renders both (the snapshot's once, when published; the
    exporter's own and the process's series at each scrape, a few lines).
    """
    live = CollectorRegistry(auto_describe=False)
    live.register(StatusCollector(collector))
    ProcessCollector(registry=live)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Not found: the metrics are at /metrics.\n"]
        body = collector.text() + generate_latest(live)
        headers = [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))]
        start_response("200 OK", headers)
        return [body]

    return app


def serve_metrics(
    source: MetricsSource,
    *,
    host: str = "127.0.0.1",
    port: int = 9464,
    refresh: float = 60.0,
    stop: threading.Event | None = None,
) -> None:
    """Serve ``/metrics`` on ``host:port`` until ``stop`` is set (or the process ends).

    The server answers at once; until the first refresh ends it serves only the
    exporter's own families (``trs_exporter_refreshes_total`` is 0 then) and the
    process's. A scrape copies the text rendered at the last refresh: it never computes.
    """
    collector = SnapshotCollector()
    server = make_server(
        host, port, metrics_app(collector), server_class=_Server, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="trs-metrics-http", daemon=True)
    thread.start()
    refresher = Refresher(source, collector, every=refresh)
    refresher.start()
    try:
        (stop or threading.Event()).wait()
    finally:
        refresher.stop()
        server.shutdown()
        server.server_close()
        thread.join()


def render_metrics(snap: Snapshot) -> bytes:
    """The Prometheus text exposition of a snapshot.

    Examples:
        >>> from datetime import UTC, datetime
        >>> from trs_analytics.testing import generate_states
        >>> from trs_analytics.prometheus import compute_snapshot
        >>> states = generate_states(200, seed=1, start=datetime(2026, 1, 1, tzinfo=UTC), days=1)
        >>> text = render_metrics(compute_snapshot(states)).decode()
        >>> "trs_dataset_states_total 621.0" in text
        True
    """
    collector = SnapshotCollector()
    collector.publish(snap, ended=time.time())
    return generate_latest(registry_for(collector))


def write_textfile(path: str | Path, snap: Snapshot) -> Path:
    """Write a snapshot's text to ``path`` atomically (node_exporter's textfile collector).

    The temporary file is hidden and does not end in ``.prom``, so the
    collector never reads half a file.

    Raises:
        StorageError: the folder cannot be written.
    """
    text = render_metrics(snap)

    def write(handle: BinaryIO) -> None:
        handle.write(text)

    return atomic_write(Path(path), write)

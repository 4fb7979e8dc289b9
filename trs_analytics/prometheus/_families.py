"""Metric families from a snapshot, in ``prometheus_client``'s types (never hand-written text).

:func:`families` is pure: a :class:`~trs_analytics.prometheus._snapshot.Snapshot`
in, the families out. :class:`SnapshotCollector` yields them from the last
snapshot it was given, so a scrape reads values and never computes; it adds the
exporter's own families (when it last refreshed, how long that took, how many
refreshes failed). A scrape of ``serve-metrics`` reads the snapshot's text as
rendered when it was published (:meth:`SnapshotCollector.text`) followed by the
small live part (:class:`StatusCollector`, the process's own series).
``docs/prometheus.md`` lists every family.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from trs_analytics.prometheus._snapshot import BUCKETS, FLOW_KEYS, QUANTILES, TASK_KEYS

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import polars as pl
    from prometheus_client.metrics_core import Metric

    from trs_analytics.prometheus._snapshot import Snapshot

__all__ = ["RefreshStatus", "SnapshotCollector", "StatusCollector", "families", "registry_for"]


def _labels(row: dict[str, Any], keys: Sequence[str]) -> list[str]:
    return ["" if row[k] is None else str(row[k]) for k in keys]


def _histogram(name: str, doc: str, frame: pl.DataFrame, keys: Sequence[str]) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=list(keys))
    for row in frame.iter_rows(named=True):
        buckets = [(str(le), float(row[f"le_{i}"])) for i, le in enumerate(BUCKETS)]
        buckets.append(("+Inf", float(row["count"])))
        family.add_metric(_labels(row, keys), buckets, float(row["sum"]))
    return family


def _runs_counter(name: str, doc: str, frame: pl.DataFrame, keys: Sequence[str]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=[*keys, "final_type"])
    for row in frame.iter_rows(named=True):
        family.add_metric(_labels(row, [*keys, "final_type"]), float(row["runs"]))
    return family


def _gauge(name: str, doc: str, frame: pl.DataFrame, keys: Sequence[str], column: str) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=list(keys))
    for row in frame.iter_rows(named=True):
        if row[column] is not None:
            family.add_metric(_labels(row, keys), float(row[column]))
    return family


def _task_families(snap: Snapshot) -> Iterator[Metric]:
    keys = TASK_KEYS
    yield _runs_counter(
        "trs_task_runs",
        "Finished task runs by final state type, over the whole dataset.",
        snap.task_runs,
        keys,
    )
    retries = CounterMetricFamily(
        "trs_task_run_retries",
        "Retries of finished task runs, over the whole dataset.",
        labels=keys,
    )
    for row in snap.task_retries.iter_rows(named=True):
        retries.add_metric(_labels(row, keys), float(row["retries"]))
    yield retries
    yield _histogram(
        "trs_task_run_time_seconds",
        "Task run time (time in Running states, all attempts), over the whole dataset.",
        snap.task_run_time,
        keys,
    )
    window = SummaryMetricFamily(
        "trs_task_run_time_window_seconds",
        "Task run time over the window (task runs with a state in it): exact quantiles.",
        labels=keys,
    )
    for row in snap.task_window.iter_rows(named=True):
        if not row["measured"]:
            continue
        labels = _labels(row, keys)
        window.add_metric(labels, row["measured"], float(row["total"]))
        for q, column in QUANTILES.items():
            where = {**dict(zip(keys, labels, strict=True)), "quantile": q}
            window.samples.append(Sample(window.name, where, float(row[column])))
    yield window
    rates = snap.task_window
    yield _gauge(
        "trs_task_failure_rate",
        "Failed (FAILED or CRASHED) share of the task runs finished in the window.",
        rates,
        keys,
        "failure_rate",
    )
    yield _gauge(
        "trs_task_failure_rate_lower",
        "Lower bound of the failure rate's 95% Wilson interval.",
        rates,
        keys,
        "ci_low",
    )
    yield _gauge(
        "trs_task_failure_rate_upper",
        "Upper bound of the failure rate's 95% Wilson interval.",
        rates,
        keys,
        "ci_high",
    )
    yield _gauge(
        "trs_stuck_runs",
        "Task runs stuck in a Running or Pending state at the window's end.",
        snap.stuck,
        keys,
        "stuck",
    )


def _flow_families(snap: Snapshot) -> Iterator[Metric]:
    keys = FLOW_KEYS
    yield _runs_counter(
        "trs_flow_runs",
        "Finished flow runs by final state type, over the whole dataset.",
        snap.flow_runs,
        keys,
    )
    yield _histogram(
        "trs_flow_run_time_seconds",
        "Flow run time (time in Running states), over the whole dataset.",
        snap.flow_run_time,
        keys,
    )
    yield _histogram(
        "trs_flow_run_lateness_seconds",
        "Flow run lateness (first Running state minus the expected start), whole dataset.",
        snap.flow_lateness,
        keys,
    )


def _dataset_families(snap: Snapshot) -> Iterator[Metric]:
    findings = GaugeMetricFamily(
        "trs_check_findings", "Open findings of the check at the window's end.", labels=["kind"]
    )
    for kind, count in snap.findings.items():
        findings.add_metric([kind], float(count))
    yield findings
    yield CounterMetricFamily(
        "trs_dataset_states", "Task-run states in the dataset.", value=float(snap.states)
    )
    if snap.last_state is not None:
        yield GaugeMetricFamily(
            "trs_dataset_last_state_timestamp_seconds",
            "Time of the dataset's newest task-run state (Unix seconds).",
            value=snap.last_state.timestamp(),
        )
    if snap.cursor is not None:
        yield GaugeMetricFamily(
            "trs_dataset_cursor_timestamp_seconds",
            "The dataset's cursor: its export has read everything before it (Unix seconds).",
            value=snap.cursor.timestamp(),
        )
    yield GaugeMetricFamily(
        "trs_window_end_timestamp_seconds",
        "The end of the window the window families describe (Unix seconds).",
        value=snap.at.timestamp(),
    )
    folded = GaugeMetricFamily(
        "trs_exporter_folded_groups",
        'Groups past --max-series, summed into the "(other)" series.',
        labels=["kind"],
    )
    for kind in ("task", "flow"):
        folded.add_metric([kind], float(snap.folded.get(kind, 0)))
    yield folded


def families(snap: Snapshot) -> list[Metric]:
    """Every metric family of a snapshot (docs/prometheus.md lists them).

    Examples:
        >>> from datetime import UTC, datetime
        >>> from trs_analytics.testing import generate_states
        >>> from trs_analytics.prometheus import compute_snapshot
        >>> states = generate_states(200, seed=1, start=datetime(2026, 1, 1, tzinfo=UTC), days=1)
        >>> [f.name for f in families(compute_snapshot(states))][:3]
        ['trs_task_runs', 'trs_task_run_retries', 'trs_task_run_time_seconds']
    """
    return [*_task_families(snap), *_flow_families(snap), *_dataset_families(snap)]


@dataclass(frozen=True)
class RefreshStatus:
    """The exporter's own state: its last refresh and how refreshes went."""

    refreshes: int = 0
    failures: int = 0
    last_success: float | None = None  # Unix seconds
    last_seconds: float | None = None

    def families(self) -> Iterator[Metric]:
        """The exporter's own families."""
        yield CounterMetricFamily(
            "trs_exporter_refreshes", "Refreshes completed.", value=float(self.refreshes)
        )
        yield CounterMetricFamily(
            "trs_exporter_refresh_failures",
            "Refreshes that failed (the last values are kept).",
            value=float(self.failures),
        )
        if self.last_success is not None and self.last_seconds is not None:
            yield GaugeMetricFamily(
                "trs_exporter_last_refresh_timestamp_seconds",
                "When the last successful refresh ended (Unix seconds).",
                value=self.last_success,
            )
            yield GaugeMetricFamily(
                "trs_exporter_refresh_duration_seconds",
                "How long the last successful refresh took.",
                value=self.last_seconds,
            )


class SnapshotCollector(Collector):
    """A collector that yields the last snapshot's families: a scrape never computes.

    Examples:
        >>> collector = SnapshotCollector()
        >>> [m.name for m in collector.collect()]
        ['trs_exporter_refreshes', 'trs_exporter_refresh_failures']
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: list[Metric] = []
        self._text = b""
        self.status = RefreshStatus()

    def publish(self, snap: Snapshot, *, ended: float) -> None:
        """Serve ``snap`` from now on (``ended``: when its refresh ended, Unix seconds).

        Its text is rendered here, once, so that a scrape only copies bytes.
        """
        built = families(snap)
        text = generate_latest(_Fixed(built))
        with self._lock:
            self._families, self._text = built, text
            self.status = replace(
                self.status,
                refreshes=self.status.refreshes + 1,
                last_success=ended,
                last_seconds=snap.seconds,
            )

    def failed(self) -> None:
        """Count a failed refresh (the last snapshot stays served)."""
        with self._lock:
            self.status = replace(self.status, failures=self.status.failures + 1)

    def collect(self) -> Iterator[Metric]:
        """The last snapshot's families and the exporter's own."""
        with self._lock:
            served, status = list(self._families), self.status
        yield from served
        yield from status.families()

    def text(self) -> bytes:
        """The last snapshot's families in the text format, as rendered when published."""
        with self._lock:
            return self._text


class _Fixed(Collector):
    """Yields the families it was given."""

    def __init__(self, built: Sequence[Metric]) -> None:
        self.built = built

    def collect(self) -> Iterator[Metric]:
        yield from self.built


class StatusCollector(Collector):
    """The exporter's own families (refreshes, failures, last refresh), read at each scrape."""

    def __init__(self, collector: SnapshotCollector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        yield from self.collector.status.families()


def registry_for(collector: SnapshotCollector, *, process: bool = False) -> CollectorRegistry:
    """A registry holding ``collector`` (and the process's CPU and memory, if ``process``)."""
    from prometheus_client import ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if process:
        ProcessCollector(registry=registry)
    return registry

"""Task-level metrics for Prometheus and Grafana, served from a dataset.

A use case above the metrics and the check: :func:`compute_snapshot` runs the
metric functions on the engine of the frame it is given and keeps one row per
group; :func:`families` turns that into ``prometheus_client`` metric families;
:func:`serve_metrics` serves them on ``/metrics`` (refreshed in the background,
so a scrape never computes) and :func:`write_textfile` writes them for
node_exporter's textfile collector. ``trs-analytics serve-metrics`` and
``trs-analytics metrics`` call these; ``docs/prometheus.md`` lists the families.
"""

from __future__ import annotations

from trs_analytics.prometheus._families import (
    RefreshStatus,
    SnapshotCollector,
    StatusCollector,
    families,
    registry_for,
)
from trs_analytics.prometheus._serve import (
    MetricsSource,
    Refresher,
    dataset_version,
    metrics_app,
    render_metrics,
    serve_metrics,
    write_textfile,
)
from trs_analytics.prometheus._snapshot import (
    BUCKETS,
    FLOW_KEYS,
    OTHER,
    TASK_KEYS,
    Snapshot,
    compute_snapshot,
)

__all__ = [
    "BUCKETS",
    "FLOW_KEYS",
    "OTHER",
    "TASK_KEYS",
    "MetricsSource",
    "RefreshStatus",
    "Refresher",
    "Snapshot",
    "SnapshotCollector",
    "StatusCollector",
    "compute_snapshot",
    "dataset_version",
    "families",
    "metrics_app",
    "registry_for",
    "render_metrics",
    "serve_metrics",
    "write_textfile",
]

"""Prefect flows that run the incremental export and the check, for ``.serve()`` or a deployment.

Prefect is not a dependency of trs_analytics: this module needs it installed
(``pip install prefect``) and says so when it is not. Serve it on a schedule
from any machine that can reach the server and write the dataset folder::

    from trs_analytics.flows import export_flow

    export_flow.serve(
        name="trs-analytics-export",
        cron="*/15 * * * *",
        parameters={"out": "/data/prefect-states"},
    )

Inside a flow run ``PREFECT_API_URL`` is set, so ``api_url`` may be left out:
the flow exports from the server that runs it. Each run is one
:func:`trs_analytics.export.export_states` call: it starts at the dataset's
cursor minus the overlap, so a missed or failed run is caught up by the next.
Two runs that overlap in time do not corrupt the dataset: the second one fails
at once on the dataset's lock (or waits ``wait_seconds``).

:func:`check_flow` runs ``trs-analytics check`` (anomalies, stuck runs, SLA
rules) and publishes its findings as a Markdown artifact (key
``trs-analytics-check``) on the flow run.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

try:
    from prefect import flow, get_run_logger
    from prefect.artifacts import create_markdown_artifact
except ImportError as err:  # pragma: no cover - exercised only without prefect
    msg = (
        "trs_analytics.flows needs Prefect, which is not installed. "
        "Hint: pip install prefect (or use the 'trs-analytics export' command from cron)."
    )
    raise ImportError(msg) from err

from trs_analytics.check import check_from, findings_markdown, load_rules
from trs_analytics.client import PrefectClient
from trs_analytics.export import export_states
from trs_analytics.fetch import parse_when
from trs_analytics.storage import DEFAULT_OVERLAP

if TYPE_CHECKING:
    from trs_analytics.fetch import Source

__all__ = ["ARTIFACT_KEY", "check_flow", "export_flow"]

#: The key of the Markdown artifact :func:`check_flow` publishes.
ARTIFACT_KEY = "trs-analytics-check"


@flow(name="trs-analytics-export", retries=1, retry_delay_seconds=60)
def export_flow(
    out: str,
    api_url: str | None = None,
    since: str | None = None,
    until: str | None = None,
    source: str = "auto",
    overlap_minutes: float = DEFAULT_OVERLAP.total_seconds() / 60,
    wait_seconds: float = 0.0,
    flow_names: list[str] | None = None,
    deployments: list[str] | None = None,
    work_pools: list[str] | None = None,
    task_names: list[str] | None = None,
    tags: list[str] | None = None,
    state_types: list[str] | None = None,
    flow_runs: bool = True,
) -> dict[str, Any]:
    """Export task-run states into the Parquet dataset ``out``, incrementally.

    Parameters are JSON-friendly so a deployment's UI can edit them; they
    mean what they mean for ``trs-analytics export``.

    Args:
        out: the dataset folder (missing, empty, or an existing dataset).
        api_url: the API URL; default the flow run's own ``PREFECT_API_URL``.
        since: start of the window (ISO-8601 or an age such as ``7d``);
            default the dataset's cursor minus the overlap (7 days for a new one).
        until: end of the window; default now.
        source: ``"auto"``, ``"events"`` or ``"states"``.
        overlap_minutes: how much before the cursor is read again.
        wait_seconds: how long to wait for another export's lock.
        flow_names: keep runs of these flows.
        deployments: keep runs of these deployments (names or ids).
        work_pools: keep runs of these work pools.
        task_names: keep these tasks.
        tags: keep runs carrying all of these tags.
        state_types: keep runs whose current state has one of these types.
        flow_runs: also export flow-run states into the dataset's flow-run table.

    Returns:
        the export's :meth:`~trs_analytics.export.ExportResult.as_dict`.

    Examples:
        >>> export_flow(out="/data/prefect-states", since="1d")  # doctest: +SKIP
        {'out': '/data/prefect-states', 'source': 'events', ...}

        Serve it on a schedule from any machine that reaches the server:

        >>> export_flow.name
        'trs-analytics-export'
        >>> export_flow.serve(cron="*/15 * * * *", parameters={"out": "/data/states"})  # doctest: +SKIP
    """
    result = export_states(
        out,
        api_url=api_url,
        since=since,
        until=until,
        source=cast("Source", source),
        overlap=timedelta(minutes=overlap_minutes),
        wait=wait_seconds,
        flow_names=flow_names,
        deployments=deployments,
        work_pools=work_pools,
        task_names=task_names,
        tags=tags,
        state_types=state_types,
        flow_runs=flow_runs,
    )
    get_run_logger().info("%s", result.summary())
    return result.as_dict()


@flow(name="trs-analytics-check")
def check_flow(
    path: str | None = None,
    api_url: str | None = None,
    since: str | None = None,
    rules: str | None = None,
    recent: str = "1d",
    every: str = "1d",
    now: str | None = None,
    emit_events: bool = False,
    engine: str = "polars",
    state: str | None = None,
    stuck_after: str | None = None,
    min_history: int = 5,
) -> dict[str, Any]:
    """Check for anomalies, stuck runs and SLA breaches; publish the findings as an artifact.

    The same check as ``trs-analytics check`` (both call
    :func:`~trs_analytics.check.check_from`): the states it needs from the
    dataset or Parquet file ``path`` (read on ``engine``), else fetched
    (``since``) from ``api_url`` (default the flow run's own ``PREFECT_API_URL``). The findings become a Markdown
    artifact (key :data:`ARTIFACT_KEY`); with ``emit_events`` each new one is
    also a Prefect event, and each one no longer seen a resolution
    (:func:`~trs_analytics.check.emit_findings`). The flow run completes whether or not something was
    flagged: the artifact and the events carry the result.

    Args:
        path: a dataset folder or Parquet file; ``None``: fetch from the server.
        api_url: the API URL; default the flow run's own ``PREFECT_API_URL``.
        since: the oldest state read (an age or ISO-8601 time); default ``7d``
            from the server, what the checks need (:func:`~trs_analytics.check.check_start`)
            from ``path``.
        rules: a TOML file of SLA rules.
        recent: the period whose findings are reported.
        every: bucket width of anomalies and per-run SLA checks.
        now: check as of this time (ISO-8601); default now.
        emit_events: post each new finding, and each resolution, as a Prefect event.
        state: the file that remembers the open findings (default: the
            ``check-state.json`` of the dataset folder ``path``).
        stuck_after: a run open longer than this is stuck, whatever its history.
        min_history: finished runs a task needs before its p99 bounds its open runs.
        engine: where the checks on ``path`` run: ``"polars"``, ``"duckdb"`` or ``"spark"``.

    Returns:
        ``flagged``, the counts per kind, ``runs``, ``rules`` and ``findings``
        (the findings' messages).

    Examples:
        >>> check_flow.name
        'trs-analytics-check'
        >>> check_flow(path="/data/prefect-states", rules="/etc/sla.toml")  # doctest: +SKIP
        {'flagged': True, 'anomaly': 0, 'stuck': 1, 'sla': 2, ...}
    """
    with PrefectClient(api_url) as client:
        result = check_from(
            path,
            client=client,
            rules=load_rules(rules) if rules else [],
            now=parse_when(now) if now else None,
            since=since,
            recent=recent,
            every=every,
            stuck_after=stuck_after,
            min_history=min_history,
            engine=engine,
            emit_events=emit_events,
            state=state,
        ).result
    create_markdown_artifact(
        markdown=findings_markdown(result), key=ARTIFACT_KEY, description=result.summary()
    )
    get_run_logger().info("%s", result.summary())
    return {
        "flagged": result.flagged,
        **result.counts(),
        "runs": result.runs,
        "rules": result.rules,
        "findings": result.findings["message"].to_list(),
    }

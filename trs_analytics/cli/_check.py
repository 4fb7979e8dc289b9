"""``trs-analytics check``: anomalies, stuck runs and SLA breaches; exit 1 when flagged."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from trs_analytics._time import iso, parse_age, parse_when
from trs_analytics.cli._engine import engine_connection
from trs_analytics.cli._exits import exit_on_error
from trs_analytics.cli._options import make_client, web_url, with_client_options
from trs_analytics.cli._output import current_output, with_output_options
from trs_analytics.exceptions import ConfigurationError

__all__ = ["check"]


def _positive_age(text: str, option: str) -> timedelta:
    span = parse_age(text)
    if span is None or span <= timedelta(0):
        msg = f"{option} {text!r} is not a positive age. Hint: use '9m', '30m' or '1h'."
        raise ConfigurationError(msg)
    return span


@click.command()
@click.argument("path", type=click.Path(path_type=Path), required=False)
@click.option(
    "--since",
    metavar="WHEN",
    help="With --api-url: start of the window fetched (default 7d). With PATH: read the "
    "states from then on (default: what the checks need, the recent period and the 14 days "
    "of training before it; docs/sla.md). The history the checks learn from.",
)
@click.option(
    "--rules",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SLA rules, a TOML file of [[rule]] tables (docs/sla.md).",
)
@click.option(
    "--recent",
    default="1d",
    show_default=True,
    metavar="AGE",
    help="Report what happened in this last period (older states are history); its failure "
    "rate is tested as one window ending at --now.",
)
@click.option(
    "--every",
    default="1d",
    show_default=True,
    metavar="AGE",
    help="Bucket width of the anomaly detection and of the per-run SLA checks.",
)
@click.option("--now", metavar="WHEN", help="Check as of this time (default: now).")
@click.option(
    "--stuck-after",
    metavar="AGE",
    help="A run open (Running or Pending) longer than this is stuck, whatever its history.",
)
@click.option(
    "--min-history",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Finished runs a task needs before its p99 bounds its open runs (fewer: its "
    "deployment's, then its flow's runs).",
)
@click.option(
    "--engine",
    type=click.Choice(["polars", "duckdb", "spark"]),
    default="polars",
    show_default=True,
    help="With PATH: where the checks run: Polars, DuckDB (larger than memory; "
    "pip install 'trs-analytics[duckdb]') or Spark ('trs-analytics[spark]').",
)
@click.option(
    "--memory-limit",
    metavar="SIZE",
    help=(
        "With --engine duckdb: DuckDB's memory_limit (e.g. 1GB); it spills to disk beyond. "
        "With --engine spark: the local session's driver memory (spark.driver.memory)."
    ),
)
@click.option(
    "--heartbeat-after",
    metavar="AGE",
    help="Prefect 3.6.22+ (flow runs send prefect.flow-run.heartbeat events, every 180 s by "
    "default): flag the open task runs of a flow run silent for longer than AGE (e.g. 9m) as hung.",
)
@click.option(
    "--emit-events",
    is_flag=True,
    help="Post each new finding as a Prefect event (POST /api/events, Prefect 3) for "
    "automations, and trs-analytics.<kind>.resolved once a later check no longer sees it.",
)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --emit-events: the file that remembers the open findings. Default: "
    "check-state.json in the PATH folder (required without a folder).",
)
@click.option(
    "--ui-url",
    metavar="URL",
    callback=web_url,
    help="The Prefect UI address that runs link to (default: derived from the API URL).",
)
@with_client_options
@with_output_options
def check(
    path: Path | None,
    since: str | None,
    rules: Path | None,
    recent: str,
    every: str,
    now: str | None,
    stuck_after: str | None,
    min_history: int,
    heartbeat_after: str | None,
    engine: str,
    memory_limit: str | None,
    emit_events: bool,
    state_file: Path | None,
    ui_url: str | None,
    **client_options: Any,
) -> None:
    """Check for anomalies, stuck runs and SLA breaches; exit 1 when something is flagged.

    Reads PATH (a dataset folder or Parquet file: only the states the checks
    need, on --engine) or, without PATH, fetches the states of --since (7d)
    from the server. Prints one line per finding and a summary line (JSON
    lines with --log-format json). Exit codes: 0 nothing flagged, 1 something
    flagged, others as for every command.

    \b
    Example:
      trs-analytics check --api-url http://127.0.0.1:4200/api --since 7d --rules sla.toml
      trs-analytics check states/ --rules sla.toml --emit-events --stuck-after 2h
      trs-analytics check states/ --engine duckdb --memory-limit 1GB
    """

    from trs_analytics.check import check_from, load_rules, state_path

    output = current_output()
    with exit_on_error(reads=path), ExitStack() as stack:
        if path is None and (engine != "polars" or memory_limit is not None):
            msg = (
                "--engine and --memory-limit are for PATH. Hint: pass a dataset folder or "
                "Parquet file, or drop them to check the states fetched with --api-url."
            )
            raise ConfigurationError(msg)
        if emit_events:
            state_path(path, state_file)  # says a missing state file before the server is asked
        client = None
        if path is None or emit_events or heartbeat_after:
            client = stack.enter_context(make_client(client_options))
        outcome = check_from(
            path,
            client=client,
            rules=load_rules(rules) if rules is not None else [],
            now=parse_when(now) if now else None,
            since=since,
            recent=recent,
            every=every,
            ui_url=ui_url,
            stuck_after=stuck_after,
            min_history=min_history,
            heartbeat_after=(
                _positive_age(heartbeat_after, "--heartbeat-after") if heartbeat_after else None
            ),
            engine=engine,
            connection=engine_connection(engine, memory_limit) if path is not None else None,
            emit_events=emit_events,
            state=state_file,
            progress=output.progress_enabled(),
        )
    result = outcome.result
    posted, resolved = len(outcome.emitted.opened), len(outcome.emitted.resolved)
    for row in result.findings.iter_rows(named=True):
        fields = {k: (iso(v) if isinstance(v, datetime) else v) for k, v in row.items()}
        text = f"{row['kind']:<8} {row['check']:<16} {row['subject']}: {row['message']}"
        if row["url"]:
            text += f" {row['url']}"
        output.summary(text, event="finding", **fields)
    output.summary(
        result.summary(),
        event="check",
        flagged=result.flagged,
        runs=result.runs,
        rules=result.rules,
        events=posted,
        resolved=resolved,
        **result.counts(),
    )
    if result.flagged:
        sys.exit(1)

"""``trs-analytics report``: the HTML report of a dataset or Parquet file, on an engine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from trs_analytics._atomic import check_writable
from trs_analytics._progress import steps_bar
from trs_analytics.cli._engine import scan_on
from trs_analytics.cli._exits import exit_on_error, interruptible
from trs_analytics.cli._options import web_url
from trs_analytics.cli._output import current_output, with_output_options
from trs_analytics.storage import require_parquet

__all__ = ["report"]


def _flow_runs_for_report(path: Path, explicit: Path | None) -> Any:
    """The flow-run states the report draws: ``explicit``, else the dataset's own table.

    ``None`` when there are none (a Parquet file of task-run states, a dataset
    exported before its flow-run table existed): the report is then as before.
    """
    from trs_analytics.storage import FLOW_RUN_TABLE, scan_flow_run_states

    source = explicit or (path if (path / FLOW_RUN_TABLE).is_dir() else None)
    if source is None:
        return None
    frame = scan_flow_run_states(source).collect()
    return None if frame.is_empty() else frame


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML report to write.",
)
@click.option("--title", help='The page title. Default: "Task-run report".')
@click.option(
    "--period",
    default="auto",
    show_default=True,
    metavar="AGE",
    help="Compare the last period with the one before it, for regressions (1d, 7d); "
    "auto: the longest of 1m, 5m, 10m, 15m, 30m, 1h, 3h, 6h, 12h, 1d, 7d that fits twice "
    "in the data.",
)
@click.option(
    "--engine",
    type=click.Choice(["polars", "duckdb", "spark"]),
    default="polars",
    show_default=True,
    help="Where the metrics run: Polars (in memory), DuckDB (larger than memory; "
    "pip install 'trs-analytics[duckdb]') or Spark ('trs-analytics[spark]').",
)
@click.option(
    "--memory-limit",
    metavar="SIZE",
    help=(
        "With --engine duckdb: DuckDB's memory_limit (e.g. 2GB); it spills to disk beyond. "
        "With --engine spark: the local session's driver memory (spark.driver.memory)."
    ),
)
@click.option(
    "--ui-url",
    metavar="URL",
    callback=web_url,
    help="The Prefect UI address that run ids link to (e.g. http://127.0.0.1:4200).",
)
@click.option(
    "--flow-run-states",
    type=click.Path(exists=True, path_type=Path),
    help="Flow-run states (a dataset, its _flow_run_states/ table or a Parquet file) for the "
    "report's 'Flow runs' part. Default: the dataset's own flow-run table, when it has one.",
)
@click.option(
    "--rules",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SLA rules (TOML, docs/sla.md) whose breaches the report lists.",
)
@with_output_options
def report(
    path: Path,
    out: Path,
    title: str | None,
    period: str,
    engine: str,
    memory_limit: str | None,
    ui_url: str | None,
    flow_run_states: Path | None,
    rules: Path | None,
) -> None:
    """Write the HTML report of a dataset folder or a Parquet file of states.

    No server is needed: it reads only PATH. The page is self-contained (works offline).
    Every section is computed on --engine; a terminal shows the section in hand, -v logs
    each section's time, and Ctrl-C stops it at once.

    \b
    Example:
      trs-analytics report data/sample_states.parquet --out report.html
      trs-analytics report states/ --out report.html --engine duckdb --memory-limit 2GB
      trs-analytics report data/sample_states.parquet --out report.html \\
        --flow-run-states data/sample_flow_run_states.parquet
    """
    from trs_analytics.check import load_rules
    from trs_analytics.report import write_report

    output = current_output()
    started = time.monotonic()
    with (
        exit_on_error(reads=path),
        steps_bar(output.progress_enabled(), title="report") as on_section,
    ):
        check_writable(out.absolute().parent)  # now, not after minutes of computing
        chosen = load_rules(rules) if rules is not None else []
        require_parquet(path, to="report on")
        states = scan_on(path, engine, memory_limit)
        written = interruptible(
            lambda: write_report(
                states,
                out,
                title=title,
                period=period,
                ui_url=ui_url,
                flow_run_states=_flow_runs_for_report(path, flow_run_states),
                rules=chosen,
                on_section=on_section,
            ),
            "interrupted; no report was written.",
        )
    seconds = time.monotonic() - started
    output.summary(
        f"wrote {written} from {path} in {seconds:.1f} s",
        event="report",
        out=str(written),
        path=str(path),
        seconds=round(seconds, 3),
    )

"""States from the server into Parquet, and what a dataset holds: export, fetch, info."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from trs_analytics._atomic import check_writable
from trs_analytics._format import count_text
from trs_analytics._progress import progress_bar
from trs_analytics.cli._exits import exit_on_error
from trs_analytics.cli._options import (
    duration,
    make_client,
    with_client_options,
    with_filter_options,
)
from trs_analytics.cli._output import current_output, with_output_options
from trs_analytics.exceptions import StorageError
from trs_analytics.export import export_states
from trs_analytics.fetch import fetch_flow_run_states, fetch_states
from trs_analytics.schema import FLOW_RUNS, TASK_RUNS
from trs_analytics.storage import (
    DEFAULT_OVERLAP,
    summarize_states,
    write_flow_run_states,
    write_states,
)

if TYPE_CHECKING:
    from datetime import timedelta

    from trs_analytics.fetch import FilterKwargs, Source

__all__ = ["export", "fetch", "info"]


@click.command()
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="The dataset folder (created if missing; must be empty or a dataset).",
)
@click.option(
    "--since",
    metavar="WHEN",
    help="Start of the window: ISO-8601 (2026-01-01T00:00:00Z), a date, or an age (7d). "
    "Default: the dataset's cursor minus --overlap; 7d for a new dataset.",
)
@click.option("--until", metavar="WHEN", help="End of the window (exclusive). Default: now.")
@click.option(
    "--source",
    type=click.Choice(["auto", "events", "states"]),
    default="auto",
    show_default=True,
    help="auto: events inside the server's event retention (7 days), per-run states before "
    "it and for the last 2 minutes (events lag).",
)
@click.option(
    "--overlap",
    default=f"{int(DEFAULT_OVERLAP.total_seconds() // 60)}m",
    show_default=True,
    callback=duration,
    metavar="AGE",
    help="How much before the cursor is read again, to catch states recorded late.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Wait this long for another export of the same dataset to finish (else exit 75).",
)
@click.option(
    "--flush-rows",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="States held in memory before they are written to the dataset.",
)
@click.option(
    "--flow-runs/--no-flow-runs",
    default=True,
    show_default=True,
    help="Also export flow-run states into the dataset's flow-run table (_flow_run_states/).",
)
@with_filter_options
@with_client_options
@with_output_options
def export(
    out: Path,
    since: str | None,
    until: str | None,
    source: str,
    overlap: timedelta,
    wait: float,
    flush_rows: int,
    flow_runs: bool,
    filters: FilterKwargs,
    **client_options: Any,
) -> None:
    """Export task-run states into a Parquet dataset partitioned by day, incrementally.

    The first run reads the last 7 days (or --since). Each later run starts at
    the dataset's cursor minus --overlap and skips states it already holds, so
    running it twice adds nothing. Writes are atomic and a lock keeps two runs
    apart. It prints the source it used and a summary line. Flow-run states go
    to the dataset's flow-run table with a cursor of their own (--no-flow-runs:
    not); a dataset made before that table gains it on its next export.

    \b
    Example:
      trs-analytics export --api-url http://127.0.0.1:4200/api --since 7d --out states/
    """
    output = current_output()
    with exit_on_error(writes=out), ExitStack() as stack:
        client = stack.enter_context(make_client(client_options))
        bar = progress_bar(output.progress_enabled(), title="export")
        on_progress = stack.enter_context(bar)
        result = export_states(
            out,
            client=client,
            since=since,
            until=until,
            source=cast("Source", source),
            overlap=overlap,
            wait=wait,
            flush_rows=flush_rows,
            on_progress=on_progress,
            progress=False,  # the bar above, or none (--quiet, JSON, not a terminal)
            flow_runs=flow_runs,
            **filters,
        )
    output.summary(result.summary(), event="export", **result.as_dict())


@click.command()
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Parquet file to write.",
)
@click.option(
    "--since", metavar="WHEN", default="1d", show_default=True, help="Start of the window."
)
@click.option("--until", metavar="WHEN", help="End of the window (exclusive). Default: now.")
@click.option(
    "--source",
    type=click.Choice(["auto", "events", "states"]),
    default="auto",
    show_default=True,
    help="Where states are read from (see export).",
)
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option(
    "--flow-runs",
    is_flag=True,
    help="Fetch flow-run states (FLOW_RUN_STATES_SCHEMA) instead of task-run states.",
)
@with_filter_options
@with_client_options
@with_output_options
def fetch(
    out: Path,
    since: str,
    until: str | None,
    source: str,
    force: bool,
    flow_runs: bool,
    filters: FilterKwargs,
    **client_options: Any,
) -> None:
    """Fetch the task-run (or --flow-runs: flow-run) states of one window into one Parquet file.

    \b
    Example:
      trs-analytics fetch --api-url http://127.0.0.1:4200/api --since 1d --out states.parquet
      trs-analytics fetch --flow-runs --since 1d --out flow_runs.parquet
    """
    kind, read, write = (
        (FLOW_RUNS, fetch_flow_run_states, write_flow_run_states)
        if flow_runs
        else (TASK_RUNS, fetch_states, write_states)
    )
    output = current_output()
    started = time.monotonic()
    with exit_on_error():
        if out.exists() and not force:
            msg = f"{out} exists. Hint: pass --force to replace it, or choose another --out."
            raise StorageError(msg)
        check_writable(out.parent)  # now, not after a download of minutes
        with make_client(client_options) as client:
            states = read(
                client=client,
                since=since,
                until=until,
                source=cast("Source", source),
                progress=output.progress_enabled(),
                **filters,
            )
            write(states, out)
            requests = client.stats.requests
    runs = states[kind.id_column].n_unique()
    seconds = time.monotonic() - started
    output.summary(
        f"fetched {count_text(runs, kind.noun, grouped=False)}, "
        f"{count_text(states.height, 'state', grouped=False)} in "
        f"{count_text(requests, 'request', grouped=False)}, "
        f"{seconds:.1f} s; wrote {out}",
        event="fetch",
        out=str(out),
        **{kind.name: runs},
        states=states.height,
        requests=requests,
        seconds=round(seconds, 3),
    )


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@with_output_options
def info(path: Path, as_json: bool) -> None:
    """Summarise a dataset folder or Parquet file of states.

    Prints the path, states, task_runs, first and last (the oldest and newest
    state time, UTC); for a dataset also its cursor, filters and the number of
    exports, and for its flow-run table the same as flow_run_states, flow_runs,
    flow_run_first, flow_run_last, flow_run_cursor, flow_run_filters and
    flow_run_exports.

    \b
    Example:
      trs-analytics info states/
    """
    with exit_on_error(reads=path):
        facts = summarize_states(path).as_dict()
    if as_json:
        click.echo(json.dumps(facts, default=str))
        return
    for key, value in facts.items():
        click.echo(f"{key}: {value}")

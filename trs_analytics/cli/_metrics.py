"""Prometheus metrics of a dataset: ``serve-metrics`` (an HTTP endpoint) and ``metrics`` (once)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from trs_analytics._time import parse_when
from trs_analytics.cli._engine import scan_on
from trs_analytics.cli._exits import exit_on_error
from trs_analytics.cli._options import duration
from trs_analytics.cli._output import current_output, with_output_options
from trs_analytics.engines import check_engine
from trs_analytics.storage import require_parquet

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import timedelta

__all__ = ["metrics", "serve_metrics"]


def with_exporter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options serve-metrics and metrics share: window, engine, series."""
    options = [
        click.option(
            "--window", default="1d", show_default=True, metavar="AGE",
            help="Width of the window of the quantiles, failure rates and check findings.",
        ),
        click.option(
            "--now", metavar="WHEN",
            help="End of the window. Default: the dataset's cursor (else its newest state).",
        ),
        click.option(
            "--engine", type=click.Choice(["polars", "duckdb", "spark"]), default="polars",
            show_default=True, help="Where the metrics run (as for report).",
        ),
        click.option(
            "--memory-limit", metavar="SIZE", help="With --engine duckdb: its memory_limit; spark: the driver's memory.",
        ),
        click.option(
            "--max-series", type=click.IntRange(min=1), default=200, show_default=True,
            help='Groups with series of their own; the rest are summed into "(other)".',
        ),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def _metrics_source(path: Path, options: dict[str, Any]) -> Any:
    """What each refresh reads: PATH's states (and flow-run table) on the chosen engine."""
    from trs_analytics.prometheus import MetricsSource
    from trs_analytics.storage import FLOW_RUN_TABLE, scan_flow_run_states

    engine, memory_limit = options["engine"], options["memory_limit"]
    scan_on(path, engine, memory_limit)  # check the options before serving

    def scan() -> tuple[Any, Any]:
        flows = None
        if (path / FLOW_RUN_TABLE).is_dir():
            flows = scan_flow_run_states(path, engine=check_engine(engine))
        return scan_on(path, engine, memory_limit), flows

    return MetricsSource(
        path,
        scan=scan,
        window=options["window"],
        now=parse_when(options["now"]) if options["now"] else None,
        max_series=options["max_series"],
    )


@click.command("serve-metrics")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--port", type=click.IntRange(1, 65535), default=9464, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--refresh",
    default="60s",
    show_default=True,
    callback=duration,
    metavar="AGE",
    help="Recompute at least this often; also whenever the dataset's cursor moves.",
)
@with_exporter_options
@with_output_options
def serve_metrics(path: Path, port: int, host: str, refresh: timedelta, **options: Any) -> None:
    """Serve task and flow-run metrics from PATH on http://HOST:PORT/metrics for Prometheus.

    Values are recomputed in the background when the dataset's cursor moves (or
    every --refresh); a scrape only reads the last values. docs/prometheus.md
    lists the metric families and shows the Grafana dashboards in dashboards/.

    \b
    Example:
      trs-analytics serve-metrics states/ --port 9464 --window 1d
      trs-analytics serve-metrics states/ --engine duckdb --memory-limit 2GB
    """
    from trs_analytics.prometheus import serve_metrics as serve

    output = current_output()
    with exit_on_error():
        require_parquet(path, to="serve metrics of")
        source = _metrics_source(path, options)
        output.summary(
            f"serving http://{host}:{port}/metrics from {path}",
            event="serve-metrics",
            path=str(path),
            url=f"http://{host}:{port}/metrics",
        )
        try:
            serve(source, host=host, port=port, refresh=refresh.total_seconds())
        except KeyboardInterrupt:
            return


@click.command("metrics")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--textfile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the metrics to this file atomically (node_exporter's textfile collector "
    "reads *.prom). Default: print them.",
)
@with_exporter_options
@with_output_options
def metrics(path: Path, textfile: Path | None, **options: Any) -> None:
    """Compute the metrics serve-metrics serves once, into a textfile (for cron) or stdout.

    \b
    Example:
      trs-analytics metrics states/ --textfile /var/lib/node_exporter/textfile/trs.prom
    """
    from trs_analytics.prometheus import render_metrics, write_textfile

    output = current_output()
    with exit_on_error():
        require_parquet(path, to="compute metrics of")
        snap = _metrics_source(path, options).snapshot()
        if textfile is None:
            click.echo(render_metrics(snap).decode(), nl=False)
            return
        write_textfile(textfile, snap)
    output.summary(
        f"wrote {textfile} from {path} in {snap.seconds:.1f} s",
        event="metrics",
        out=str(textfile),
        path=str(path),
        seconds=round(snap.seconds, 3),
    )

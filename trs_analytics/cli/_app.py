"""The ``trs-analytics`` command group: its help, its output options, its commands."""

from __future__ import annotations

import click

from trs_analytics._format import cli_spelling
from trs_analytics.cli._check import check
from trs_analytics.cli._datasets import export, fetch, info
from trs_analytics.cli._exits import Group, exit_code_help
from trs_analytics.cli._metrics import metrics, serve_metrics
from trs_analytics.cli._output import LOG_FORMAT_HELP, QUIET_HELP, VERBOSE_HELP, Output
from trs_analytics.cli._report import report

__all__ = ["main"]


_MAIN_HELP = """Task-run state analytics for Prefect: export states to Parquet, report on them.

-q, -v and --log-format may also be given after the command (export -q).

\b
Example:
  trs-analytics report data/sample_states.parquet --out report.html
  trs-analytics export --api-url http://127.0.0.1:4200/api --out states/
  trs-analytics check states/ --rules sla.toml

"""


@click.group(
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    help=_MAIN_HELP + exit_code_help(),
)
@click.version_option(package_name="trs-analytics")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help=LOG_FORMAT_HELP,
)
@click.option("--quiet", "-q", is_flag=True, help=QUIET_HELP)
@click.option("--verbose", "-v", is_flag=True, help=VERBOSE_HELP)
@click.pass_context
def main(ctx: click.Context, log_format: str, quiet: bool, verbose: bool) -> None:
    output = Output(log_format=log_format, quiet=quiet, verbose=verbose)
    output.install()
    ctx.call_on_close(output.uninstall)
    ctx.obj = output
    ctx.with_resource(cli_spelling())  # hints name options (--api-url), not api_url=


main.add_command(export)
main.add_command(fetch)
main.add_command(info)
main.add_command(report)
main.add_command(check)
main.add_command(serve_metrics)
main.add_command(metrics)

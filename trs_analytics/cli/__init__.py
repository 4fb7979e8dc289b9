"""The ``trs-analytics`` command: export, fetch, info, report, check, serve-metrics, metrics.

Each command parses its options, calls the library, and turns a library error
into one ``Error:`` line on stderr and an exit code a scheduler can act on
(see :data:`EXIT_CODES` and ``docs/cli.md``). Nothing here computes anything.

One module per idea: ``_app`` (the group), ``_output`` (text or JSON lines),
``_exits`` (errors to exit codes), ``_options`` and ``_engine`` (what commands
share), and the commands: ``_datasets`` (export, fetch, info), ``_report``,
``_check``, ``_metrics`` (serve-metrics, metrics).
"""

from __future__ import annotations

from trs_analytics.cli._app import main
from trs_analytics.cli._exits import CRASH_EXIT_CODE, EXIT_CODES

__all__ = ["CRASH_EXIT_CODE", "EXIT_CODES", "main"]

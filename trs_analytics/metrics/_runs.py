"""Which run a metric counts: task runs, or flow runs when the frame has no ``task_run_id``.

A task-run states frame has ``task_run_id``; a flow-run states frame
(:data:`~trs_analytics.schema.FLOW_RUN_STATES_SCHEMA`) has only
``flow_run_id``. The flow-level metrics take either: :func:`run_timeline`
names the run column and builds the metrics' one :func:`timeline` on it (the
flow run's id stands in the timeline's run column, so every helper of
:mod:`~trs_analytics.metrics._common` applies unchanged), and the metric
gives its output rows the frame's own run column back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import narwhals as nw

from trs_analytics.metrics._common import ORDER, RUN, carried, timeline
from trs_analytics.metrics._frames import lazy, schema_of

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "FLOW_RUN",
    "FLOW_RUN_COLUMNS",
    "in_run",
    "run_carry",
    "run_column",
    "run_timeline",
    "with_next",
]

#: The column that identifies a flow run.
FLOW_RUN: Final = "flow_run_id"

#: Per-flow-run attributes carried into outputs, when present (beyond ``RUN_COLUMNS``).
FLOW_RUN_COLUMNS: Final = ("deployment_name", "work_queue_name", "flow_id", "parent_task_run_id")


def run_column(states: Any) -> str:
    """``task_run_id`` when ``states`` has it, else ``flow_run_id`` when it has that.

    Examples:
        >>> import trs_analytics as ta
        >>> run_column(ta.empty_states()), run_column(ta.empty_flow_run_states())
        ('task_run_id', 'flow_run_id')
    """
    names = schema_of(states).names()
    return FLOW_RUN if RUN not in names and FLOW_RUN in names else RUN


def run_timeline(
    states: Any, *, caller: str, needs: Sequence[str] = ()
) -> tuple[nw.LazyFrame[Any], str]:
    """The :func:`timeline` of task-run or flow-run states, and the frame's run column.

    Inside the timeline the run is always ``task_run_id`` (for flow-run
    states, a copy of ``flow_run_id``).
    """
    column = run_column(states)
    lf = lazy(states, caller=caller)
    if column == FLOW_RUN:
        lf = lf.with_columns(nw.col(FLOW_RUN).alias(RUN))
    return timeline(lf, caller=caller, needs=needs), column


def run_carry(states: Any, column: str, extra: Sequence[str] = ()) -> list[str]:
    """The per-run columns an output carries, the run column itself left out."""
    names = schema_of(states).names()
    more = [c for c in FLOW_RUN_COLUMNS if c in names]
    return [c for c in dict.fromkeys(carried(states, [*more, *extra])) if c != column]


def in_run(expr: nw.Expr) -> nw.Expr:
    """``expr`` evaluated along each run's ordered states (a window over the run)."""
    return expr.over(RUN, order_by=list(ORDER))


def with_next(tl: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """Add ``_next_us``: when the run's next state came (null for its latest state)."""
    return tl.with_columns(_next_us=in_run(nw.col("_us").shift(-1)))

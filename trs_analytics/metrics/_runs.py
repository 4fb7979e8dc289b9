"""Helpers of the metrics that take task-run or flow-run states alike.

The run a metric counts is ``task_run_id`` of task-run states, or
``flow_run_id`` of flow-run states (:func:`trs_analytics.schema.run_id_column`);
inside the timeline it is :data:`~trs_analytics.metrics._common.RUN` either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from trs_analytics.metrics._common import carried, timeline
from trs_analytics.metrics._frames import schema_of
from trs_analytics.schema import run_id_column

if TYPE_CHECKING:
    from collections.abc import Sequence

    import narwhals as nw

__all__ = ["FLOW_RUN", "run_carry", "run_timeline"]

#: The column that identifies a flow run (a column of task-run states too).
FLOW_RUN: Final = "flow_run_id"


def run_timeline(
    states: Any, *, caller: str, needs: Sequence[str] = ()
) -> tuple[nw.LazyFrame[Any], str]:
    """The :func:`timeline` of ``states`` and the name of its run column outside.

    Examples:
        >>> import trs_analytics as ta
        >>> run_timeline(ta.empty_flow_run_states(), caller="demo")[1]
        'flow_run_id'
    """
    column = run_id_column(schema_of(states).names())
    return timeline(states, caller=caller, needs=needs), column


def run_carry(states: Any, column: str, extra: Sequence[str] = ()) -> list[str]:
    """The per-run columns an output carries (deduplicated), the run column left out."""
    return [c for c in dict.fromkeys(carried(states, extra)) if c != column]

"""Generated state histories for tests, demos and benchmarks (no server needed).

- :func:`generate_states`: task-run states as a Prefect 3 server would hold them
  after a few days of flows (many flows and tasks, retries, cached, crashed,
  cancelled, late and still-running runs);
- :func:`generate_flow_run_states`: the flow-run states of those same flow runs;
- :func:`generate_planted`: regular task runs with anomalies planted at known
  places, and the truth of what was planted (:class:`Planted`).

The generators are vectorised: every random number is a hash of a row index and
the seed, so ten million states take seconds and the same seed gives the same
frame (with the same Polars version).

Examples:
    >>> import trs_analytics as ta
    >>> import trs_analytics.testing as tt
    >>> tt.generate_states(100, seed=1).schema == ta.STATES_SCHEMA
    True
"""

from __future__ import annotations

from trs_analytics.testing._flow_runs import generate_flow_run_states
from trs_analytics.testing._planted import (
    PLANTED_KINDS,
    TRUTH_SCHEMA,
    WEEKDAY_FACTORS,
    Planted,
    generate_planted,
)
from trs_analytics.testing._task_runs import generate_states

__all__ = [
    "PLANTED_KINDS",
    "TRUTH_SCHEMA",
    "WEEKDAY_FACTORS",
    "Planted",
    "generate_flow_run_states",
    "generate_planted",
    "generate_states",
]

"""The one builder of states frames for the tests: write a run's history as text.

A history is written as ``"Pending@0 Running@2 Completed@7.5"``: state names
with the second after :data:`T0` at which the run entered them. The state type
is looked up from the name (:data:`TYPE_OF`), as Prefect assigns it; a name
with a space is written with an underscore (``Awaiting_Retry``).

- :func:`history` gives one task run's states: the columns it sets, typed as
  in the contract (:data:`trs_analytics.schema.STATES_SCHEMA`);
- :func:`states` puts histories together into one frame with the contract's
  schema, every column no history sets null.

Tests about a malformed frame on purpose build that frame inline instead.

Examples:
    >>> frame = states(
    ...     history("Pending@0 Running@2 Completed@5", task_run_id="a", task_name="load"),
    ...     history("Pending@1 Running@2 Failed@3", task_run_id="b", message="boom"),
    ... )
    >>> frame.select("id", "task_name", "type", "timestamp", "message")
    shape: (6, 5)
    ┌─────┬───────────┬───────────┬─────────────────────────┬─────────┐
    │ id  ┆ task_name ┆ type      ┆ timestamp               ┆ message │
    │ --- ┆ ---       ┆ ---       ┆ ---                     ┆ ---     │
    │ str ┆ str       ┆ enum      ┆ datetime[μs, UTC]       ┆ str     │
    ╞═════╪═══════════╪═══════════╪═════════════════════════╪═════════╡
    │ a-0 ┆ load      ┆ PENDING   ┆ 2026-01-01 00:00:00 UTC ┆ null    │
    │ a-1 ┆ load      ┆ RUNNING   ┆ 2026-01-01 00:00:02 UTC ┆ null    │
    │ a-2 ┆ load      ┆ COMPLETED ┆ 2026-01-01 00:00:05 UTC ┆ null    │
    │ b-0 ┆ task      ┆ PENDING   ┆ 2026-01-01 00:00:01 UTC ┆ null    │
    │ b-1 ┆ task      ┆ RUNNING   ┆ 2026-01-01 00:00:02 UTC ┆ null    │
    │ b-2 ┆ task      ┆ FAILED    ┆ 2026-01-01 00:00:03 UTC ┆ boom    │
    └─────┴───────────┴───────────┴─────────────────────────┴─────────┘
    >>> frame.schema == STATES_SCHEMA
    True
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import polars as pl

from trs_analytics.schema import STATES_SCHEMA, UTC_US

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["T0", "TYPE_OF", "at", "history", "parse", "runs", "states"]

#: The instant every history's seconds count from.
T0: Final = datetime(2026, 1, 1, tzinfo=UTC)

#: The state type of each state name, as Prefect assigns it.
TYPE_OF: Final = {
    "Scheduled": "SCHEDULED",
    "Late": "SCHEDULED",
    "AwaitingRetry": "SCHEDULED",
    "Awaiting Retry": "SCHEDULED",
    "Pending": "PENDING",
    "Running": "RUNNING",
    "Retrying": "RUNNING",
    "Paused": "PAUSED",
    "Completed": "COMPLETED",
    "Cached": "COMPLETED",
    "Failed": "FAILED",
    "TimedOut": "FAILED",
    "Crashed": "CRASHED",
    "Cancelled": "CANCELLED",
}

#: A state's time: seconds after :data:`T0`, or an instant.
When = float | datetime

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)


def at(when: When) -> datetime:
    """The instant ``when`` seconds after :data:`T0` (an instant stays as it is).

    Examples:
        >>> at(90)
        datetime.datetime(2026, 1, 1, 0, 1, 30, tzinfo=datetime.timezone.utc)
    """
    return when if isinstance(when, datetime) else T0 + timedelta(seconds=when)


def parse(spec: str) -> list[tuple[str, float]]:
    """A history's text as (state name, seconds after :data:`T0`) pairs.

    Examples:
        >>> parse("Pending@0 Awaiting_Retry@2.5")
        [('Pending', 0.0), ('Awaiting Retry', 2.5)]
    """
    out = []
    for token in spec.split():
        name, _, second = token.rpartition("@")
        out.append((name.replace("_", " "), float(second)))
    return out


def history(
    spec: str | Iterable[tuple[str, When]],
    *,
    task_run_id: str,
    task_name: str | None = "task",
    message: str | None = None,
    **columns: object,
) -> pl.DataFrame:
    """One task run's states: the columns it sets, typed as in the contract.

    Args:
        spec: the states as ``"Name@seconds ..."`` text, or (name, time) pairs
            where a time is seconds after :data:`T0` or an instant.
        task_run_id: the run's id; the states' ids are ``"<task_run_id>-<i>"``.
        task_name: the task's name; ``task_key`` is ``"<task_name>-key"``.
        message: the message of the run's last state (where Prefect puts an
            error); the other states have none.
        **columns: any other column of the contract, one value for every
            state of the run (a number for a timestamp column means seconds
            after :data:`T0`). Unless given: ``flow_run_id="flow-run-1"``,
            ``flow_name="flow"``, ``tags=[]``, ``expected_start_time=T0``;
            :func:`states` makes every other column null.

    Raises:
        KeyError: ``spec`` names a state :data:`TYPE_OF` does not know.
        TypeError: a column is not in the contract.

    Examples:
        >>> run = history([("Pending", 0), ("Running", 1.5)], task_run_id="r", tags=["etl"])
        >>> run.select("id", "name", "flow_run_id", "tags").rows()[-1]
        ('r-1', 'Running', 'flow-run-1', ['etl'])
        >>> run["expected_start_time"].to_list() == [T0, T0]
        True
        >>> history("Pending@0", task_run_id="r", colour="red")
        Traceback (most recent call last):
        TypeError: history() got columns not in the contract: ['colour']
    """
    steps = parse(spec) if isinstance(spec, str) else list(spec)
    unknown = sorted(set(columns) - set(STATES_SCHEMA))
    if unknown:
        raise TypeError(f"history() got columns not in the contract: {unknown}")
    constants = {
        "task_run_id": task_run_id,
        "task_name": task_name,
        "task_key": None if task_name is None else f"{task_name}-key",
        "flow_run_id": "flow-run-1",
        "flow_name": "flow",
        "tags": [],
        "expected_start_time": T0,
        **columns,
    }
    n = len(steps)
    data: dict[str, list[object]] = {
        "id": [f"{task_run_id}-{i}" for i in range(n)],
        "type": [TYPE_OF[name] for name, _ in steps],
        "name": [name for name, _ in steps],
        "timestamp": [at(when) for _, when in steps],
        "message": [None] * (n - 1) + [message] if n else [],
    }
    for column, value in constants.items():
        data[column] = [value] * n
    return pl.DataFrame([_column(c, data[c]) for c in STATES_SCHEMA if c in data])


def _column(name: str, values: list[object]) -> pl.Series:
    """A column of the contract; timestamps go through integer microseconds (far quicker)."""
    dtype = STATES_SCHEMA[name]
    if dtype != UTC_US:
        return pl.Series(name, values, dtype)
    micros = [None if v is None else (at(v) - _EPOCH) // _US for v in values]  # type: ignore[arg-type]
    return pl.Series(name, micros, pl.Int64()).cast(dtype)


def states(*histories: pl.DataFrame) -> pl.DataFrame:
    """The states of every history in the order given, with the contract's schema.

    A column no history sets is null; no history gives an empty frame.

    Examples:
        >>> states().shape == (0, len(STATES_SCHEMA))
        True
        >>> run = history("Running@0 Completed@1", task_run_id="r")
        >>> states(run, run.tail(1))["id"].to_list()  # a state delivered twice
        ['r-0', 'r-1', 'r-1']
    """
    return pl.concat([pl.DataFrame(schema=STATES_SCHEMA), *histories], how="diagonal")


def runs(
    specs: Mapping[str, str],
    *,
    task_names: Mapping[str, str] | None = None,
    expected: Mapping[str, float] | None = None,
) -> pl.DataFrame:
    """:func:`states` of one :func:`history` per run id: ``{"r": "Pending@0 Running@1"}``.

    Runs are named ``task`` and expected at ``T0`` unless ``task_names`` or
    ``expected`` (seconds after ``T0``) say otherwise.

    Examples:
        >>> frame = runs({"a": "Pending@0 Running@1"}, task_names={"a": "load"})
        >>> frame.select("task_run_id", "task_name", "name").rows()
        [('a', 'load', 'Pending'), ('a', 'load', 'Running')]
    """
    return states(
        *(
            history(
                spec,
                task_run_id=run,
                task_name=(task_names or {}).get(run, "task"),
                expected_start_time=(expected or {}).get(run, 0.0),
            )
            for run, spec in specs.items()
        )
    )

"""Moved to :mod:`tests.builders`; this name stays only until open branches merge.

``states({"r": "Pending@0 Running@1"}, task_names={"r": "load"})`` is
``states(history("Pending@0 Running@1", task_run_id="r", task_name="load"))``
with :mod:`tests.builders`. Port a test to that, then delete this module.

Examples:
    >>> from tests import builders
    >>> old = states({"a": "Pending@0 Running@1"}, task_names={"a": "load"}, expected={"a": 2})
    >>> old.equals(
    ...     builders.states(
    ...         builders.history(
    ...             "Pending@0 Running@1", task_run_id="a", task_name="load", expected_start_time=2
    ...         )
    ...     )
    ... )
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.builders import T0, TYPE_OF, at, history, parse

if TYPE_CHECKING:
    import polars as pl

__all__ = ["T0", "TYPE_OF", "at", "parse", "seconds", "states"]


def states(
    runs: dict[str, str],
    *,
    task_names: dict[str, str] | None = None,
    tags: dict[str, list[str]] | None = None,
    expected: dict[str, float] | None = None,
) -> pl.DataFrame:
    """A states frame with the contract's schema, one history per run id (the old API)."""
    from tests import builders

    return builders.states(
        *(
            history(
                spec,
                task_run_id=run,
                task_name=(task_names or {}).get(run, "task"),
                tags=(tags or {}).get(run, []),
                expected_start_time=(expected or {}).get(run, 0.0),
            )
            for run, spec in runs.items()
        )
    )


def seconds(column: pl.Series) -> list[float | None]:
    """A Duration column as float seconds (None stays None)."""
    return [None if v is None else v.total_seconds() for v in column.to_list()]

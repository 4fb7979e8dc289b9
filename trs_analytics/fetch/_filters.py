"""Which task runs to keep: ``StateFilters``, the one object that carries filters between layers.

``**filters`` (typed by :class:`FilterKwargs`) appears only at the public entry
points (``fetch_states``, ``iter_states``, exports, the flow, the CLI); they turn
it into a :class:`StateFilters` once, and everything below takes that.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypedDict, Unpack, cast

import polars as pl

from trs_analytics.exceptions import ConfigurationError
from trs_analytics.schema import STATE_TYPES

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from trs_analytics.schema import RunKind

__all__ = ["FilterKwargs", "StateFilters", "as_tuple"]


def as_tuple(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """One value or several, as a tuple.

    Examples:
        >>> as_tuple("etl"), as_tuple(["a", "b"]), as_tuple(None)
        (('etl',), ('a', 'b'), ())
    """
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


class FilterKwargs(TypedDict, total=False):
    """The filter keywords of :func:`fetch_states`, :func:`iter_states` and exports.

    Each takes one value or several; see :class:`StateFilters` for their meaning.
    """

    flow_names: str | Iterable[str] | None
    deployments: str | Iterable[str] | None
    work_pools: str | Iterable[str] | None
    task_names: str | Iterable[str] | None
    tags: str | Iterable[str] | None
    state_types: str | Iterable[str] | None


@dataclass(frozen=True)
class StateFilters:
    """Which task runs to keep. Empty means no filter; several values mean any of them.

    ``tags`` is the exception: a run must carry every tag given.
    ``state_types`` filters on the task run's *current* state type.
    ``deployments`` takes deployment names or ids.

    Examples:
        >>> StateFilters.from_kwargs(flow_names="etl", tags=["prod", "nightly"])
        StateFilters(flow_names=('etl',), deployments=(), work_pools=(), task_names=(), tags=('prod', 'nightly'), state_types=())
    """

    flow_names: tuple[str, ...] = ()
    deployments: tuple[str, ...] = ()
    work_pools: tuple[str, ...] = ()
    task_names: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    state_types: tuple[str, ...] = ()

    @classmethod
    def from_kwargs(cls, **kwargs: Unpack[FilterKwargs]) -> StateFilters:
        """Build filters from keyword arguments that take one value or many.

        Examples:
            >>> StateFilters.from_kwargs(state_types="failed").state_types
            ('FAILED',)
            >>> StateFilters.from_kwargs(flow="etl")
            Traceback (most recent call last):
            ...
            trs_analytics.exceptions.ConfigurationError: unknown filter ['flow']. Hint: the filters are ['deployments', 'flow_names', 'state_types', 'tags', 'task_names', 'work_pools'].
        """
        names = {f.name for f in fields(cls)}
        if unknown := sorted(set(kwargs) - names):
            msg = f"unknown filter {unknown}. Hint: the filters are {sorted(names)}."
            raise ConfigurationError(msg)
        given = cast("dict[str, Any]", kwargs)
        values = {name: as_tuple(given.get(name)) for name in names}
        types = tuple(t.upper() for t in values["state_types"])
        if bad := [t for t in types if t not in STATE_TYPES]:
            msg = (
                f"state_types {bad} are not Prefect state types. "
                f"Hint: use some of {list(STATE_TYPES)}."
            )
            raise ConfigurationError(msg)
        return cls(**{**values, "state_types": types})

    def check_kind(self, kind: RunKind) -> None:
        """Refuse a filter that does not apply to ``kind``'s runs.

        Examples:
            >>> from trs_analytics.schema import FLOW_RUNS
            >>> StateFilters(task_names=("load",)).check_kind(FLOW_RUNS)
            Traceback (most recent call last):
            ...
            trs_analytics.exceptions.ConfigurationError: task_names does not apply to flow runs. Hint: filter flow runs by flow_names, deployments, work_pools, tags or state_types.
        """
        given = [f.name for f in fields(self) if getattr(self, f.name)]
        if wrong := [name for name in given if name not in kind.filters]:
            usable = ", ".join(kind.filters[:-1]) + f" or {kind.filters[-1]}"
            msg = (
                f"{' and '.join(wrong)} does not apply to {kind.noun}s. "
                f"Hint: filter {kind.noun}s by {usable}."
            )
            raise ConfigurationError(msg)

    def server_body(self, kind: RunKind, deployment_ids: Sequence[str]) -> dict[str, Any]:
        """The parts of a ``kind.filter_path`` body the server can apply itself.

        ``tags`` and ``state_types`` are the run's own (under ``kind.name``); the
        server filters task runs by work pool only through their flow runs, which
        :meth:`apply` does instead.

        Examples:
            >>> from trs_analytics.schema import FLOW_RUNS, TASK_RUNS
            >>> chosen = StateFilters(work_pools=("pool",), tags=("prod",))
            >>> chosen.server_body(FLOW_RUNS, [])
            {'work_pools': {'name': {'any_': ['pool']}}, 'flow_runs': {'tags': {'all_': ['prod']}}}
            >>> chosen.server_body(TASK_RUNS, [])
            {'task_runs': {'tags': {'all_': ['prod']}}}
        """
        self.check_kind(kind)
        parts: dict[str, tuple[str, str, dict[str, Any]]] = {
            "flow_names": ("flows", "name", {"any_": list(self.flow_names)}),
            "deployments": ("deployments", "id", {"any_": list(deployment_ids)}),
            "work_pools": ("work_pools", "name", {"any_": list(self.work_pools)}),
            "tags": (kind.name, "tags", {"all_": list(self.tags)}),
            "state_types": (kind.name, "state", {"type": {"any_": list(self.state_types)}}),
        }
        body: dict[str, Any] = {}
        for name in kind.server_filters:
            if getattr(self, name):
                key, field, condition = parts[name]
                body.setdefault(key, {})[field] = condition
        return body

    def apply(self, attributes: pl.DataFrame, deployment_ids: Sequence[str]) -> pl.DataFrame:
        """Keep the attribute rows (one per task run, or flow run) that pass every filter."""
        predicates = []
        if self.flow_names:
            predicates.append(pl.col("flow_name").is_in(self.flow_names))
        if self.deployments:
            predicates.append(pl.col("deployment_id").is_in(list(deployment_ids)))
        if self.work_pools:
            predicates.append(pl.col("work_pool_name").is_in(self.work_pools))
        if self.task_names:
            predicates.append(pl.col("task_name").is_in(self.task_names))
        if self.state_types:
            predicates.append(pl.col("_state_type").is_in(self.state_types))
        predicates.extend(pl.col("tags").list.contains(tag) for tag in self.tags)
        return attributes.filter(*predicates) if predicates else attributes

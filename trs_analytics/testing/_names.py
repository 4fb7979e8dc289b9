"""The names of a generated workload (tasks, flows, pools, flow runs) and its state types.

Written once for every generator: a task's name from its index, the state type
of each state name, and the columns of a run kind's schema.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from trs_analytics.schema import RunKind, StateType
from trs_analytics.testing._random import pick

_VERBS: Final = ("extract", "load", "transform", "validate", "score", "sync", "notify", "aggregate")
_NOUNS: Final = ("orders", "users", "events", "invoices", "metrics", "models", "files", "prices")
_FLOWS: Final = ("daily-etl", "hourly-sync", "ml-training", "reporting", "billing", "ingest")
#: The work pools, picked by flow index.
POOLS: Final = ("process-pool", "k8s-pool", "docker-pool")
_ADJECTIVES: Final = ("brave", "calm", "eager", "fuzzy", "jolly", "lucky", "quiet", "witty")
_ANIMALS: Final = ("otter", "falcon", "lynx", "panda", "heron", "badger", "koala", "mole")

#: The state type of each state name the generators write (task runs and flow runs).
_TYPE_OF_NAME: Final = {
    "Scheduled": "SCHEDULED",
    "Late": "SCHEDULED",
    "AwaitingRetry": "SCHEDULED",
    "Pending": "PENDING",
    "Running": "RUNNING",
    "Retrying": "RUNNING",
    "Completed": "COMPLETED",
    "Cached": "COMPLETED",
    "Failed": "FAILED",
    "Crashed": "CRASHED",
    "Cancelled": "CANCELLED",
}


def task_name(index: pl.Expr) -> pl.Expr:
    """The name of the ``index``-th task: a verb and a noun, then a lap number once all are used.

    Examples:
        >>> import polars as pl
        >>> pl.select(task_name(pl.Series([0, 9, 64]))).to_series().to_list()
        ['extract_orders', 'load_users', 'extract_orders_1']
    """
    word = index % (len(_VERBS) * len(_NOUNS))
    name = pl.concat_str(pick(_VERBS, word), pl.lit("_"), pick(_NOUNS, word // len(_VERBS)))
    lap = index // (len(_VERBS) * len(_NOUNS))
    return pl.when(lap > 0).then(pl.format("{}_{}", name, lap)).otherwise(name)


def flow_name(index: pl.Expr) -> pl.Expr:
    """The name of the ``index``-th flow (``flow-<index>`` after the named ones)."""
    return (
        pl.when(index < len(_FLOWS))
        .then(pick(_FLOWS, index))
        .otherwise(pl.format("flow-{}", index))
    )


def flow_run_name(index: pl.Expr) -> pl.Expr:
    """The name of the ``index``-th flow run: an adjective and an animal, as Prefect names them."""
    return pl.concat_str(
        pick(_ADJECTIVES, index), pl.lit("-"), pick(_ANIMALS, index // len(_ADJECTIVES))
    )


def state_type(name: pl.Expr) -> pl.Expr:
    """The state type of a state name the generators write.

    Examples:
        >>> import polars as pl
        >>> pl.select(state_type(pl.Series(["Late", "Cached"]))).to_series().to_list()
        ['SCHEDULED', 'COMPLETED']
    """
    return name.replace_strict(_TYPE_OF_NAME, return_dtype=StateType)


def in_schema(values: dict[str, pl.Expr], kind: RunKind) -> list[pl.Expr]:
    """``kind.schema``'s columns in order, each from ``values`` (else null), cast to its type."""
    return [
        values.get(column, pl.lit(None)).cast(dtype).alias(column)
        for column, dtype in kind.schema.items()
    ]

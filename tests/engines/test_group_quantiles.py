"""``group_quantiles``: the per-group linear quantile ``stuck_runs`` bounds open runs with.

On DuckDB it is taken from each group's sorted values (a ``row_number``
window, which spills) instead of ``quantile_cont`` (whose state holds every
value in memory): it must give what the quantile's definition gives, on
every engine, with ties, null values, null keys, groups without a value,
no keys and no rows. The expected values are computed here from the
definition (``h = (n - 1) q``, ``v[floor h] + (h - floor h)(v[ceil h] - v[floor h])``
over the sorted non-null values), not by any engine.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest

from tests.engines.native import assert_same
from trs_analytics.metrics._frames import describe, group_quantiles, lazy, to_polars

if TYPE_CHECKING:
    from collections.abc import Callable


def _frame(seed: int) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = []
    for _ in range(400):
        group = rng.choice(["a", "b", "c", None])
        # few distinct values: ties; some nulls; group "c" has no value at all
        x = None if group == "c" or rng.random() < 0.1 else float(rng.randint(0, 20))
        y = None if rng.random() < 0.3 else rng.randint(-5, 10_000)
        rows.append({"g": group, "h": rng.choice(["u", "v"]), "x": x, "y": y})
    return pl.DataFrame(
        rows, schema={"g": pl.String, "h": pl.String, "x": pl.Float64, "y": pl.Int64}
    )


def _definition(values: list[Any], q: float) -> float | None:
    kept = sorted(v for v in values if v is not None)
    if not kept:
        return None
    h = (len(kept) - 1) * q
    lo, hi = float(kept[math.floor(h)]), float(kept[math.ceil(h)])
    return lo + (hi - lo) * (h - math.floor(h))


def _expected(frame: pl.DataFrame, keys: list[str], q: float) -> pl.DataFrame:
    rows = frame.drop_nulls(keys).to_dicts()
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    if not keys:
        groups = {(): rows}
    out = [
        {
            **dict(zip(keys, key, strict=True)),
            "n": len(members),
            "px": _definition([m["x"] for m in members], q),
            "py": _definition([m["y"] for m in members], q),
        }
        for key, members in groups.items()
    ]
    schema = {**dict.fromkeys(keys, pl.String), "n": pl.Int64, "px": pl.Float64, "py": pl.Float64}
    return pl.DataFrame(out, schema=schema, orient="row")


@pytest.mark.parametrize("q", [0.5, 0.99, 1.0, 0.01])
@pytest.mark.parametrize("keys", [["g"], ["g", "h"], []], ids=["one key", "two keys", "no key"])
@pytest.mark.parametrize("seed", [1, 2])
def test_group_quantiles_follow_the_definition(
    on_engine: Callable[[pl.DataFrame], Any], keys: list[str], q: float, seed: int
) -> None:
    frame = _frame(seed)
    native = on_engine(frame)
    got = to_polars(
        group_quantiles(
            lazy(native, caller="t"), keys, {"px": "x", "py": "y"}, q, count="n"
        ).to_native()
    )
    got = got.with_columns(pl.col("n").cast(pl.Int64), pl.col("px", "py").cast(pl.Float64))
    want = _expected(frame, keys, q)
    assert_same(got, want)


def test_group_quantiles_of_no_rows(on_engine: Callable[[pl.DataFrame], Any]) -> None:
    native = on_engine(_frame(1).clear())
    grouped = group_quantiles(lazy(native, caller="t"), ["g"], {"px": "x"}, 0.99, count="n")
    assert to_polars(grouped.to_native()).height == 0
    whole = to_polars(
        group_quantiles(lazy(native, caller="t"), [], {"px": "x"}, 0.99, count="n").to_native()
    )
    assert whole.rows() == [(0, None)]


def test_group_quantiles_and_describe_take_any_column_name(
    on_engine: Callable[[pl.DataFrame], Any],
) -> None:
    # DuckDB reads them through SQL of our own: a double quote in a name must be escaped
    frame = pl.DataFrame({'task "a"': ["t", "t", "t", "u"], "run time": [1.0, 2.0, 4.0, 8.0]})
    native = lazy(on_engine(frame), caller="t")
    got = to_polars(
        group_quantiles(native, ['task "a"'], {'p "50"': "run time"}, 0.5, count="n").to_native()
    )
    assert sorted(got.rows()) == [("t", 3, 2.0), ("u", 1, 8.0)]
    assert got.columns == ['task "a"', "n", 'p "50"']
    described = to_polars(describe(native, ['task "a"'], "run time", {'p "50"': 0.5}).to_native())
    assert described.sort('task "a"').select('task "a"', "count", 'p "50"', "max").rows() == [
        ("t", 3, 2.0, 4.0),
        ("u", 1, 8.0, 8.0),
    ]

"""Package-wide rules: public surface, layering, and the documented data contract."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pytest

import trs_analytics
from trs_analytics.schema import FLOW_RUN_STATES_SCHEMA, SCHEMA_VERSION, STATES_SCHEMA

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "trs_analytics"

# Lower layers first. A module may import only from its own layer or layers before it.
LAYERS = [
    {"_redact", "exceptions", "schema", "engines", "_time", "_atomic", "_progress", "_format"},
    {"client"},
    {"fetch"},
    {"storage"},
    {"metrics", "synthetic"},
    {"charts"},
    {"report"},
    {"export", "check"},
    {"prometheus"},
    {"cli", "flows", "__init__"},
]


def _layer_of(module: str) -> int:
    for index, names in enumerate(LAYERS):
        if module in names:
            return index
    raise AssertionError(f"module trs_analytics.{module} is in no layer; add it to LAYERS")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("trs_analytics")
        ):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("trs_analytics"))
    return found


def _top(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions and the rest.
    group = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return group, name


def test_all_is_sorted_and_importable() -> None:
    assert trs_analytics.__all__ == sorted(trs_analytics.__all__, key=_isort_key)
    for name in trs_analytics.__all__:
        assert hasattr(trs_analytics, name), name


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py")),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_imports_point_down_the_layers(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    own = rel.parts[0].removesuffix(".py")
    if own == "__init__" and len(rel.parts) == 1:
        return  # the package root re-exports everything
    own_layer = _layer_of(own)
    for imported in _imports(path):
        target = _top(imported)
        if target == "__init__":
            continue  # only `__version__` is read lazily from the root
        assert _layer_of(target) <= own_layer, (
            f"{rel} imports {imported}: layer {target!r} is above {own!r}"
        )


def _readme_contract(marker: str = "contract") -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split(f"<!-- {marker}:start -->")[1].split(f"<!-- {marker}:end -->")[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \|", block, flags=re.MULTILINE)
    return [(name, kind.strip()) for name, kind in rows]


def _kind(dtype: PolarsDataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return f"Datetime({dtype.time_unit}, {dtype.time_zone})"
    if isinstance(dtype, pl.List):
        return f"List({_kind(dtype.inner)})"
    return type(dtype).__name__


def test_readme_documents_the_contract_column_for_column() -> None:
    documented = _readme_contract()
    actual = [(name, _kind(dtype)) for name, dtype in STATES_SCHEMA.items()]
    assert documented == actual


def test_readme_documents_the_flow_run_contract_column_for_column() -> None:
    documented = _readme_contract("flow-contract")
    actual = [(name, _kind(dtype)) for name, dtype in FLOW_RUN_STATES_SCHEMA.items()]
    assert documented == actual


def test_schema_version_is_current() -> None:
    # Bump SCHEMA_VERSION (and this number) together with the README table.
    assert SCHEMA_VERSION == 2

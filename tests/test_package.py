"""Package-wide rules: public surface, layering, and the documented data contract."""

from __future__ import annotations

import ast
import inspect
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest

import trs_analytics
from tests.public import public_functions
from trs_analytics.schema import FLOW_RUN_STATES_SCHEMA, SCHEMA_VERSION, STATES_SCHEMA

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "trs_analytics"

#: Private modules of one package that other packages may import: the metrics'
#: engine layer (the one engine-aware module, its time buckets and the one-pass
#: breakdowns), which charts, report and prometheus compute through.
SHARED_PRIVATE = {
    "trs_analytics.metrics._frames",
    "trs_analytics.metrics._buckets",
    "trs_analytics.metrics._breakdowns",
}


def _contracts() -> list[dict[str, Any]]:
    """The import-linter contracts of pyproject.toml: the one definition of the layers."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _layered_modules() -> list[str]:
    (layers,) = [c for c in _contracts() if c["type"] == "layers" and "containers" not in c]
    return [name.strip() for layer in layers["layers"] for name in layer.split("|")]


def _top_modules() -> list[str]:
    """Every module and package directly under trs_analytics (not the root itself)."""
    found = [
        f"trs_analytics.{p.stem}"
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    ]
    return sorted(found)


def _imports(path: Path) -> set[str]:
    """The trs_analytics modules ``path`` imports (``from a.b import c``: ``a.b``)."""
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


def test_every_module_stands_in_one_layer_of_the_import_linter_contract() -> None:
    # lint-imports checks the contract, but says nothing of a module left out of it
    assert sorted(_layered_modules()) == _top_modules()


def test_the_readme_describes_every_layered_module_and_points_to_the_contract() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    architecture = text.split("## Architecture")[1].split("\n## ")[0]
    for module in _layered_modules():
        name = module.removeprefix("trs_analytics.")
        assert re.search(rf"\b{re.escape(name)}(\.py|/)", architecture), name
    assert "[tool.importlinter]" in architecture


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py")),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_module_imports_a_private_module_of_another_package(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    own = "trs_analytics." + rel.parts[0].removesuffix(".py")
    for imported in _imports(path) - SHARED_PRIVATE:
        parts = imported.split(".")
        private = len(parts) > 2 and parts[2].startswith("_")
        assert not (private and not imported.startswith(own + ".")), (
            f"{rel} imports {imported}, a private module of another package. Hint: import "
            "it from its package, which exports what the others use."
        )


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions and the rest.
    group = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return group, name


def test_all_is_sorted_and_importable() -> None:
    assert trs_analytics.__all__ == sorted(trs_analytics.__all__, key=_isort_key)
    for name in trs_analytics.__all__:
        assert hasattr(trs_analytics, name), name


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


@pytest.mark.parametrize(
    ("pattern", "owner"),
    [
        (r'\.replace\("Z", "\+00:00"\)', "_time.parse_iso"),
        (r"^[^>]*datetime\(1970, 1, 1", "_time.EPOCH"),
        (r"^def iso\(", "_time.iso / _time.api_iso"),
        (r'timespec="microseconds"\)\.replace', "_time.iso"),
    ],
)
def test_time_has_one_owner(pattern: str, owner: str) -> None:
    written = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "_time.py"
        and re.search(pattern, path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    ]
    assert written == [], f"written again outside {owner}: {written}"


def test_the_api_reference_has_a_page_for_every_public_package() -> None:
    pages = "\n".join(
        p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs" / "reference").glob("*.md"))
    )
    documented = set(re.findall(r"^::: (trs_analytics[\w.]*)$", pages, flags=re.MULTILINE))
    public = {"trs_analytics", "trs_analytics.export", "trs_analytics.check"} | {
        f"trs_analytics.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()
    }
    assert public <= documented, sorted(public - documented)
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in sorted((ROOT / "docs" / "reference").glob("*.md")):
        assert page.name in nav, f"{page.name} is not in mkdocs.yml's nav"


#: Names a parameter for "the current time" must not have: it is ``now`` everywhere.
_NOT_NOW = {"at", "as_of", "asof", "current_time", "reference_time", "when", "today"}


def _documented(fn: object, parameter: str) -> str:
    """The ``Args:`` entry of ``parameter`` in ``fn``'s docstring ("" if none)."""
    doc = inspect.getdoc(fn) or ""
    match = re.search(rf"^\s+{parameter}: (.*(?:\n\s{{8,}}\S.*)*)", doc, flags=re.MULTILINE)
    return " ".join(match.group(1).split()) if match else ""


@pytest.mark.parametrize(
    ("name", "fn"), public_functions(), ids=[name for name, _ in public_functions()]
)
def test_the_current_time_is_called_now(name: str, fn: object) -> None:
    for parameter in inspect.signature(fn).parameters:  # type: ignore[arg-type]
        assert parameter not in _NOT_NOW, f"{name}({parameter}=): call it now="
        text = _documented(fn, parameter)
        if re.search(r"\bcurrent (UTC )?time\b", text):
            assert parameter == "now", f"{name}({parameter}=) is the current time: call it now="


def _readme_api() -> list[str]:
    """The names of the README's "Public API" list, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- api:start -->")[1].split("<!-- api:end -->")[0]
    return re.findall(r"`(\w+)`", block)


def _reference_api() -> list[str]:
    """The members the API reference's package page shows, in order."""
    page = (ROOT / "docs" / "reference" / "package.md").read_text(encoding="utf-8")
    return re.findall(r"^ {8}- (\w+)$", page, flags=re.MULTILINE)


def test_all_the_readme_and_the_api_reference_list_the_same_top_level_names() -> None:
    exported = set(trs_analytics.__all__) - {"__version__"}
    readme, reference = _readme_api(), _reference_api()
    assert len(readme) == len(set(readme)), "a name is listed twice in the README"
    assert set(readme) == exported, (
        f"README only: {sorted(set(readme) - exported)}; "
        f"__all__ only: {sorted(exported - set(readme))}"
    )
    assert reference == readme, "docs/reference/package.md: the README's names, in its order"

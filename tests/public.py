"""The public functions of trs_analytics, for tests that hold a rule across the whole API.

Public means listed in ``__all__`` of the top level or of a public subpackage or
module (``trs_analytics.metrics``, ``trs_analytics.check``, ...); each function
once, under the first name found. Classes are left out (their ``__init__`` is
their fields).

Examples:
    >>> names = [name for name, _ in public_functions()]
    >>> "trs_analytics.run_time" in names, "trs_analytics.metrics.run_time" in names
    (True, False)
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import TYPE_CHECKING, Any

import trs_analytics

if TYPE_CHECKING:
    from collections.abc import Callable


def public_modules() -> list[str]:
    """The top level, then every public module and package directly under it."""
    found = [
        f"trs_analytics.{m.name}"
        for m in pkgutil.iter_modules(trs_analytics.__path__)
        if not m.name.startswith("_")
    ]
    return ["trs_analytics", *sorted(found)]


def public_functions() -> list[tuple[str, Callable[..., Any]]]:
    """``(qualified name, function)`` of every public function, each function once."""
    seen: set[int] = set()
    found: list[tuple[str, Callable[..., Any]]] = []
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.isfunction(obj) and id(obj) not in seen:
                seen.add(id(obj))
                found.append((f"{module_name}.{name}", obj))
    return found


def with_parameter(parameter: str) -> list[tuple[str, Callable[..., Any]]]:
    """The public functions that take ``parameter``."""
    return [
        (name, fn)
        for name, fn in public_functions()
        if parameter in inspect.signature(fn).parameters
    ]

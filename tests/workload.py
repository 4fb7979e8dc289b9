"""Moved to :mod:`devtools.workload`; this name stays only until open branches merge."""

from devtools.workload import *  # noqa: F403
from devtools.workload import __all__ as __all__

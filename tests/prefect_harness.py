"""Moved to :mod:`devtools.prefect_harness`; this name stays only until open branches merge."""

from devtools.prefect_harness import *  # noqa: F403
from devtools.prefect_harness import __all__ as __all__

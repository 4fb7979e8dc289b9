"""What a CLI run printed, checked the way every CLI test wants it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from click.testing import Result


def assert_one_error(result: Result, code: int, pattern: str) -> str:
    """The run exited ``code`` with one ``Error:`` line matching ``pattern``, no traceback."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == code, result.output
    assert len(errors) == 1, result.stderr
    assert re.search(pattern, errors[0]), errors[0]
    assert "Traceback" not in result.output
    return errors[0]

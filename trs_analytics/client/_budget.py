"""A thread-safe request budget (token bucket) for Prefect Cloud's rate limits."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

from trs_analytics.exceptions import ConfigurationError

__all__ = ["RequestBudget"]


class RequestBudget:
    """Allow at most ``per_minute`` requests in any minute, smoothly.

    Tokens refill continuously at ``per_minute / 60`` a second, up to a burst of
    ``burst`` (default: a tenth of a minute's budget, at least 1).

    Examples:
        >>> now = [0.0]
        >>> budget = RequestBudget(60, burst=1, clock=lambda: now[0],
        ...                        sleep=lambda s: now.__setitem__(0, now[0] + s))
        >>> for _ in range(3):
        ...     budget.acquire()
        >>> now[0]  # the 2nd and 3rd requests each waited one second
        2.0
    """

    def __init__(
        self,
        per_minute: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute <= 0:
            msg = f"requests_per_minute must be positive, got {per_minute}."
            raise ConfigurationError(msg)
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, int(per_minute // 10)))
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until one request may be sent, then spend it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)

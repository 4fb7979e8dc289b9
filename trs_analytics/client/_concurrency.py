"""The package's two concurrency tools, in one place.

* :func:`ordered_map`: apply a function on a thread pool, results in input order,
  at most ``window`` items in flight (so an endless input never piles up).
* :func:`prefetch`: run an iterator on a background thread, a few items ahead of
  its consumer.

Both clean up when their consumer stops early (``close()``, ``break``, an
error): no thread is left blocked. In :func:`prefetch` the producer only ever
waits on the queue with a timeout and checks a stop flag between tries, so a
consumer that closes while the queue is full never hangs on joining it.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import weakref
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

from trs_analytics.exceptions import ConfigurationError

__all__ = ["ordered_map", "prefetch"]

T = TypeVar("T")
R = TypeVar("R")

_ITEM, _DONE, _ERROR = "item", "done", "error"
#: How long the producer waits on a full queue before checking the stop flag.
_POLL = 0.05


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int, window: int | None = None
) -> Iterator[R]:
    """Apply ``fn`` to ``items`` on ``workers`` threads; yield results in input order.

    At most ``window`` (default ``4 * workers``) items are submitted ahead of
    the one being yielded. The first error is raised in the consumer, and the
    items not yet started are cancelled; closing the iterator does the same.

    Examples:
        >>> list(ordered_map(lambda x: x * x, range(6), workers=3))
        [0, 1, 4, 9, 16, 25]
    """
    if workers < 1:
        msg = f"workers must be at least 1, got {workers}."
        raise ConfigurationError(msg)
    return _ordered_map(fn, items, workers, window or 4 * workers)


def _ordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, window: int
) -> Iterator[R]:
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trs")
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            # in a copy of the caller's context: what it set (the CLI's spelling) holds there
            pending.append(pool.submit(contextvars.copy_context().run, fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def prefetch(items: Iterable[T], *, depth: int, start: bool = False) -> Iterator[T]:
    """Iterate ``items`` on a background thread, at most ``depth`` items ahead.

    Errors of ``items`` are raised in the consumer. Closing the returned
    iterator stops the producer and closes ``items`` (when it is a generator)
    on the producer's thread. The producer starts at the first ``next()``, or
    at once with ``start=True`` (to read several sources ahead side by side);
    an iterator dropped without being closed stops its producer too.

    Examples:
        >>> pages = prefetch(iter(["p1", "p2", "p3"]), depth=2)
        >>> next(pages), list(pages)
        ('p1', ['p2', 'p3'])
    """
    if depth < 1:
        msg = f"depth must be at least 1, got {depth}."
        raise ConfigurationError(msg)
    buffer: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    thread = threading.Thread(
        target=contextvars.copy_context().run,
        args=(_produce, items, buffer, stop),
        name="trs-prefetch",
        daemon=True,
    )
    if start:
        thread.start()
    consumer = _consume(buffer, stop, thread)
    weakref.finalize(consumer, stop.set)
    return consumer


def _offer(buffer: queue.Queue[tuple[str, Any]], stop: threading.Event, item: Any) -> bool:
    while not stop.is_set():
        try:
            buffer.put(item, timeout=_POLL)
        except queue.Full:
            continue
        return True
    return False


def _produce(
    items: Iterable[T], buffer: queue.Queue[tuple[str, Any]], stop: threading.Event
) -> None:
    source = iter(items)
    try:
        for item in source:
            if not _offer(buffer, stop, (_ITEM, item)):
                return
        _offer(buffer, stop, (_DONE, None))
    except BaseException as err:  # handed to the consumer, raised there
        _offer(buffer, stop, (_ERROR, err))
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


def _consume(
    buffer: queue.Queue[tuple[str, Any]], stop: threading.Event, thread: threading.Thread
) -> Iterator[Any]:
    if thread.ident is None:
        thread.start()
    try:
        while True:
            kind, value = buffer.get()
            if kind == _DONE:
                return
            if kind == _ERROR:
                raise value
            yield value
    finally:
        stop.set()
        thread.join()

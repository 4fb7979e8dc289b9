"""ordered_map and prefetch, each alone: order, bounds, errors and early close."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest

from trs_analytics.client import ordered_map, prefetch
from trs_analytics.exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterator


def test_ordered_map_keeps_input_order_whatever_finishes_first() -> None:
    def slow_first(x: int) -> int:
        time.sleep(0.02 if x == 0 else 0.0)
        return x * 10

    assert list(ordered_map(slow_first, range(20), workers=4)) == [x * 10 for x in range(20)]


def test_ordered_map_keeps_at_most_window_items_in_flight() -> None:
    pulled: list[int] = []

    def items() -> Iterator[int]:
        for i in range(1000):
            pulled.append(i)
            yield i

    results = ordered_map(lambda x: x, items(), workers=2, window=5)
    assert next(results) == 0
    assert len(pulled) == 5
    results.close()  # type: ignore[attr-defined]


def test_ordered_map_raises_the_first_error_and_cancels_the_rest() -> None:
    started: list[int] = []

    def fail_at_3(x: int) -> int:
        started.append(x)
        if x == 3:
            msg = "boom"
            raise ValueError(msg)
        time.sleep(0.01)
        return x

    results = ordered_map(fail_at_3, range(100), workers=2, window=4)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="boom"):
        next(results)
    assert len(started) < 100


def test_ordered_map_refuses_no_workers() -> None:
    with pytest.raises(ConfigurationError, match="workers must be at least 1"):
        ordered_map(str, [1], workers=0)


def test_prefetch_yields_everything_in_order() -> None:
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))


def test_prefetch_reads_at_most_depth_ahead() -> None:
    pulled: list[int] = []

    def items() -> Iterator[int]:
        for i in range(100):
            pulled.append(i)
            yield i

    pages = prefetch(items(), depth=4)
    assert next(pages) == 0
    time.sleep(0.2)
    # one handed over, four queued, one waiting in the producer's hand
    assert len(pulled) <= 6
    pages.close()  # type: ignore[attr-defined]


def test_closing_while_the_queue_is_full_returns_at_once_and_closes_the_source() -> None:
    # issue 13.5: 9 queued pages, read 1, close -> the old producer blocked on put for ever
    closed = threading.Event()

    def pages() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            closed.set()

    stream = prefetch(pages(), depth=9)
    assert next(stream) == 0
    time.sleep(0.2)  # let the producer fill the queue
    began = time.monotonic()
    stream.close()  # type: ignore[attr-defined]
    assert time.monotonic() - began < 2.0
    assert closed.is_set()
    assert not any(t.name == "trs-prefetch" and t.is_alive() for t in threading.enumerate())


def test_an_error_of_the_source_is_raised_in_the_consumer_after_the_items_before_it() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        msg = "page 3 failed"
        raise RuntimeError(msg)

    stream = prefetch(pages(), depth=1)
    assert next(stream) == 1
    assert next(stream) == 2
    with pytest.raises(RuntimeError, match="page 3 failed"):
        next(stream)


def test_an_error_while_the_consumer_is_gone_does_not_hang() -> None:
    def pages() -> Iterator[int]:
        yield from range(5)
        msg = "late"
        raise RuntimeError(msg)

    stream = prefetch(pages(), depth=1)
    assert next(stream) == 0
    stream.close()  # type: ignore[attr-defined]


def test_prefetch_refuses_a_depth_below_one() -> None:
    with pytest.raises(ConfigurationError, match="depth must be at least 1"):
        prefetch(iter([]), depth=0)


def test_prefetch_with_start_reads_ahead_before_the_first_next() -> None:
    pulled = threading.Event()

    def items() -> Iterator[int]:
        pulled.set()
        yield 1

    pages = prefetch(items(), depth=2, start=True)
    assert pulled.wait(5)  # the producer ran before anyone asked
    assert list(pages) == [1]


def test_a_started_prefetch_that_is_dropped_stops_its_producer() -> None:
    import gc

    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            closed.set()

    pages = prefetch(items(), depth=2, start=True)
    del pages
    gc.collect()
    assert closed.wait(5)

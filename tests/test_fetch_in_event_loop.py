"""The sync API must work where an event loop is already running (a Jupyter kernel)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx

import trs_analytics as ta
from tests.recorded import Router

if TYPE_CHECKING:
    import polars as pl


def _fetch(source: ta.fetch.Source) -> pl.DataFrame:
    client = ta.PrefectClient("http://test/api", transport=httpx.MockTransport(Router()))
    return ta.fetch_states(
        client=client, since="2026-11-28T13:35:00Z", until="2026-11-28T13:37:00Z", source=source
    )


def test_fetch_states_inside_a_running_event_loop() -> None:
    outside = _fetch("events")

    async def cell() -> pl.DataFrame:
        # What a notebook cell does: a plain call while the kernel's loop runs.
        assert asyncio.get_running_loop().is_running()
        return _fetch("events")

    inside = asyncio.run(cell())
    assert inside.height == 13
    assert inside.equals(outside)

"""Names given as filters are checked against the server by every fetch, for the API too.

A task has no list of its own on a Prefect server: a task name is known when a
task run's name holds it, or when a recent task run derives it (a run with a
custom name). Served from the recorded 3.9.1 answers (tests/recordings).
"""

from __future__ import annotations

import httpx
import polars as pl
import pytest

import trs_analytics as ta
from tests.recorded import FLAKY, SINCE, UNTIL, Router
from trs_analytics.exceptions import ConfigurationError

API = "http://test/api"


def test_a_task_name_that_matches_nothing_names_the_closest() -> None:
    router = Router()
    with ta.PrefectClient(API, transport=httpx.MockTransport(router)) as client:
        with pytest.raises(ConfigurationError) as caught:
            ta.fetch_states(client=client, since=SINCE, until=UNTIL, task_names=["flakey"])
        assert str(caught.value) == (
            f"no task is named 'flakey' on {API}; the closest: 'flaky'. Hint: names are "
            "case-sensitive; list them with 'prefect task-run ls', and fix --task (task_names=)."
        )
        assert not any("states" in path for path in router.paths())  # refused before a fetch
        every = ta.fetch_states(client=client, since=SINCE, until=UNTIL, progress=False)
        flaky = ta.fetch_states(client=client, since=SINCE, until=UNTIL, task_names="flaky")
    assert flaky.height > 0
    assert flaky.equals(every.filter(pl.col("task_name") == "flaky"))


def test_a_task_run_with_a_custom_name_still_names_its_task() -> None:
    """Its name holds no task name, but its task key does: the recent runs know it."""
    router = Router()
    runs = router.data["task_runs_filter"]
    flaky = next(r for r in runs if r["id"] == FLAKY)
    flaky["name"] = "nightly run for acme"
    with ta.PrefectClient(API, transport=httpx.MockTransport(router)) as client:
        frame = ta.fetch_states(client=client, since=SINCE, until=UNTIL, task_names="flaky")
    assert set(frame["task_run_id"]) == {FLAKY}
    assert set(frame["task_run_name"]) == {"nightly run for acme"}

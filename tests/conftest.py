"""Shared fixtures: real Prefect servers and the known workload.

Fixtures (all session-scoped, so one plain server and one workload serve the run):

- ``prefect_server`` -> :class:`~tests.prefect_harness.PrefectServer`: a plain
  server (no auth, no CSRF) on 127.0.0.1.
- ``workload`` -> :class:`~tests.workload.GroundTruth`: the workload run once at
  ``scale=1`` against ``prefect_server``; every state is readable when it returns.
- ``prefect_server_factory`` -> ``start(*, auth_string=None, csrf=False)``: an extra
  server with auth and/or CSRF, one per configuration, shared by the session.
- ``prefect_server_auth`` / ``prefect_server_csrf``: the factory's servers with
  basic auth (``PREFECT_AUTH_STRING``) or CSRF protection on.

Every test that uses one of them is marked ``integration`` automatically, so
``pytest -m "not integration"`` runs the fast suite. Servers are stopped at the
end of the session, also when tests fail (see :mod:`tests.prefect_harness`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

import pytest

from tests.prefect_harness import PrefectServer, start_prefect_server
from tests.workload import GroundTruth, run_workload

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: The basic-auth string of ``prefect_server_auth``.
PREFECT_AUTH_STRING: Final = "trs:s3cret"

#: Fixtures that start a real server; tests using any of them get the marker.
INTEGRATION_FIXTURES: Final = frozenset(
    {
        "prefect_server",
        "workload",
        "prefect_server_factory",
        "prefect_server_auth",
        "prefect_server_csrf",
    }
)


class ServerFactory(Protocol):
    """Starts (or reuses) a server for one auth/CSRF configuration."""

    def __call__(self, *, auth_string: str | None = None, csrf: bool = False) -> PrefectServer:
        """Return the session's server for this configuration, starting it if needed."""
        ...


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Keep ``--doctest-modules`` away from conftest files (they hold no doctests).

    ``tests/conftest.py`` and ``tests/charts/conftest.py`` both import as the
    top-level module ``conftest`` (no ``__init__.py``), so collecting them as
    doctest modules fails with "import file mismatch". Pytest still loads both
    as conftests; this only skips the doctest collection.
    """
    return True if collection_path.name == "conftest.py" else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a server fixture as ``integration``."""
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A plain Prefect server for the whole session."""
    with start_prefect_server(tmp_path_factory.mktemp("prefect-server")) as server:
        yield server


@pytest.fixture(scope="session")
def workload(
    prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> GroundTruth:
    """The known workload, run once against ``prefect_server``; all states readable."""
    return run_workload(
        prefect_server.api_url, scale=1, out_dir=tmp_path_factory.mktemp("workload")
    )


@pytest.fixture(scope="session")
def prefect_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerFactory]:
    """Start extra servers with auth and/or CSRF; one per configuration, stopped at the end."""
    servers: dict[tuple[str | None, bool], PrefectServer] = {}

    def start(*, auth_string: str | None = None, csrf: bool = False) -> PrefectServer:
        key = (auth_string, csrf)
        if key not in servers:
            home = tmp_path_factory.mktemp("prefect-server-extra")
            servers[key] = start_prefect_server(home, auth_string=auth_string, csrf=csrf)
        return servers[key]

    try:
        yield start
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="session")
def prefect_server_auth(prefect_server_factory: ServerFactory) -> PrefectServer:
    """A server that demands basic auth with :data:`PREFECT_AUTH_STRING`."""
    return prefect_server_factory(auth_string=PREFECT_AUTH_STRING)


@pytest.fixture(scope="session")
def prefect_server_csrf(prefect_server_factory: ServerFactory) -> PrefectServer:
    """A server with CSRF protection on (every POST needs a token)."""
    return prefect_server_factory(csrf=True)

"""Shared fixtures: real Prefect servers of several lines and the known workload.

Fixtures that start servers are all session-scoped: a server starts once per
session and stops at the session's end, also when tests fail (see
:mod:`devtools.prefect_harness`). The three Prefect lines' servers and workloads
(minutes of start-up and of task bodies sleeping) start in a background thread
as soon as collection shows that the run needs them (:class:`_Lines`), so that
they overlap the tests that run first; the extra servers start when first asked for.
``scripts/check`` runs the tests in two pytest-xdist workers (``--dist
loadgroup``): each test gets an ``xdist_group`` (:func:`_group_of`) that keeps
each line's server, and the SparkSession, on one worker.

- ``prefect_server`` -> :class:`~devtools.prefect_harness.PrefectServer`: a plain
  server (no auth, no CSRF) of the project's own Prefect (3.9.1) on 127.0.0.1.
- ``workload`` -> :class:`~devtools.workload.GroundTruth`: the workload run once at
  ``scale=1`` against ``prefect_server``; every state is readable when it returns.
- ``prefect_server_2_20`` / ``workload_2_20`` and ``prefect_server_3_2`` /
  ``workload_3_2``: the same for Prefect 2.20.16 and 3.2.15, each server and
  workload client run from that release's own virtualenv
  (:mod:`devtools.prefect_lines`, built on first use).
- ``prefect_line`` -> :class:`ServerLine` ``(server, truth)``, parametrized over
  the lines with ids ``"2.20"``, ``"3.2"``, ``"3.9"``: ``def test_x(prefect_line)``
  runs once per line.
- ``prefect_server_factory`` -> ``start(*, auth_string=None, csrf=False)``: an extra
  server with auth and/or CSRF, one per configuration, shared by the session.
- ``prefect_server_auth`` / ``prefect_server_csrf``: the factory's servers with
  basic auth (``devtools.prefect_harness.PREFECT_AUTH_STRING``) or CSRF protection on.

Every test that uses one of them is marked ``integration`` automatically, so
``pytest -m "not integration"`` runs the fast suite.

Two things hold for every test: no user Prefect configuration is read (the
autouse ``_no_user_config``), and nothing the run starts writes to the user's
home folder: Prefect's home, IPython's and Chromium's folders are temporary
(:func:`pytest_configure`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

import pytest

from devtools.prefect_harness import PREFECT_AUTH_STRING, PrefectServer, start_prefect_server
from devtools.prefect_lines import LINES, ServerLine, prefect_python, venvs_root
from devtools.workload import GroundTruth, run_workload
from trs_analytics._redact import forget_secrets

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Workload scale on the older lines (230 task runs: more than one 200-row page).
OLD_LINE_SCALE: Final = 1

#: Fixtures that start a real server; tests using any of them get the marker.
INTEGRATION_FIXTURES: Final = frozenset(
    {
        "prefect_server",
        "workload",
        "prefect_server_factory",
        "prefect_server_auth",
        "prefect_server_csrf",
        "prefect_line",
        *(f"prefect_server_{line.suffix}" for line in LINES.values() if not line.own),
        *(f"workload_{line.suffix}" for line in LINES.values() if not line.own),
    }
)

#: The environment variables that carry a user's Prefect configuration.
USER_CONFIG: Final = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING")


class ServerFactory(Protocol):
    """Starts (or reuses) a server for one auth/CSRF configuration."""

    def __call__(self, *, auth_string: str | None = None, csrf: bool = False) -> PrefectServer:
        """Return the session's server for this configuration, starting it if needed."""
        ...


_TEST_HOME: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """Keep the run out of the user's home folder: every tool's folder goes to a temp one.

    Importing Prefect creates ``~/.prefect``; notebook kernels create ``~/.ipython``;
    headless Chromium writes ``~/.config/chromium`` and ``~/.cache/dconf``. The
    variables set here are inherited by every subprocess the tests start. The caches
    worth keeping between runs stay where they were: the Prefect lines' virtualenvs
    (``TRS_PREFECT_VENVS``) and uv's cache (``UV_CACHE_DIR``).
    """
    del config
    if _TEST_HOME:
        return
    root = Path(tempfile.mkdtemp(prefix="trs-test-home-"))
    _TEST_HOME.append(str(root))
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    os.environ.setdefault("TRS_PREFECT_VENVS", str(venvs_root()))
    os.environ.setdefault("UV_CACHE_DIR", str(Path(cache) / "uv"))
    for name, folder in [
        ("PREFECT_HOME", "prefect"),
        ("IPYTHONDIR", "ipython"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_CACHE_HOME", "cache"),
    ]:
        os.environ[name] = str(root / folder)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the temporary folders."""
    del config
    while _TEST_HOME:
        shutil.rmtree(_TEST_HOME.pop(), ignore_errors=True)


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Keep ``--doctest-modules`` away from conftest files (they hold no doctests).

    ``tests/conftest.py`` and ``tests/charts/conftest.py`` both import as the
    top-level module ``conftest`` (no ``__init__.py``), so collecting them as
    doctest modules fails with "import file mismatch". Pytest still loads both
    as conftests; this only skips the doctest collection. The shims left in
    ``tests/`` for the harness's old names are skipped too (they re-export
    ``devtools``, whose doctests run from there).
    """
    if collection_path.name == "conftest.py":
        return True
    return True if collection_path.name in {"prefect_harness.py", "workload.py"} else None


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Iterator[None]:
    """Mark every test that uses a server fixture as ``integration``; run those last.

    The marks are set before ``-m`` selects; once pytest has ordered the tests by
    their fixtures' parameters, the integration tests move behind the others, in
    their order. The servers and workloads they need start in the background when
    collection ends (:class:`_Lines`): the first test that needed the workload
    used to wait a minute for it, now the other tests run meanwhile.
    """
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        item.add_marker(pytest.mark.xdist_group(_group_of(item)))
    yield
    items.sort(key=lambda item: item.get_closest_marker("integration") is not None)


class _Lines:
    """Each needed Prefect line's server and workload, made in one background thread.

    The servers' start-up and the workloads' sleeping task bodies leave a core
    idle for minutes. A thread starts when collection is done
    (:func:`pytest_collection_finish`; under pytest-xdist, when a worker starts
    a group of tests that needs lines), in the order the tests need them (the
    project's own line first), and stays alive
    until the session ends: a server is started with ``PR_SET_PDEATHSIG``,
    which Linux sends when the *thread* that started it exits. The fixtures
    take the results (or the errors) from here; a line no test needs is never
    started.
    """

    def __init__(self) -> None:
        self.servers: dict[str, Future[PrefectServer]] = {}
        self.truths: dict[str, Future[GroundTruth]] = {}
        self._done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._root: Path | None = None
        self._env: dict[str, str] | None = None

    def keep_env(self) -> None:
        """The environment the workloads run in: the session's, whatever a test patches later."""
        self._env = dict(os.environ)

    def start(self, needed: dict[str, bool]) -> None:
        """Make the servers of ``needed`` (line id -> whether its workload is needed too)
        that are not made yet."""
        needed = {i: workload for i, workload in needed.items() if i not in self.servers}
        if not needed:
            return
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="trs-prefect-lines-"))
        for line_id, workload in needed.items():
            self.servers[line_id] = Future()
            if workload:
                self.truths[line_id] = Future()
        env = self._env if self._env is not None else dict(os.environ)
        thread = threading.Thread(
            target=self._run, args=(list(needed), env), name="prefect-lines", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _run(self, order: list[str], env: dict[str, str]) -> None:
        assert self._root is not None
        for line_id in order:
            line = LINES[line_id]
            truth = self.truths.get(line_id)
            try:
                home = self._root / f"prefect-server-{line.version}"
                server = start_prefect_server(home, python=prefect_python(line))
            except BaseException as err:  # handed to the fixtures that need it
                self.servers[line_id].set_exception(err)
                if truth is not None:
                    truth.set_exception(err)
                continue
            self.servers[line_id].set_result(server)
            if truth is None:
                continue
            try:
                scale = 1 if line.own else OLD_LINE_SCALE
                out_dir = self._root / f"workload-{line.version}"
                result = run_workload(
                    server.api_url, scale=scale, out_dir=out_dir, python=server.python, env=env
                )
            except BaseException as err:
                truth.set_exception(err)
            else:
                truth.set_result(result)
        self._done.wait()  # keep the servers' parent thread alive (see the class docstring)

    def server(self, line_id: str) -> PrefectServer:
        return self.servers[line_id].result()

    def truth(self, line_id: str) -> GroundTruth:
        return self.truths[line_id].result()

    def stop(self) -> None:
        """Stop the servers and remove their folders (waits for a workload still running)."""
        self._done.set()
        for thread in self._threads:
            thread.join()
        for future in self.servers.values():
            if future.done() and future.exception() is None:
                future.result().stop()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)


_LINES = _Lines()


def _fixture_of(line_id: str, kind: str) -> str:
    line = LINES[line_id]
    return kind if line.own else f"{kind}_{line.suffix}"


def _lines_of(item: pytest.Item) -> dict[str, bool]:
    """The lines ``item`` needs: line id -> whether it needs the workload too."""
    names = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    param = callspec.params.get("prefect_line") if callspec is not None else None
    needed: dict[str, bool] = {}
    for line_id in LINES:
        workload = _fixture_of(line_id, "workload") in names or param == line_id
        if workload or _fixture_of(line_id, "prefect_server") in names:
            needed[line_id] = workload
    return needed


def _lines_needed(items: list[pytest.Item]) -> dict[str, bool]:
    """The lines ``items`` need, in the order to make them (the project's own first)."""
    needed: dict[str, bool] = {}
    for item in items:
        for line_id, workload in _lines_of(item).items():
            needed[line_id] = needed.get(line_id, False) or workload
    own = [i for i, line in LINES.items() if line.own]
    return {i: needed[i] for i in [*own, *(i for i in LINES if i not in own)] if i in needed}


#: Under pytest-xdist: the lines each group of tests needs (made when the group starts).
_GROUP_LINES: dict[str, dict[str, bool]] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the lines' servers and workloads the selected tests need (see :class:`_Lines`).

    Under pytest-xdist (``scripts/check`` runs two workers) every worker collects
    every test but runs only the groups sent to it (:func:`_group_of`): a
    worker makes a group's lines when it starts the group's first test.
    """
    if session.config.option.collectonly:
        return
    _LINES.keep_env()
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        _LINES.start(_lines_needed(session.items))
        return
    groups: dict[str, list[pytest.Item]] = {}
    for item in session.items:
        groups.setdefault(_marked_group(item), []).append(item)
    _GROUP_LINES.update({group: _lines_needed(items) for group, items in groups.items()})


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under pytest-xdist: make the lines of the test's group when the group starts."""
    if _GROUP_LINES:
        _LINES.start(_GROUP_LINES.get(_marked_group(item), {}))


def _marked_group(item: pytest.Item) -> str:
    """The group :func:`pytest_collection_modifyitems` gave ``item``."""
    mark = item.get_closest_marker("xdist_group")
    return str(mark.args[0]) if mark is not None else ""


#: The xdist group of the tests on Spark or on the project's own Prefect line.
SPARK_AND_OWN_LINE: Final = "spark-and-own-prefect-line"
#: The xdist group of the tests on the older lines and the auth/CSRF servers.
OTHER_SERVERS: Final = "older-prefect-lines-and-auth-servers"


def _group_of(item: pytest.Item) -> str:
    """The pytest-xdist group (``--dist loadgroup``) ``item`` runs in.

    Each server of a Prefect line and the SparkSession are made once per worker
    that needs them, so the tests on them stay in two groups, each run by one
    worker: Spark with the project's own line (49 tests use both), and the older
    lines with the auth/CSRF servers. Every other test runs with its module,
    whose module-scoped fixtures are then made once, and the Prometheus tests
    share their server.
    """
    names = set(getattr(item, "fixturenames", ()))
    lines = _lines_of(item)
    if "spark" in item.nodeid.lower() or "spark" in names or any(LINES[i].own for i in lines):
        return SPARK_AND_OWN_LINE
    if lines or INTEGRATION_FIXTURES.intersection(names):
        return OTHER_SERVERS
    module = item.nodeid.split("::")[0]
    return "prometheus" if module.startswith("tests/prometheus/") else module


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the servers :class:`_Lines` started."""
    del session
    _LINES.stop()


@pytest.fixture(autouse=True)
def _no_secret_left() -> Iterator[None]:
    """Credentials a test's clients registered for redaction do not outlive the test."""
    yield
    forget_secrets()


@pytest.fixture(autouse=True)
def _no_user_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """PrefectClient reads os.environ and ~/.prefect: point both away from the user's."""
    for name in USER_CONFIG:
        monkeypatch.delenv(name, raising=False)
    missing = tmp_path_factory.getbasetemp() / "no-profiles.toml"
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(missing))


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def prefect_server() -> PrefectServer:
    """A plain Prefect server of the project's own Prefect (3.9.1) for the whole session."""
    return _LINES.server("3.9")


@pytest.fixture(scope="session")
def workload(prefect_server: PrefectServer) -> GroundTruth:
    """The known workload, run once against ``prefect_server``; all states readable."""
    del prefect_server
    return _LINES.truth("3.9")


@pytest.fixture(scope="session")
def prefect_server_2_20() -> PrefectServer:
    """A Prefect 2.20.16 server, run from its own virtualenv."""
    return _LINES.server("2.20")


@pytest.fixture(scope="session")
def workload_2_20(prefect_server_2_20: PrefectServer) -> GroundTruth:
    """The workload run by Prefect 2.20.16's own client on ``prefect_server_2_20``."""
    del prefect_server_2_20
    return _LINES.truth("2.20")


@pytest.fixture(scope="session")
def prefect_server_3_2() -> PrefectServer:
    """A Prefect 3.2.15 server, run from its own virtualenv."""
    return _LINES.server("3.2")


@pytest.fixture(scope="session")
def workload_3_2(prefect_server_3_2: PrefectServer) -> GroundTruth:
    """The workload run by Prefect 3.2.15's own client on ``prefect_server_3_2``."""
    del prefect_server_3_2
    return _LINES.truth("3.2")


@pytest.fixture(scope="session", params=list(LINES), ids=list(LINES))
def prefect_line(request: pytest.FixtureRequest) -> ServerLine:
    """``(server, truth)`` of one Prefect line; tests using it run once per line."""
    line = LINES[request.param]
    suffix = "" if line.own else f"_{line.suffix}"
    return ServerLine(
        server=request.getfixturevalue(f"prefect_server{suffix}"),
        truth=request.getfixturevalue(f"workload{suffix}"),
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

"""Start and stop a real Prefect server for integration tests.

The server is ``prefect server start`` from the project's virtualenv (or from
another Prefect line's, see :mod:`devtools.prefect_lines`), run as a
child process in its own process group, bound to ``127.0.0.1`` on a free port,
with ``PREFECT_HOME`` (and so its SQLite database, profiles and logs) inside a
folder the caller owns. The child's environment is cleaned of every
``PREFECT_*`` variable the user may have set, so a developer's
``PREFECT_API_URL``, ``PREFECT_API_KEY`` or active profile never leaks in.

Use it as a context manager, which always stops the server::

    with start_prefect_server(tmp_path) as server:
        httpx.get(f"{server.api_url}/health")

or call :meth:`PrefectServer.stop` yourself. Servers still running when the
interpreter exits are stopped by an ``atexit`` hook, and on Linux the server
also receives ``SIGTERM`` if the process that started it dies (``PR_SET_PDEATHSIG``;
it fires when the starting *thread* ends, so start servers from a thread that
outlives them, as pytest's main thread does).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

import httpx

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

__all__ = [
    "PREFECT_AUTH_STRING",
    "PrefectServer",
    "PrefectServerError",
    "basic_auth_header",
    "clean_prefect_env",
    "free_port",
    "prefect_executable",
    "start_prefect_server",
]

#: The basic-auth string the tests' auth-protected server demands.
PREFECT_AUTH_STRING: Final = "trs:s3cret"

#: Seconds to wait for ``/api/health`` after starting the process.
STARTUP_TIMEOUT: Final = 180.0
#: Seconds between ``SIGTERM`` and ``SIGKILL`` when stopping.
STOP_TIMEOUT: Final = 10.0
#: Lines of the server's log quoted in errors.
LOG_TAIL_LINES: Final = 40

#: Server services that an analytics test never needs; turned off to save CPU.
#: The event persister and the task-run recorder (which turn client events into
#: task-run states and events readable through the API) stay on.
QUIET_SERVICES: Final[Mapping[str, str]] = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
}

#: The same for Prefect 2, whose settings are named ``PREFECT_API_SERVICES_*``
#: (and ``PREFECT_UI_ENABLED``); Prefect 3 reads ``PREFECT_SERVER_*``.
QUIET_SERVICES_2: Final[Mapping[str, str]] = {
    "PREFECT_API_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_API_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_API_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_API_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_API_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",
    "PREFECT_API_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_UI_ENABLED": "false",
}

#: How long a task run that finds its tag's concurrency limit full is told to wait
#: before asking again (default 30 s): the workload queues tasks on a tag limit,
#: and a 30 s wait per queued task would dominate its run time. Prefect 2.20 and
#: 3.2 read the first name, 3.9 the second.
SHORT_SLOT_WAITS: Final[Mapping[str, str]] = {
    "PREFECT_TASK_RUN_TAG_CONCURRENCY_SLOT_WAIT_SECONDS": "1",
    "PREFECT_SERVER_TASKS_TAG_CONCURRENCY_SLOT_WAIT_SECONDS": "1",
}

_RUNNING: set[PrefectServer] = set()


class PrefectServerError(RuntimeError):
    """The Prefect server did not start, or did not stop."""


def prefect_executable(python: Path | None = None) -> Path:
    """Return the ``prefect`` console script beside ``python`` (default: this interpreter).

    Raises:
        PrefectServerError: if Prefect is not installed beside the interpreter.
    """
    candidate = Path(python or sys.executable).parent / "prefect"
    if not candidate.exists():
        raise PrefectServerError(
            f"No prefect executable at {candidate}. Hint: run the tests with `uv run pytest` "
            "so the dev dependency group (prefect==3.9.1) is installed."
        )
    return candidate


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_prefect_env(home: Path, **settings: str) -> dict[str, str]:
    """Return a copy of ``os.environ`` with no ``PREFECT_*`` variable but ``settings``.

    ``PREFECT_HOME`` and ``PREFECT_PROFILES_PATH`` point into ``home``, so no
    user profile is read, and analytics and the UI are off.

    Args:
        home: the folder used as ``PREFECT_HOME``.
        **settings: extra ``PREFECT_*`` variables, applied last.

    Examples:
        >>> from pathlib import Path
        >>> env = clean_prefect_env(Path("/tmp/h"), PREFECT_API_URL="http://127.0.0.1:1/api")
        >>> sorted(k for k in env if k.startswith("PREFECT_"))  # doctest: +NORMALIZE_WHITESPACE
        ['PREFECT_API_URL', 'PREFECT_HOME', 'PREFECT_PROFILES_PATH',
         'PREFECT_SERVER_ANALYTICS_ENABLED', 'PREFECT_SERVER_UI_ENABLED']
        >>> env["PREFECT_HOME"]
        '/tmp/h'
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_PROFILES_PATH=str(home / "profiles.toml"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
    )
    env.update(settings)
    return env


def basic_auth_header(auth_string: str) -> dict[str, str]:
    """Return the ``Authorization`` header Prefect's client sends for ``auth_string``.

    Examples:
        >>> basic_auth_header("admin:pass")
        {'Authorization': 'Basic YWRtaW46cGFzcw=='}
    """
    token = base64.b64encode(auth_string.encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


@dataclass(eq=False)
class PrefectServer:
    """A running ``prefect server start`` child process.

    Attributes:
        home: the server's ``PREFECT_HOME``.
        port: the TCP port on 127.0.0.1.
        process: the child process (leader of its own process group).
        log_path: the file receiving the server's stdout and stderr.
        auth_string: the ``user:password`` basic-auth string, when the server demands one.
        csrf: whether CSRF protection is on.
        python: the interpreter of the environment the server runs from; a
            client of the same Prefect version runs with it.
        version: the server's Prefect version (``GET /api/admin/version``).
    """

    home: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    auth_string: str | None = None
    csrf: bool = False
    python: Path = field(default_factory=lambda: Path(sys.executable))
    version: str = ""
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:4200``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The API URL clients use as ``PREFECT_API_URL``."""
        return f"{self.url}/api"

    @property
    def headers(self) -> dict[str, str]:
        """Headers a raw client needs for a GET (basic auth when configured)."""
        return basic_auth_header(self.auth_string) if self.auth_string else {}

    def client_env(self) -> dict[str, str]:
        """Environment for a Prefect client process that talks to this server."""
        settings = {"PREFECT_API_URL": self.api_url}
        if self.auth_string:
            settings["PREFECT_API_AUTH_STRING"] = self.auth_string
        return clean_prefect_env(self.home / "client", **settings)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Return the last ``lines`` lines of the server's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as err:
            return f"<log unreadable: {err}>"
        return "\n".join(text.splitlines()[-lines:])

    def is_running(self) -> bool:
        """Whether the server process is still alive."""
        return self.process.poll() is None

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Block until ``/api/health`` answers ``true``.

        Raises:
            PrefectServerError: if the process exits or ``timeout`` seconds pass;
                the message quotes the server's log tail.
        """
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0, headers=self.headers) as client:
            while time.monotonic() < deadline:
                if not self.is_running():
                    raise PrefectServerError(
                        f"Prefect server on port {self.port} exited with code "
                        f"{self.process.returncode} before becoming healthy. "
                        f"Log tail ({self.log_path}):\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    response = client.get(f"{self.api_url}/health")
                    if response.status_code == 200 and response.json() is True:
                        self.version = client.get(f"{self.api_url}/admin/version").json()
                        return
                time.sleep(0.2)
        raise PrefectServerError(
            f"Prefect server at {self.api_url} was not healthy after {timeout:.0f} s. "
            f"Log tail ({self.log_path}):\n{self.log_tail()}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Terminate the server's process group; kill it after ``timeout`` seconds.

        Safe to call twice.
        """
        _RUNNING.discard(self)
        try:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait(timeout=timeout)
            # Reap anything the server left in its group (it normally leaves nothing).
            _signal_group(self.process, signal.SIGKILL)
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def __enter__(self) -> PrefectServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``process``, if it still exists."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM us when the parent dies."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def start_prefect_server(
    home: Path,
    *,
    auth_string: str | None = None,
    csrf: bool = False,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = STARTUP_TIMEOUT,
    python: Path | None = None,
) -> PrefectServer:
    """Start ``prefect server start`` on 127.0.0.1 and wait until it is healthy.

    Args:
        home: an existing or new folder used as ``PREFECT_HOME`` (database, log).
        auth_string: ``user:password``; the server then answers 401 without basic auth.
        csrf: turn on CSRF protection (every POST needs a token).
        extra_env: more server settings, applied last (e.g. to turn a service back on).
        timeout: seconds to wait for ``/api/health``.
        python: the interpreter of the environment whose Prefect to run
            (:func:`devtools.prefect_lines.prefect_python`); default: this one.

    Returns:
        The running server; stop it with :meth:`PrefectServer.stop` or a ``with`` block.

    Raises:
        PrefectServerError: if the server does not become healthy; the server is
            stopped first and the message quotes its log tail.
    """
    home.mkdir(parents=True, exist_ok=True)
    python = Path(python or sys.executable)
    executable = prefect_executable(python)
    settings = {**QUIET_SERVICES, **SHORT_SLOT_WAITS}
    if _is_prefect_2(python):
        settings.update(QUIET_SERVICES_2)
    if auth_string is not None:
        settings["PREFECT_SERVER_API_AUTH_STRING"] = auth_string
    if csrf:
        settings["PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED"] = "true"
    settings.update(extra_env or {})
    env = clean_prefect_env(home, **settings)
    port = free_port()
    log_path = home / f"server-{port}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [str(executable), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        cwd=home,  # no prefect.toml / .env / pyproject.toml of the caller is read
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    server = PrefectServer(
        home=home,
        port=port,
        process=process,
        log_path=log_path,
        auth_string=auth_string,
        csrf=csrf,
        python=python,
        _log_file=log_file,
    )
    _RUNNING.add(server)
    try:
        server.wait_healthy(timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _is_prefect_2(python: Path) -> bool:
    """Whether the environment of ``python`` holds Prefect 2 (read from its metadata, fast)."""
    site = python.parent.parent / "lib"
    return any(site.glob("python3*/site-packages/prefect-2.*.dist-info"))


@atexit.register
def _stop_all() -> None:
    """Stop every server this process started and did not stop."""
    for server in list(_RUNNING):
        server.stop(timeout=3.0)

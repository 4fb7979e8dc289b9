"""Where the client's settings come from, in Prefect's own order.

1. explicit arguments;
2. environment variables ``PREFECT_API_URL``, ``PREFECT_API_KEY``,
   ``PREFECT_API_AUTH_STRING``;
3. the active profile in Prefect's ``profiles.toml`` (``PREFECT_PROFILES_PATH``,
   else ``$PREFECT_HOME/profiles.toml``, else ``~/.prefect/profiles.toml``; the
   active profile is ``PREFECT_PROFILE`` or the file's ``active`` key).

Settings are read when a client is made, never at import time.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from trs_analytics._format import argument_text
from trs_analytics._redact import redact, remember_secret
from trs_analytics.exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ClientSettings",
    "configured_api_url",
    "redact_url",
    "resolve_settings",
    "task_run_url",
    "ui_url",
]

#: A Prefect Cloud workspace's API URL; the one definition of "Cloud".
_CLOUD: Final = re.compile(
    r"^https://api\.prefect\.(?P<domain>cloud|dev)/api/accounts/(?P<account>[^/]+)"
    r"/workspaces/(?P<workspace>[^/]+)/?$"
)

#: The API URL of a local Prefect server, as hints show it.
_EXAMPLE_URL = "http://127.0.0.1:4200/api"


@dataclass(frozen=True)
class ClientSettings:
    """Resolved connection settings. Secrets never appear in the ``repr``.

    Examples:
        >>> s = ClientSettings(api_url="http://127.0.0.1:4200/api", api_key="pnu_secret")
        >>> "pnu_secret" in repr(s)
        False
        >>> s.is_cloud
        False
    """

    api_url: str
    api_key: str | None = field(default=None, repr=False)
    auth_string: str | None = field(default=None, repr=False)
    source: str = "argument"
    #: query parameters of the given URL (a proxy's token), sent with every request
    params: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def is_cloud(self) -> bool:
        """True for a Prefect Cloud workspace URL (``/api/accounts/…/workspaces/…``)."""
        return _CLOUD.match(self.api_url) is not None


def ui_url(api_url: str) -> str:
    """Derive the Prefect UI's address from the API's.

    A self-hosted server serves its UI beside its API (``/api`` removed);
    Prefect Cloud's UI is ``app.prefect.cloud/account/A/workspace/W``.

    Examples:
        >>> ui_url("http://127.0.0.1:4200/api")
        'http://127.0.0.1:4200'
        >>> ui_url("https://api.prefect.cloud/api/accounts/A/workspaces/W")
        'https://app.prefect.cloud/account/A/workspace/W'
    """
    cloud = _CLOUD.match(api_url)
    if cloud:
        return (
            f"https://app.prefect.{cloud['domain']}/account/{cloud['account']}"
            f"/workspace/{cloud['workspace']}"
        )
    base = api_url.rstrip("/")
    return base.removesuffix("/api")


def task_run_url(ui: str, task_run_id: str) -> str:
    """The Prefect UI page of one task run.

    Examples:
        >>> task_run_url("http://127.0.0.1:4200", "0197")
        'http://127.0.0.1:4200/runs/task-run/0197'
    """
    return f"{ui.rstrip('/')}/runs/task-run/{task_run_id}"


def redact_url(url: str) -> str:
    """A URL without credentials (``user:password@``, query tokens), for messages and logs.

    Examples:
        >>> redact_url("https://admin:pass@prefect.example/api")
        'https://***@prefect.example/api'
        >>> redact_url("http://127.0.0.1:4200/api?token=s3cr3t")
        'http://127.0.0.1:4200/api?token=***'
        >>> redact_url("http://127.0.0.1:4200/api")
        'http://127.0.0.1:4200/api'
    """
    return redact(url)


def _profiles_path(env: Mapping[str, str]) -> Path:
    if path := env.get("PREFECT_PROFILES_PATH"):
        return Path(path).expanduser()
    home = Path(env.get("PREFECT_HOME", "~/.prefect")).expanduser()
    return home / "profiles.toml"


def _active_profile(env: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    path = _profiles_path(env)
    if not path.is_file():
        return "", {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        msg = (
            f"cannot read Prefect profiles file {path}: {err}. "
            "Hint: fix the file, or set PREFECT_PROFILES_PATH to another one (it is read "
            "for credentials too, even with an API URL given)."
        )
        raise ConfigurationError(msg) from err
    name = env.get("PREFECT_PROFILE") or str(data.get("active", "default"))
    profile = data.get("profiles", {}).get(name, {})
    return f"profile '{name}' in {path}", {k: str(v) for k, v in profile.items()}


def _check_url(url: str) -> str:
    url = url.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as err:
        msg = (
            f"api_url {redact_url(url)!r} is not a valid URL ({err}). Hint: write an IPv6 "
            "address in brackets with its port after them, such as http://[::1]:4200/api."
        )
        raise ConfigurationError(msg) from err
    if parts.scheme not in ("http", "https") or not parts.netloc:
        msg = (
            f"api_url {redact_url(url)!r} is not an http(s) URL. "
            "Hint: use the API address, such as http://127.0.0.1:4200/api."
        )
        raise ConfigurationError(msg)
    return url


def _split_credentials(url: str) -> tuple[str, str | None, tuple[tuple[str, str], ...]]:
    """Move ``user:password@`` and the query out of a URL: the first is sent as basic
    auth, the second with every request; neither is logged, and every URL built from
    the base stays valid.

    Examples:
        >>> _split_credentials("http://me:pw@h/api?token=t1")
        ('http://h/api', 'me:pw', (('token', 't1'),))
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc and not parts.query and not parts.fragment:
        return url, None, ()
    params = tuple(parse_qsl(parts.query, keep_blank_values=True))
    parts = parts._replace(query="", fragment="", path=parts.path.rstrip("/"))
    if "@" not in parts.netloc:
        return urlunsplit(parts), None, params
    userinfo, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=host)), unquote(userinfo), params


def resolve_settings(
    api_url: str | None = None,
    *,
    api_key: str | None = None,
    auth_string: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ClientSettings:
    """Resolve settings from arguments, then environment, then the active profile.

    A ``user:password@`` in the URL becomes the auth string (unless one is set),
    so the stored URL never holds a password.

    Args:
        api_url: the API base URL (ending in ``/api``, or a Cloud workspace URL).
        api_key: a Prefect Cloud API key, sent as ``Authorization: Bearer``.
        auth_string: ``user:password`` for a self-hosted server with basic auth.
        env: the environment to read (defaults to ``os.environ``).

    Raises:
        ConfigurationError: when no URL can be found, or the URL is not http(s).

    Examples:
        >>> s = resolve_settings(env={"PREFECT_API_URL": "http://127.0.0.1:4200/api/"})
        >>> s.api_url, s.source
        ('http://127.0.0.1:4200/api', 'environment')
    """
    env = os.environ if env is None else env
    for name, value in (("api_url", api_url), ("api_key", api_key), ("auth_string", auth_string)):
        if value is not None and not isinstance(value, str):
            msg = f"{name} must be a string, got {type(value).__name__}."
            raise ConfigurationError(msg)
    source = "argument"
    if api_url is None and env.get("PREFECT_API_URL"):
        api_url, source = env["PREFECT_API_URL"], "environment"
    api_key = api_key or env.get("PREFECT_API_KEY") or None
    auth_string = auth_string or env.get("PREFECT_API_AUTH_STRING") or None
    if api_url is None or api_key is None or auth_string is None:
        where, profile = _active_profile(env)
        if api_url is None and profile.get("PREFECT_API_URL"):
            api_url, source = profile["PREFECT_API_URL"], where
        api_key = api_key or profile.get("PREFECT_API_KEY") or None
        auth_string = auth_string or profile.get("PREFECT_API_AUTH_STRING") or None
    if not api_url:
        msg = (
            "no Prefect API URL was given, and none is set in PREFECT_API_URL or the "
            f"active Prefect profile. Hint: pass {argument_text('api_url', _EXAMPLE_URL)} "
            "(or your Cloud workspace URL), or run 'prefect config set PREFECT_API_URL=...'."
        )
        raise ConfigurationError(msg)
    api_url, userinfo, params = _split_credentials(_check_url(api_url))
    for secret in (api_key, auth_string, userinfo, *(value for _, value in params)):
        remember_secret(secret)
    return ClientSettings(
        api_url=api_url,
        api_key=api_key,
        auth_string=auth_string or userinfo,
        source=source,
        params=params,
    )


def configured_api_url(env: Mapping[str, str] | None = None) -> str | None:
    """The API URL that Prefect itself would use here, or None when none is configured.

    Read like :func:`resolve_settings` (``PREFECT_API_URL``, then the active
    profile), for code that works with or without a server: the notebooks
    fetch from it when there is one, and read the bundled sample when not.

    Raises:
        ConfigurationError: a URL is configured but is not http(s).

    Examples:
        >>> configured_api_url({"PREFECT_API_URL": "http://127.0.0.1:4200/api/"})
        'http://127.0.0.1:4200/api'
        >>> configured_api_url({"PREFECT_PROFILES_PATH": "/nonexistent/profiles.toml"}) is None
        True
    """
    env = os.environ if env is None else env
    url = env.get("PREFECT_API_URL") or _active_profile(env)[1].get("PREFECT_API_URL")
    return resolve_settings(env=env).api_url if url else None

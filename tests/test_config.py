"""Client settings: arguments, then environment, then the active Prefect profile.

Every call passes ``env=`` (with a profiles path inside ``tmp_path``), so the
real environment and ``~/.prefect`` are never read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from trs_analytics.client import ClientSettings, PrefectClient, redact_url, resolve_settings
from trs_analytics.exceptions import ConfigurationError

if TYPE_CHECKING:
    from pathlib import Path

ARG_URL = "http://arg:4200/api"
ENV_URL = "http://env:4200/api"
PROFILE_URL = "http://profile:4200/api"

PROFILES = """\
active = "local"

[profiles.local]
PREFECT_API_URL = "http://profile:4200/api"
PREFECT_API_KEY = "profile-key"
PREFECT_API_AUTH_STRING = "profile:auth"

[profiles.cloud]
PREFECT_API_URL = "https://api.prefect.cloud/api/accounts/a/workspaces/w"
PREFECT_API_KEY = "pnu_cloud"

[profiles.default]
PREFECT_API_URL = "http://default:4200/api"
"""


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    path = tmp_path / "profiles.toml"
    path.write_text(PROFILES)
    return path


def isolated(tmp_path: Path, **env: str) -> dict[str, str]:
    """An environment whose profiles file lives in tmp_path (and may not exist)."""
    return {"PREFECT_PROFILES_PATH": str(tmp_path / "profiles.toml"), **env}


# -- precedence ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "env_value", "in_profile", "expected", "source"),
    [
        (ARG_URL, ENV_URL, True, ARG_URL, "argument"),
        (None, ENV_URL, True, ENV_URL, "environment"),
        (None, None, True, PROFILE_URL, "profile 'local'"),
        (None, "", True, PROFILE_URL, "profile 'local'"),  # an empty variable is unset
        (ARG_URL, None, False, ARG_URL, "argument"),
    ],
)
def test_url_argument_beats_environment_beats_profile(
    tmp_path: Path,
    profiles: Path,
    arg: str | None,
    env_value: str | None,
    in_profile: bool,
    expected: str,
    source: str,
) -> None:
    if not in_profile:
        profiles.unlink()
    env = isolated(tmp_path) | ({} if env_value is None else {"PREFECT_API_URL": env_value})
    settings = resolve_settings(arg, env=env)
    assert settings.api_url == expected
    assert settings.source.startswith(source)


@pytest.mark.parametrize(
    ("arg", "env_name", "env_value", "field", "expected"),
    [
        ("arg-key", "PREFECT_API_KEY", "env-key", "api_key", "arg-key"),
        (None, "PREFECT_API_KEY", "env-key", "api_key", "env-key"),
        (None, "PREFECT_API_KEY", "", "api_key", "profile-key"),
        ("a:b", "PREFECT_API_AUTH_STRING", "env:auth", "auth_string", "a:b"),
        (None, "PREFECT_API_AUTH_STRING", "env:auth", "auth_string", "env:auth"),
        (None, "PREFECT_API_AUTH_STRING", "", "auth_string", "profile:auth"),
    ],
)
def test_credentials_argument_beats_environment_beats_profile(
    tmp_path: Path,
    profiles: Path,
    arg: str | None,
    env_name: str,
    env_value: str,
    field: str,
    expected: str,
) -> None:
    settings = resolve_settings(
        ARG_URL, env=isolated(tmp_path, **{env_name: env_value}), **{field: arg}
    )
    assert getattr(settings, field) == expected


def test_the_profile_fills_in_credentials_for_an_explicit_url(
    tmp_path: Path, profiles: Path
) -> None:
    settings = resolve_settings(ARG_URL, env=isolated(tmp_path))
    assert (settings.api_url, settings.source) == (ARG_URL, "argument")
    assert (settings.api_key, settings.auth_string) == ("profile-key", "profile:auth")


def test_everything_from_the_environment_never_reads_the_profile(tmp_path: Path) -> None:
    (tmp_path / "profiles.toml").write_text("this is [not toml")
    env = isolated(
        tmp_path,
        PREFECT_API_URL=ENV_URL,
        PREFECT_API_KEY="k",
        PREFECT_API_AUTH_STRING="u:p",
    )
    settings = resolve_settings(env=env)
    assert (settings.api_url, settings.api_key, settings.auth_string) == (ENV_URL, "k", "u:p")


# -- which profile, which file ---------------------------------------------------


@pytest.mark.parametrize(
    ("profile_env", "active_line", "expected_url", "expected_key"),
    [
        (None, 'active = "local"', PROFILE_URL, "profile-key"),
        (
            None,
            'active = "cloud"',
            "https://api.prefect.cloud/api/accounts/a/workspaces/w",
            "pnu_cloud",
        ),
        (
            "cloud",
            'active = "local"',
            "https://api.prefect.cloud/api/accounts/a/workspaces/w",
            "pnu_cloud",
        ),
        ("default", 'active = "cloud"', "http://default:4200/api", None),
        (None, "", "http://default:4200/api", None),  # no active key: "default"
    ],
)
def test_profile_is_chosen_by_prefect_profile_then_the_files_active_key(
    tmp_path: Path,
    profile_env: str | None,
    active_line: str,
    expected_url: str,
    expected_key: str | None,
) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text(PROFILES.replace('active = "local"', active_line))
    env = isolated(tmp_path) | ({"PREFECT_PROFILE": profile_env} if profile_env else {})
    settings = resolve_settings(env=env)
    assert (settings.api_url, settings.api_key) == (expected_url, expected_key)
    name = profile_env or (active_line.split('"')[1] if active_line else "default")
    assert settings.source == f"profile '{name}' in {path}"


def test_prefect_home_holds_profiles_toml(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "profiles.toml").write_text(PROFILES)
    settings = resolve_settings(env={"PREFECT_HOME": str(tmp_path / "home")})
    assert settings.api_url == PROFILE_URL
    assert str(tmp_path / "home" / "profiles.toml") in settings.source


def test_prefect_profiles_path_beats_prefect_home(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "profiles.toml").write_text(PROFILES)
    other = tmp_path / "elsewhere.toml"
    other.write_text('active = "x"\n[profiles.x]\nPREFECT_API_URL = "http://other:1/api"\n')
    env = {"PREFECT_HOME": str(tmp_path / "home"), "PREFECT_PROFILES_PATH": str(other)}
    assert resolve_settings(env=env).api_url == "http://other:1/api"


# -- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "profiles_text",
    [
        None,  # no file
        'active = "local"\n',  # a file without profiles
        'active = "missing"\n[profiles.local]\nPREFECT_API_URL = "http://x/api"\n',
        '[profiles.default]\nPREFECT_API_KEY = "k"\n',  # a profile without a URL
    ],
    ids=["no-file", "no-profiles", "unknown-active", "no-url-in-profile"],
)
def test_no_url_anywhere_raises_configuration_error_with_a_hint(
    tmp_path: Path, profiles_text: str | None
) -> None:
    if profiles_text is not None:
        (tmp_path / "profiles.toml").write_text(profiles_text)
    with pytest.raises(ConfigurationError) as info:
        resolve_settings(env=isolated(tmp_path))
    message = str(info.value)
    assert message.startswith("no Prefect API URL was given")
    assert "Hint: pass api_url='http://127.0.0.1:4200/api'" in message


@pytest.mark.parametrize(
    "url",
    [
        "ftp://prefect.example/api",
        "127.0.0.1:4200/api",
        "localhost:4200/api",
        "http://",
        "file:///etc/passwd",
        "prefect.example/api",
    ],
)
def test_a_url_that_is_not_http_is_rejected(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"is not an http\(s\) URL\. Hint: use the API"):
        resolve_settings(url, env=isolated(tmp_path))


def test_a_rejected_url_does_not_echo_its_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_settings("ftp://admin:hunter2@prefect.example/api", env=isolated(tmp_path))
    assert "hunter2" not in str(info.value)
    assert "ftp://***@prefect.example/api" in str(info.value)


@pytest.mark.parametrize(
    "content",
    [
        b'active = "local"\n[profiles.local\nPREFECT_API_URL = "http://x/api"\n',
        b"PREFECT_API_URL = http://unquoted/api\n",
        b'active = "caf\xe9"\n',  # not UTF-8
    ],
    ids=["unclosed-table", "unquoted-value", "latin-1"],
)
def test_a_broken_profiles_file_raises_configuration_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "profiles.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError) as info:
        resolve_settings(env=isolated(tmp_path))
    assert f"cannot read Prefect profiles file {path}" in str(info.value)
    assert "Hint: fix the file, or set PREFECT_PROFILES_PATH to another one" in str(info.value)
    with pytest.raises(ConfigurationError, match="cannot read Prefect profiles file"):
        resolve_settings("http://127.0.0.1:4200/api", env=isolated(tmp_path))  # as the hint says


# -- URL normalisation, credentials in URLs --------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("http://127.0.0.1:4200/api/", "http://127.0.0.1:4200/api"),
        ("  https://prefect.example/api  ", "https://prefect.example/api"),
        ("HTTPS://prefect.example/api", "HTTPS://prefect.example/api"),
        (
            "https://api.prefect.cloud/api/accounts/a/workspaces/w/",
            "https://api.prefect.cloud/api/accounts/a/workspaces/w",
        ),
    ],
)
def test_url_is_stripped_of_spaces_and_trailing_slashes(
    tmp_path: Path, given: str, stored: str
) -> None:
    assert resolve_settings(given, env=isolated(tmp_path)).api_url == stored


@pytest.mark.parametrize(
    ("url", "auth_string", "expected_auth"),
    [
        ("http://admin:pa55@prefect.example/api", None, "admin:pa55"),
        ("http://admin:p%40ss%3Aword@prefect.example/api", None, "admin:p@ss:word"),
        ("http://admin:pa55@prefect.example/api", "other:auth", "other:auth"),
    ],
)
def test_credentials_in_the_url_move_to_the_auth_string(
    tmp_path: Path, url: str, auth_string: str | None, expected_auth: str
) -> None:
    settings = resolve_settings(url, auth_string=auth_string, env=isolated(tmp_path))
    assert settings.api_url == "http://prefect.example/api"
    assert settings.auth_string == expected_auth
    assert "pa55" not in repr(settings)
    assert "p%40ss" not in repr(settings)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://admin:pass@prefect.example/api", "https://***@prefect.example/api"),
        ("https://token@prefect.example/api", "https://***@prefect.example/api"),
        ("http://u:p@127.0.0.1:4200/api?next=x", "http://***@127.0.0.1:4200/api?next=x"),
        ("http://u:p@w@host/api", "http://***@host/api"),  # an @ inside the password
        ("http://127.0.0.1:4200/api", "http://127.0.0.1:4200/api"),
        (  # page tokens are long and mean nothing to a reader: never shown
            "https://host/api/events/filter/next?page-token=a@b",
            "https://host/api/events/filter/next?page-token=***",
        ),
        ("https://host/api?token=t0k&x=1", "https://host/api?token=***&x=1"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_settings_repr_shows_url_and_source_but_no_secret() -> None:
    settings = ClientSettings(
        api_url="http://127.0.0.1:4200/api", api_key="pnu_k", auth_string="u:pw", source="argument"
    )
    assert (
        repr(settings) == "ClientSettings(api_url='http://127.0.0.1:4200/api', source='argument')"
    )


@pytest.mark.parametrize(
    ("url", "is_cloud"),
    [
        ("https://api.prefect.cloud/api/accounts/a/workspaces/w", True),
        ("http://127.0.0.1:4200/api", False),
        ("https://prefect.example/api/accounts/a", False),
    ],
)
def test_is_cloud(url: str, is_cloud: bool) -> None:
    assert ClientSettings(api_url=url).is_cloud is is_cloud


# -- the client reads settings when it is made -------------------------------------


def test_client_reads_the_environment_when_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, profiles: Path
) -> None:
    # PrefectClient takes no env=: this is the one place the real environment is set.
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(profiles))
    monkeypatch.setenv("PREFECT_PROFILE", "cloud")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_API_KEY", raising=False)
    monkeypatch.delenv("PREFECT_API_AUTH_STRING", raising=False)
    with PrefectClient() as client:
        assert client.settings.is_cloud
        assert client.settings.api_key == "pnu_cloud"
        assert repr(client) == (
            "<PrefectClient https://api.prefect.cloud/api/accounts/a/workspaces/w auth=api_key>"
        )
    monkeypatch.setenv("PREFECT_API_URL", ENV_URL)
    with PrefectClient() as client:
        assert client.api_url == ENV_URL

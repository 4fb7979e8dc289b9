"""Redaction: the one function that takes credentials out of every text shown.

A base module: it imports nothing of trs_analytics. Every message that may
carry a server's words or a URL goes through :func:`redact` before anyone
sees it: error messages (:class:`~trs_analytics.exceptions.TrsAnalyticsError`
redacts its own), the CLI's ``Error:`` line and its log lines.

It removes:

1. the credentials this process was given (API key, auth string, its password
   and its ``Basic`` form, tokens in the API URL's query), registered with
   :func:`remember_secret` when the client's settings are resolved, wherever
   they appear (a server that echoes request headers in an error body);
2. any ``user:password@`` in a URL;
3. ``Authorization``-style values: ``Bearer …`` and ``Basic …``;
4. values of query parameters that name a credential (``token=``,
   ``api_key=``, ``password=``...);
5. and it shortens any other query value longer than 40 characters (the
   server's 1 KB page tokens), so an error stays one readable line.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from typing import Final

__all__ = ["RedactingFilter", "forget_secrets", "redact", "redact_logger", "remember_secret"]

_MASK: Final = "***"
_SECRETS: set[str] = set()
_LOCK: Final = threading.Lock()
#: Shorter values are not registered: redacting "a" would garble every message.
_MIN_SECRET: Final = 4
#: Secrets shorter than this are redacted only where they stand alone, not inside a word.
_WHOLE_WORD_BELOW: Final = 12

_USERINFO: Final = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#]*@")
_AUTH_VALUE: Final = re.compile(r"(?i)\b(Bearer|Basic)(\s+|%20|\+)[A-Za-z0-9._~+/=%-]+")
_CREDENTIAL_PARAM: Final = re.compile(
    r"(?i)(?<![A-Za-z0-9_])((?:prefect-csrf-|csrf-|page-|access_|refresh_|id_|x-api-|api[-_]?|"
    r"client_)?(?:token|key|apikey|password|passwd|secret|signature|sig|authorization|auth)"
    r"[\"']?\s*[=:]\s*[\"']?)(?!\*\*\*|Bearer\b|Basic\b)([^&\s\"',}]+)"
)
_LONG_QUERY_VALUE: Final = re.compile(r"([?&][A-Za-z0-9_.-]+=)([^&\s\"'#]{40})[^&\s\"'#]+")


def remember_secret(value: str | None) -> None:
    """Register a credential so that :func:`redact` removes it from every later text.

    An ``user:password`` auth string registers the password and the ``Basic``
    header value too.

    Examples:
        >>> remember_secret("pnu_0123456789")
        >>> redact("server said: bad key pnu_0123456789")
        'server said: bad key ***'
        >>> remember_secret("me:auth")  # a short password: only where it stands alone
        >>> redact("401 Unauthorized for me:auth, password auth")
        '401 Unauthorized for ***, password ***'
        >>> forget_secrets()
    """
    if not value or len(value) < _MIN_SECRET:
        return
    forms = {value, base64.b64encode(value.encode()).decode()}
    user, sep, password = value.partition(":")
    if sep and len(password) >= _MIN_SECRET:
        forms.add(password)
    del user
    with _LOCK:
        _SECRETS.update(forms)


def forget_secrets() -> None:
    """Forget every registered credential (for tests)."""
    with _LOCK:
        _SECRETS.clear()


def redact(text: str) -> str:
    """``text`` without credentials, and with long query values shortened.

    Examples:
        >>> redact("GET https://me:pw@prefect.example/api?token=abc&x=1 failed")
        'GET https://***@prefect.example/api?token=***&x=1 failed'
        >>> redact('echo: {"authorization": "Bearer pnu_xyz", "task_key": "ex-1"}')
        'echo: {"authorization": "Bearer ***", "task_key": "ex-1"}'
        >>> redact("next_page /events/filter/next?page-token=" + "a" * 60)
        'next_page /events/filter/next?page-token=***'
        >>> redact("/api/x?page=" + "b" * 60)
        '/api/x?page=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb…'
        >>> redact("plain words stay")
        'plain words stay'
    """
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if len(secret) >= _WHOLE_WORD_BELOW:
            text = text.replace(secret, _MASK)
        else:  # a short password ("auth") must not garble "Unauthorized"
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", _MASK, text)
    text = _USERINFO.sub(rf"\1{_MASK}@", text)
    text = _AUTH_VALUE.sub(rf"\1 {_MASK}", text)
    text = _CREDENTIAL_PARAM.sub(rf"\1{_MASK}", text)
    return _LONG_QUERY_VALUE.sub(r"\1\2…", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message (its arguments merged in)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redact_logger(name: str) -> None:
    """Redact every record of logger ``name`` (such as ``"httpx"``, which logs each
    request's URL), once however often it is called."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())

"""Exceptions raised by trs_analytics.

Every error the package raises derives from one base, so callers can catch
everything with a single ``except TrsAnalyticsError``::

    TrsAnalyticsError
    ├── ConfigurationError        no API URL, unreadable profile, bad argument,
    │   │                         a host name that does not resolve, a TLS mismatch
    │   └── MissingDependencyError  an optional engine's package is not installed
    ├── PrefectAPIError           the server answered, but not with what we need
    │   ├── AuthenticationError   401 / 403: credentials or CSRF token rejected
    │   ├── NotFoundError         404: usually a URL that misses ``/api``
    │   ├── RequestRejectedError  422: the server refused the request body
    │   ├── ServerError           5xx / 429 that did not clear after retries
    │   └── ResponseFormatError   malformed JSON, or a record missing a field
    ├── TransportError            connection refused, timeout, resolver down: no answer
    ├── SchemaError               a frame misses columns or has the wrong types
    └── StorageError              a dataset that cannot be read or written safely
        └── DatasetLockedError    another export holds the dataset's lock

Messages are plain sentences: what was found, what was expected, and a
``Hint:`` with what to do about it. They never hold a credential: every
error redacts its message (:func:`trs_analytics._redact.redact`), whatever
a server echoed into it.
"""

from __future__ import annotations

from trs_analytics._redact import redact

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "DatasetLockedError",
    "MissingDependencyError",
    "NotFoundError",
    "PrefectAPIError",
    "RequestRejectedError",
    "ResponseFormatError",
    "SchemaError",
    "ServerError",
    "StorageError",
    "TransportError",
    "TrsAnalyticsError",
]


class TrsAnalyticsError(Exception):
    """Base class of every error raised by trs_analytics; its text holds no credential."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))

    def __str__(self) -> str:
        return redact(super().__str__())


class ConfigurationError(TrsAnalyticsError):
    """The package was not given what it needs to run (URL, profile, argument)."""


class PrefectAPIError(TrsAnalyticsError):
    """The Prefect server answered, but the answer cannot be used.

    Attributes:
        status_code: the HTTP status, or ``None`` when the status was fine
            but the body was not.
        url: the URL that was requested (never contains credentials).
    """

    def __init__(self, message: str, *, status_code: int | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.url = redact(url)


class AuthenticationError(PrefectAPIError):
    """401 or 403: the server rejected the credentials or the CSRF token."""


class NotFoundError(PrefectAPIError):
    """404: the endpoint does not exist at this URL."""


class RequestRejectedError(PrefectAPIError):
    """422: the server could not validate the request body."""


class ServerError(PrefectAPIError):
    """A retryable failure (429, 5xx) that did not clear within the retry budget."""


class ResponseFormatError(PrefectAPIError):
    """The body is not valid JSON, or a record lacks a field the contract requires."""


class TransportError(TrsAnalyticsError):
    """No answer from the server: connection refused, reset, or timed out."""


class SchemaError(TrsAnalyticsError):
    """A frame passed to a function lacks the columns or types it needs."""


class StorageError(TrsAnalyticsError):
    """A Parquet dataset cannot be read or written safely."""


class MissingDependencyError(ConfigurationError):
    """An optional engine was asked for, but its package is not installed."""


class DatasetLockedError(StorageError):
    """Another export holds the dataset's lock."""

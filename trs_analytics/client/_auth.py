"""``PrefectAuth``: the Authorization header and Prefect's CSRF tokens, as an ``httpx.Auth``.

A server started with ``PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED`` refuses a
POST without ``Prefect-Csrf-Token`` / ``Prefect-Csrf-Client`` headers with a
403 that names CSRF. The flow (httpx's ``DigestAuth`` is the model)::

    send the request (with the token, once one is known)
    403 "csrf"?  -> GET /csrf-token?client=ID -> send the request again, once

The token is fetched lazily, so a server without CSRF protection never sees a
token request. When the token request fails (a 503, say), its response is what
the client receives, so the client's retry loop, wrapped around the whole flow,
retries the token request too.
"""

from __future__ import annotations

import base64
import threading
import uuid
from typing import TYPE_CHECKING

import httpx

from trs_analytics.exceptions import ResponseFormatError

if TYPE_CHECKING:
    from collections.abc import Generator

__all__ = ["PrefectAuth"]


def _is_csrf_refusal(response: httpx.Response) -> bool:
    return response.status_code == 403 and "csrf" in response.text.lower()


def _token_of(response: httpx.Response) -> str:
    try:
        return str(response.json()["token"])
    except (ValueError, KeyError, TypeError) as err:
        msg = (
            f"GET {response.request.url} answered without a CSRF token ({response.text[:80]!r}). "
            "Hint: is a proxy between you and the Prefect server rewriting responses?"
        )
        raise ResponseFormatError(msg, url=str(response.request.url)) from err


class PrefectAuth(httpx.Auth):
    """Bearer (Prefect Cloud) or basic (self-hosted) auth, plus CSRF tokens.

    Args:
        api_url: the API base URL; the token is read from ``{api_url}/csrf-token``.
        api_key: a Prefect Cloud API key, sent as ``Authorization: Bearer``.
        auth_string: ``user:password``, sent as ``Authorization: Basic``
            (an API key wins when both are given).
        params: query parameters of the API URL, sent with the token request too.

    Examples:
        >>> def server(request):
        ...     if request.url.path == "/api/csrf-token":
        ...         return httpx.Response(200, json={"token": "t0k"})
        ...     if request.headers.get("Prefect-Csrf-Token") != "t0k":
        ...         return httpx.Response(403, json={"detail": "Missing CSRF token."})
        ...     return httpx.Response(200, json=request.headers["Authorization"])
        >>> auth = PrefectAuth("http://test/api", auth_string="me:pw")
        >>> with httpx.Client(transport=httpx.MockTransport(server), auth=auth) as http:
        ...     http.post("http://test/api/flows/filter").json()
        'Basic bWU6cHc='
    """

    requires_response_body = True

    def __init__(
        self,
        api_url: str,
        *,
        api_key: str | None = None,
        auth_string: str | None = None,
        params: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._token_url = api_url.rstrip("/") + "/csrf-token"
        self._params = params  # the API URL's own query (a proxy's token): sent here too
        self._client_id = str(uuid.uuid4())
        self._token: str | None = None
        self._lock = threading.Lock()
        self._authorization: str | None = None
        if api_key:
            self._authorization = f"Bearer {api_key}"
        elif auth_string:
            self._authorization = "Basic " + base64.b64encode(auth_string.encode()).decode()

    @property
    def kind(self) -> str:
        """``"api_key"``, ``"basic"`` or ``"none"``: for reprs, never the secret."""
        if self._authorization is None:
            return "none"
        return "api_key" if self._authorization.startswith("Bearer") else "basic"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the headers; on a CSRF 403, fetch a fresh token and send once more."""
        self._authorize(request)
        sent = self._with_token(request)
        response = yield request
        if request.method == "GET" or not _is_csrf_refusal(response):
            return
        with self._lock:  # one token request at a time; others reuse its token
            if self._token == sent:
                token_response = yield self._token_request()
                if token_response.status_code >= 400:
                    return  # the client sees this response, and retries it
                self._token = _token_of(token_response)
        again = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.content
        )
        self._with_token(again)
        yield again

    def _authorize(self, request: httpx.Request) -> None:
        if self._authorization is not None:
            request.headers["Authorization"] = self._authorization

    def _with_token(self, request: httpx.Request) -> str | None:
        token = self._token
        if request.method != "GET" and token is not None:
            request.headers["Prefect-Csrf-Token"] = token
            request.headers["Prefect-Csrf-Client"] = self._client_id
        return token

    def _token_request(self) -> httpx.Request:
        params = httpx.QueryParams([*self._params, ("client", self._client_id)])
        request = httpx.Request("GET", self._token_url, params=params)
        self._authorize(request)
        return request

"""The options commands share: durations, web addresses, the run filters, the client's.

Each ``with_*_options`` decorator adds a group of options to a command;
:func:`make_client` builds the :class:`~trs_analytics.client.PrefectClient`
the client options describe.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, cast

import click

from trs_analytics._time import parse_age
from trs_analytics.client import PrefectClient
from trs_analytics.exceptions import ConfigurationError
from trs_analytics.fetch import FilterKwargs
from trs_analytics.schema import STATE_TYPES

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import timedelta

__all__ = ["duration", "make_client", "web_url", "with_client_options", "with_filter_options"]


def duration(_ctx: click.Context, _param: click.Parameter, value: str) -> timedelta:
    """A click callback: an age such as 90s, 10m, 2h or 1d, as a timedelta."""
    try:
        age = parse_age(value)
    except ConfigurationError as err:
        raise click.BadParameter(str(err)) from err
    if age is None:
        msg = f"{value!r} is not a duration. Use a number and a unit, such as 90s, 10m, 2h or 1d."
        raise click.BadParameter(msg)
    return age


def web_url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """An http(s) address with a host, or None; anything else (``javascript:``) is refused."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value.strip())
    except ValueError as err:
        msg = f"{value!r} is not a valid URL ({err})."
        raise click.BadParameter(msg) from err
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        msg = f"{value!r} is not an http(s) address. Use one such as http://127.0.0.1:4200."
        raise click.BadParameter(msg)
    return value.strip()


_STATE_TYPE = click.Choice(STATE_TYPES, case_sensitive=False)


def with_filter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the six filter options; the command receives them as one ``filters`` dict."""

    @functools.wraps(fn)
    def command(**kwargs: Any) -> Any:
        filters = {name: kwargs.pop(name) for name in FilterKwargs.__annotations__}
        return fn(filters=cast("FilterKwargs", filters), **kwargs)

    options = [
        click.option(
            "--flow", "flow_names", multiple=True, help="Keep runs of this flow (repeatable)."
        ),
        click.option(
            "--deployment",
            "deployments",
            multiple=True,
            help="Keep runs of this deployment, by name or id (repeatable).",
        ),
        click.option(
            "--work-pool", "work_pools", multiple=True, help="Keep runs of this work pool."
        ),
        click.option(
            "--task", "task_names", multiple=True, help="Keep this task name (repeatable)."
        ),
        click.option("--tag", "tags", multiple=True, help="Keep runs carrying every tag given."),
        click.option(
            "--state-type",
            "state_types",
            multiple=True,
            type=_STATE_TYPE,
            help="Keep runs whose current state has this type (repeatable).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def with_client_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the server and request options; the command receives them as keyword arguments."""
    options = [
        click.option(
            "--api-url",
            metavar="URL",
            help="Prefect API URL, such as http://127.0.0.1:4200/api. "
            "Default: PREFECT_API_URL, then the active Prefect profile.",
        ),
        click.option(
            "--concurrency", type=click.IntRange(1, 64), default=8, show_default=True,
            help="Requests in flight at once.",
        ),
        click.option(
            "--requests-per-minute", type=click.FloatRange(min=1), default=None,
            help="Stay under this request rate (Prefect Cloud limits per account).",
        ),
        click.option(
            "--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
            help="Seconds to wait for one response.",
        ),
        click.option(
            "--max-attempts", type=click.IntRange(1, 20), default=6, show_default=True,
            help="Attempts per request; 429, 5xx and dropped connections are retried.",
        ),
        click.option(
            "--max-retry-wait", type=click.FloatRange(min=0), default=300.0, show_default=True,
            metavar="SECONDS",
            help="The most one request waits between its attempts, all waits together "
            "(Retry-After included); beyond it the request fails.",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def make_client(options: dict[str, Any]) -> PrefectClient:
    """The client the options of :func:`with_client_options` describe."""
    return PrefectClient(
        options["api_url"],
        concurrency=options["concurrency"],
        requests_per_minute=options["requests_per_minute"],
        timeout=options["timeout"],
        max_attempts=options["max_attempts"],
        max_retry_wait=options["max_retry_wait"],
    )


# -- the commands --------------------------------------------------------------

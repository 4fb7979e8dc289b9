"""Links from the report to the Prefect UI: the UI's address derived from the API's."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["task_run_url", "ui_url"]

_CLOUD: Final = re.compile(
    r"^https://api\.prefect\.(?P<domain>cloud|dev)/api/accounts/(?P<account>[^/]+)"
    r"/workspaces/(?P<workspace>[^/]+)/?$"
)


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

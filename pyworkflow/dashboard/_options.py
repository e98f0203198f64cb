"""The dashboard's settings, and the rule that keeps it off the network without a token."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field

from .._exceptions import ConfigurationError
from ..storage import StorageBackend

__all__ = ["TOKEN_ENV", "DashboardOptions", "check_bind", "is_loopback"]

TOKEN_ENV = "PYWORKFLOW_DASHBOARD_TOKEN"


@dataclass(frozen=True, slots=True)
class DashboardOptions:
    """How one dashboard serves one storage.

    Args:
        storage: the backend whose runs it shows.
        storage_desc: how the storage is named in messages (``file:./workflow_data``).
        token: when set, every request must carry it (``Authorization: Bearer`` or the
            cookie that opening ``/?token=...`` sets).
        read_only: no actions (cancel, hook payloads, resume): their forms are not shown
            and their POSTs answer 403.
        max_payload: the largest form body accepted, in bytes (a hook payload, a reason).
        interval: how often live pages read the storage, in seconds.
        page_size: runs per page unless the URL asks for another (at most ``max_page``).
    """

    storage: StorageBackend
    storage_desc: str = "storage"
    token: str | None = None
    read_only: bool = False
    max_payload: int = 64 * 1024
    interval: float = 0.5
    page_size: int = 50
    max_page: int = 100
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    """Signs CSRF tokens; a new one per process."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> str | None:
    """The token to require when serving on ``host``: ``token``, else ``$TOKEN_ENV``.

    Raises:
        ConfigurationError: ``host`` is not a loopback address and no token is given.
    """
    token = token or os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(host):
        msg = (
            f"the dashboard would listen on {host!r}, beyond this machine, without a token: "
            f"pass --token SECRET (or set ${TOKEN_ENV}), or bind 127.0.0.1"
        )
        raise ConfigurationError(msg)
    if token is not None and len(token) < 16:
        msg = f"the dashboard token is {len(token)} characters long; use at least 16"
        raise ConfigurationError(msg)
    return token

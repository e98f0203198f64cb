"""What every route of one dashboard shares: its options, templates and census, and how a
page is rendered and sent (escaped, with its CSRF cookie and security headers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from .._cli._output import fmt_time
from .._cli._runs import run_info, waiting_text
from .._config import settings
from .._core._records import RunStatus
from ._census import Census
from ._options import DashboardOptions
from ._security import CSRF_COOKIE, csrf_cookie, csrf_token

__all__ = ["SECURITY_HEADERS", "Context"]

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pyworkflow.dashboard", "templates"),
        autoescape=True,  # every value is escaped, in HTML and in the inline SVG
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["statuses"] = [s.value for s in RunStatus]
    env.filters["time"] = fmt_time
    env.filters["info"] = run_info
    env.filters["waiting"] = waiting_text
    return env


@dataclass
class Context:
    """One dashboard's shared state (no globals: two apps in one process stay apart)."""

    options: DashboardOptions
    census: Census
    templates: jinja2.Environment = field(default_factory=_environment)
    streams: int = 0
    """Live streams open now (a closed tab must bring this back down)."""

    def now(self) -> datetime:
        return settings().clock.now()

    def render(self, name: str, **values: Any) -> str:
        return self.templates.get_template(name).render(read_only=self.options.read_only, **values)

    def page(self, request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        """A full page, with the CSRF token its forms need and the cookie it goes with."""
        cookie = csrf_cookie(request)
        html = self.render(
            name, csrf=csrf_token(self.options.secret, cookie), storage=self.options.storage_desc,
            **values,
        )  # fmt: skip
        response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
        if request.cookies.get(CSRF_COOKIE) != cookie:
            response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict")
        return response

"""The dashboard's gate: the access token on every request, CSRF tokens on every POST.

Access: with a token configured, a request passes with ``Authorization: Bearer TOKEN`` or
the ``pwf_token`` cookie; ``GET /?token=TOKEN`` sets that cookie and redirects to ``/``
(so the token leaves the address bar and history). Anything else gets 401.

CSRF (double submit, signed): every page sets a random ``pwf_csrf`` cookie (HttpOnly,
SameSite=Strict) and its forms carry ``HMAC(secret, cookie)``; a POST passes only when the
form's field matches its cookie. A cross-site form can send neither.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["CSRF_COOKIE", "CSRF_FIELD", "TokenGate", "csrf_cookie", "csrf_ok", "csrf_token"]

TOKEN_COOKIE = "pwf_token"
CSRF_COOKIE = "pwf_csrf"
CSRF_FIELD = "csrf_token"


class TokenGate:
    """ASGI middleware: refuses (401) HTTP requests that don't carry ``token``."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.query_params.get("token")
        if given is not None and request.method == "GET" and _same(given, self.token):
            response: Response = RedirectResponse(request.url.path, status_code=303)
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
        elif self._carried(request):
            await self.app(scope, receive, send)
            return
        else:
            text = "401: open the dashboard once as /?token=TOKEN, or send Authorization: Bearer"
            response = PlainTextResponse(text, status_code=401)
        await response(scope, receive, send)

    def _carried(self, request: Request) -> bool:
        assert self.token is not None
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and _same(value.strip(), self.token):
            return True
        return _same(request.cookies.get(TOKEN_COOKIE, ""), self.token)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def csrf_cookie(request: Request) -> str:
    """The request's CSRF cookie, or a new value to set."""
    value = request.cookies.get(CSRF_COOKIE)
    return value if value and len(value) == 43 else secrets.token_urlsafe(32)


def csrf_token(secret: bytes, cookie: str) -> str:
    """The form field that goes with ``cookie``."""
    return hmac.new(secret, cookie.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: bytes, request: Request, field: object) -> bool:
    """Whether a POST's form ``field`` matches its cookie."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not isinstance(field, str):
        return False
    return _same(field, csrf_token(secret, cookie))


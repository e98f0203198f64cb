"""The token gate and the bind rule."""

from __future__ import annotations

import httpx
import pytest

from pyworkflow import ConfigurationError
from pyworkflow.dashboard import check_bind
from pyworkflow.dashboard._options import TOKEN_ENV

from .conftest import Make

TOKEN = "s3cret-token-0123456789"


async def test_with_a_token_every_request_carries_it(make_app: Make) -> None:
    transport = httpx.ASGITransport(app=make_app(token=TOKEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for path in ("/", "/static/dashboard.css", "/live/runs", "/runs/run_0000000000000000"):
            assert (await client.get(path)).status_code == 401, path
        assert (await client.get("/", headers={"authorization": "Bearer nope"})).status_code == 401
        assert (await client.get("/?token=nope")).status_code == 401
        bearer = await client.get("/", headers={"authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200
        opened = await client.get(f"/?token={TOKEN}")
        assert opened.status_code == 303 and opened.headers["location"] == "/"
        assert "httponly" in opened.headers["set-cookie"].lower()
        assert (await client.get("/")).status_code == 200  # the cookie now


async def test_pages_send_security_headers(make_app: Make) -> None:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        page = await client.get("/")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "samesite=strict" in page.headers["set-cookie"].lower()


def test_off_loopback_it_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert check_bind("127.0.0.1", None) is None
    assert check_bind("::1", None) is None and check_bind("localhost", None) is None
    with pytest.raises(ConfigurationError, match="--token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(ConfigurationError, match="at least 16"):
        check_bind("0.0.0.0", "short")
    assert check_bind("0.0.0.0", TOKEN) == TOKEN
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert check_bind("192.0.2.1", None) == TOKEN

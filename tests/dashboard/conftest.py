"""A dashboard app on the test's storage, and an httpx client that talks to it in-process."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from pyworkflow.dashboard import DashboardOptions, create_app
from pyworkflow.storage import StorageBackend

from . import dash_app  # noqa: F401 - registers the workflows and the typed hook

_CSRF = re.compile(r'name="csrf-token" content="([0-9a-f]{64})"')

Make = Callable[..., Starlette]


@pytest.fixture
def make_app(local_storage: StorageBackend) -> Make:
    def make(**options: Any) -> Starlette:
        return create_app(
            DashboardOptions(storage=local_storage, storage_desc="test", interval=0.01, **options)
        )

    return make


@pytest.fixture
def app(make_app: Make) -> Starlette:
    return make_app()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        yield c


async def csrf_of(client: httpx.AsyncClient, path: str) -> str:
    """The CSRF token of the forms on ``path`` (its cookie lands in the client's jar)."""
    page = await client.get(path)
    assert page.status_code == 200, page.text
    match = _CSRF.search(page.text)
    assert match is not None, "no form with a CSRF token on " + path
    return match.group(1)


Post = Callable[[str, dict[str, str]], Awaitable[httpx.Response]]


@pytest.fixture
def post(client: httpx.AsyncClient) -> Post:
    """POST a form from the run's page, with its CSRF token, as the page's script does."""

    async def send(path: str, form: dict[str, str]) -> httpx.Response:
        run_page = path.rsplit("/", 1)[0]
        token = await csrf_of(client, run_page)
        headers = {"accept": "application/json"}
        return await client.post(path, data={"csrf_token": token, **form}, headers=headers)

    return send

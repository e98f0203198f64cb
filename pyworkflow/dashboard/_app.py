"""The dashboard's ASGI app: its routes, static files and the census task."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import _actions, _live, _pages
from ._census import Census
from ._context import Context
from ._options import DashboardOptions
from ._security import TokenGate

__all__ = ["create_app"]

Endpoint = Callable[[Context, Request], Awaitable[Response]]


def create_app(options: DashboardOptions, *, census_gap: float = 10.0) -> Starlette:
    """The dashboard for ``options.storage`` as an ASGI app (Starlette).

    The app's lifespan counts runs per status in the background (see ``_census``); a server
    runs it, a test may call ``app.state.context.census.refresh()`` instead.
    """
    ctx = Context(options=options, census=Census(options.storage, min_gap=census_gap))

    def route(path: str, endpoint: Endpoint, method: str = "GET") -> Route:
        return Route(path, functools.partial(endpoint, ctx), methods=[method])

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ctx.census.run)
            yield
            tg.cancel_scope.cancel()

    routes = [
        route("/", _pages.runs_page),
        route("/runs/{run_id}", _pages.run_page),
        route("/live/runs", _live.live_runs),
        route("/live/runs/{run_id}", _live.live_run),
        route("/runs/{run_id}/cancel", _actions.cancel, "POST"),
        route("/runs/{run_id}/resume", _actions.resume, "POST"),
        route("/runs/{run_id}/hooks", _actions.deliver, "POST"),
        Mount("/static", StaticFiles(packages=[("pyworkflow.dashboard", "static")]), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(TokenGate, token=options.token)],
        lifespan=lifespan,
    )
    app.state.context = ctx
    return app

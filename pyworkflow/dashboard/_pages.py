"""The pages: the list of runs and one run (GET only: nothing here changes a run)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ._context import Context
from ._views import RunsQuery, load_run, load_runs

__all__ = ["run_page", "runs_counts", "runs_page"]


def runs_counts(ctx: Context) -> dict[str, Any]:
    """The census for the templates: counts per status, their total and age."""
    census = ctx.census
    counts = {s.value: n for s, n in census.counts.items()} if census.counts else None
    age = census.age()
    return {"counts": counts, "total": census.total, "age": None if age is None else round(age)}


async def runs_page(ctx: Context, request: Request) -> Response:
    options = ctx.options
    query = RunsQuery.parse(request.query_params, default=options.page_size, most=options.max_page)
    view = await load_runs(options.storage, query)
    return ctx.page(request, "runs.html", query=query, view=view, **runs_counts(ctx))


async def run_page(
    ctx: Context, request: Request, form_error: str = "", status: int = 200
) -> Response:
    run_id = request.path_params["run_id"]
    view = await load_run(ctx.options.storage, run_id, ctx.now())
    if view is None:
        html = ctx.render("missing.html", run_id=run_id, storage=ctx.options.storage_desc)
        return HTMLResponse(html, status_code=404)
    return ctx.page(request, "run.html", status=status, view=view, form_error=form_error)

"""The dashboard's pages through httpx's ASGI transport, on memory and file storage."""

from __future__ import annotations

import html
import re
from uuid import uuid4

import httpx
from starlette.applications import Starlette

from pyworkflow import (
    ScheduleSpec,
    create_schedule,
    get_workflow_events,
    get_workflow_run,
    resume,
    start,
    trigger_schedule,
)
from pyworkflow.testing import ManualClock
from tests import cli_app

from . import dash_app


def run_ids(page: str) -> list[str]:
    return re.findall(r'<tr data-run-id="(run_[0-9a-f]{16})">', page)


async def test_the_list_pages_newest_first_with_filters_search_and_counts(
    app: Starlette, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    ids = []
    for i in range(5):
        ids.append(await start(dash_app.napper, f"n{i}", 60))
        clock.advance(1)
    done = await start(dash_app.flaky, uuid4().hex, idempotency_key="order-77")
    await app.state.context.census.refresh()

    page = await client.get("/", params={"limit": 3})
    assert page.status_code == 200
    assert run_ids(page.text) == [done, *ids[::-1]][:3]
    older = re.search(r'href="(/\?[^"]*cursor=[^"]+)"', page.text)
    assert older is not None
    rest = await client.get(html.unescape(older.group(1)))
    assert run_ids(rest.text) == ids[::-1][2:]
    assert "<b>6</b> runs" in page.text and "<b>6</b> suspended" in page.text

    assert run_ids((await client.get("/?status=completed")).text) == []  # flaky waits to retry
    assert run_ids((await client.get("/?workflow=dash.flaky")).text) == [done]
    assert run_ids((await client.get(f"/?q={ids[1]}")).text) == [ids[1]]
    assert run_ids((await client.get("/?q=order-77")).text) == [done]
    missing = await client.get("/?q=order-78")
    assert run_ids(missing.text) == [] and "no run with idempotency key" in missing.text
    capped = await client.get("/?limit=500")
    assert 'name="limit" type="number" min="1" max="100" value="100"' in capped.text


async def test_the_run_page_shows_record_timeline_and_events(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    run_id = await start(dash_app.flaky, uuid4().hex)
    clock.advance(1)
    await resume(run_id)
    page = await client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    text = page.text
    assert 'class="status status-completed"' in text and "&#34;steady&#34;" in text
    assert '<g class="bar step retried">' in text  # attempt 1 failed and was retried
    assert '<g class="bar retry ok">' in text  # its retry delay, as a span
    assert '<g class="bar step ok">' in text  # attempt 2
    assert "dash.wobble #1" in text and "dash.wobble #2" in text
    events = await get_workflow_events(run_id)
    assert [e.type.value for e in events] == re.findall(r'<tr class="event (\w+)">', text)
    assert "cancel run" not in text  # no actions on a finished run


async def test_a_failed_run_shows_its_error_and_traceback(client: httpx.AsyncClient) -> None:
    run_id = await start(cli_app.failing, "o-9")
    text = (await client.get(f"/runs/{run_id}")).text
    assert "ValueError: cannot ship o-9" in text
    assert "Traceback (most recent call last)" in text and '<g class="bar step failed">' in text


async def test_a_chain_links_its_runs(client: httpx.AsyncClient) -> None:
    first = await start(cli_app.relay, 3)
    text = (await client.get(f"/runs/{first}")).text
    assert "chain (continue_as_new)" in text
    run = await get_workflow_run(first)
    assert run is not None and f'href="/runs/{run.continued_to_run_id}"' in text


async def test_a_parent_links_its_children_and_a_child_its_parent(
    client: httpx.AsyncClient,
) -> None:
    parent = await start(cli_app.tree, "o-7")
    text = (await client.get(f"/runs/{parent}")).text
    assert "<h2>children</h2>" in text
    (child_id,) = re.findall(r'<li><a href="/runs/(run_[0-9a-f]{16})">\1</a> cli\.sprout', text)
    child_page = (await client.get(f"/runs/{child_id}")).text
    assert f'<dt>parent</dt><dd><a href="/runs/{parent}">{parent}</a> (depth 1)' in child_page
    assert "<h2>children</h2>" not in child_page


async def test_a_scheduled_run_names_its_schedule(client: httpx.AsyncClient) -> None:
    schedule = await create_schedule(
        workflow_name="cli.sprout", spec=ScheduleSpec(interval="1h"), args=("o-8",)
    )
    run_id = await trigger_schedule(schedule.schedule_id)
    text = (await client.get(f"/runs/{run_id}")).text
    assert f"<dt>schedule</dt><dd>{schedule.schedule_id}" in text


async def test_user_values_are_escaped(client: httpx.AsyncClient) -> None:
    evil = "<script>alert('x')</script>"
    run_id = await start(dash_app.napper, evil, 60)
    for path in ("/", f"/runs/{run_id}", f"/?q={evil}"):
        text = (await client.get(path)).text
        assert "<script>alert" not in text, path
    page = await client.get(f"/runs/{run_id}")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text


async def test_an_unknown_run_is_404(client: httpx.AsyncClient) -> None:
    page = await client.get("/runs/run_0000000000000000")
    assert page.status_code == 404 and "No run run_0000000000000000" in page.text


async def test_static_files_are_served_from_the_package(client: httpx.AsyncClient) -> None:
    css = await client.get("/static/dashboard.css")
    js = await client.get("/static/dashboard.js")
    assert css.status_code == js.status_code == 200
    assert "svg.timeline" in css.text and "EventSource" in js.text

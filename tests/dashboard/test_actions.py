"""The dashboard's actions: cancel, deliver a hook payload, resume; and what refuses them."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from pyworkflow import RunStatus, get_workflow_events, get_workflow_run, list_runs, start
from pyworkflow.storage import StorageBackend
from pyworkflow.testing import ManualClock

from . import dash_app
from .conftest import Make, Post, csrf_of


async def _token(storage: StorageBackend, run_id: str) -> str:
    hooks = await storage.list_hooks(run_id)
    assert len(hooks) == 1
    return hooks[0].token


async def test_cancel_records_its_reason(post: Post) -> None:
    run_id = await start(dash_app.napper, "c", 3600)
    answer = await post(f"/runs/{run_id}/cancel", {"reason": "customer called"})
    assert answer.status_code == 200 and answer.json()["ok"] is True
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.CANCELLED
    assert run.cancellation_reason == "customer called"
    again = await post(f"/runs/{run_id}/cancel", {"reason": "twice"})
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]


async def test_a_hook_payload_is_validated_by_its_type_then_the_run_goes_on(
    post: Post, local_storage: StorageBackend
) -> None:
    run_id = await start(dash_app.approval, "h")
    token = await _token(local_storage, run_id)
    before = await get_workflow_events(run_id)

    not_json = await post(f"/runs/{run_id}/hooks", {"token": token, "payload": "{by: dana"})
    assert not_json.status_code == 400 and "is not valid JSON" in not_json.json()["error"]
    wrong = await post(f"/runs/{run_id}/hooks", {"token": token, "payload": '{"by": 5}'})
    assert wrong.status_code == 400 and "is not a valid Approval" in wrong.json()["error"]
    assert await get_workflow_events(run_id) == before  # nothing written

    ok = await post(f"/runs/{run_id}/hooks", {"token": token, "payload": '{"by": "dana"}'})
    assert ok.status_code == 200 and ok.json()["status"] == "completed"
    run = await get_workflow_run(run_id)
    assert run is not None and run.result == {"order_id": "h", "approved_by": "dana"}


async def test_an_invalid_payload_is_shown_in_the_form_without_javascript(
    client: httpx.AsyncClient, local_storage: StorageBackend
) -> None:
    run_id = await start(dash_app.approval, "form")
    token = await _token(local_storage, run_id)
    csrf = await csrf_of(client, f"/runs/{run_id}")
    form = {"csrf_token": csrf, "token": token, "payload": '{"by": 5}'}
    page = await client.post(f"/runs/{run_id}/hooks", data=form)
    assert page.status_code == 400
    assert '<p class="form-message error" role="alert">' in page.text
    assert "is not a valid Approval" in page.text and 'name="payload"' in page.text


async def test_resume_continues_a_due_run(post: Post, clock: ManualClock) -> None:
    run_id = await start(dash_app.napper, "r", 60)
    early = await post(f"/runs/{run_id}/resume", {})
    assert early.status_code == 200 and "not due yet" in early.json()["message"]
    clock.advance(60)
    answer = await post(f"/runs/{run_id}/resume", {})
    assert answer.json()["status"] == "completed"


async def test_a_post_without_a_valid_csrf_token_is_403_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    run_id = await start(dash_app.napper, "csrf", 3600)
    before = await get_workflow_events(run_id)
    await csrf_of(client, f"/runs/{run_id}")  # the cookie is there; the field is not
    for form in ({"reason": "x"}, {"reason": "x", "csrf_token": "0" * 64}):
        refused = await client.post(f"/runs/{run_id}/cancel", data=form)
        assert refused.status_code == 403
    stranger = httpx.AsyncClient(transport=client._transport, base_url="http://127.0.0.1")
    token = await csrf_of(client, f"/runs/{run_id}")  # a valid field without its cookie
    refused = await stranger.post(f"/runs/{run_id}/cancel", data={"csrf_token": token})
    assert refused.status_code == 403
    assert await get_workflow_events(run_id) == before


async def test_read_only_shows_no_forms_and_refuses_posts(make_app: Make) -> None:
    app = make_app(read_only=True)
    run_id = await start(dash_app.napper, "ro", 3600)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as client:
        page = await client.get(f"/runs/{run_id}")
        assert "read-only" in page.text and "<form class=\"action" not in page.text
        refused = await client.post(f"/runs/{run_id}/cancel", data={"reason": "x"})
        assert refused.status_code == 403
    run = await get_workflow_run(run_id)
    assert run is not None and not run.cancellation_requested


async def test_a_form_over_the_size_limit_is_413(make_app: Make) -> None:
    app: Starlette = make_app(max_payload=1024)
    run_id = await start(dash_app.approval, "big")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as client:
        csrf = await csrf_of(client, f"/runs/{run_id}")
        form = {"csrf_token": csrf, "payload": '"' + "x" * 2000 + '"'}
        refused = await client.post(f"/runs/{run_id}/hooks", data=form)
        assert refused.status_code == 413
    page = await list_runs(status="suspended")
    assert [r.run_id for r in page] == [run_id]

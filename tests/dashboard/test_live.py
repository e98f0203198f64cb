"""Live pages over server-sent events, driven at the ASGI level: a stream follows its run
to the end, the list sends a new run, and a client that goes away frees its stream."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.applications import Starlette

from pyworkflow import resume_hook, start
from pyworkflow.storage import StorageBackend

from . import dash_app

OnChunk = Callable[[bytes], Awaitable[bool]]
"""Called with each body chunk; returns True to disconnect."""


async def stream(app: Starlette, path: str, on_chunk: OnChunk) -> list[bytes]:
    """GET ``path`` as a browser's EventSource would; the app's call must end by itself
    (the run ended) or after ``on_chunk`` asked to disconnect."""
    chunks: list[bytes] = []
    gone = anyio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            chunks.append(message["body"])
            if await on_chunk(message["body"]):
                gone.set()

    path, _, query = path.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "headers": [(b"accept", b"text/event-stream")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    with anyio.fail_after(20):  # a guard: the stream must end, not a wait
        await app(scope, receive, send)
    return chunks


async def test_a_run_stream_follows_the_run_to_its_end(
    app: Starlette, local_storage: StorageBackend
) -> None:
    run_id = await start(dash_app.approval, "live")
    token = (await local_storage.list_hooks(run_id))[0].token
    delivered = False

    async def on_chunk(body: bytes) -> bool:
        nonlocal delivered
        if b"event: run" in body and not delivered:
            delivered = True
            await resume_hook(token, {"by": "lee"})  # an event appended while it watches
        return False

    chunks = await stream(app, f"/live/runs/{run_id}", on_chunk)
    text = b"".join(chunks).decode()
    assert text.count("event: run") == 2  # the run as it was, then after the payload
    assert 'status-completed" id="run-status">completed' in text.rsplit("event: run", 1)[1]
    assert text.rstrip().endswith("event: end\r\ndata:")
    assert app.state.context.streams == 0


async def test_a_closed_tab_frees_its_stream(app: Starlette) -> None:
    run_id = await start(dash_app.napper, "tab", 3600)  # never ends by itself
    open_while_sending: list[int] = []

    async def on_chunk(body: bytes) -> bool:
        open_while_sending.append(app.state.context.streams)
        return b"event: actions" in body  # the page is shown: close the tab

    chunks = await stream(app, f"/live/runs/{run_id}", on_chunk)
    assert b"event: run" in b"".join(chunks)
    assert open_while_sending[0] == 1
    assert app.state.context.streams == 0  # the stream's task ended with the client


async def test_the_list_stream_sends_a_new_run(app: Starlette) -> None:
    first = await start(dash_app.napper, "one", 3600)
    seen: list[str] = []
    second = ""

    async def on_chunk(body: bytes) -> bool:
        nonlocal second
        if b"event: runs" not in body:
            return False
        seen.append(body.decode())
        if len(seen) == 1:
            second = await start(dash_app.napper, "two", 3600)
            return False
        return True

    await stream(app, "/live/runs", on_chunk)
    assert first in seen[0] and second not in seen[0]
    assert second in seen[1] and first in seen[1]
    assert app.state.context.streams == 0

"""10 - Fire-and-forget children: handles, cancellation, and the TERMINATE policy.

``start_child_workflow(wf, ..., wait_for_completion=False)`` returns a
``ChildWorkflowHandle`` at once: ``.child_run_id``, ``await handle.result(timeout=...)``,
``await handle.cancel()`` and ``await handle.get_status()``. In workflow code ``result()`` is
a durable wait served from the log on replay. When the parent ends, the children it left
running are cancelled (parent-close policy TERMINATE) and end ``cancelled``, not ``failed``.

Run: python 10_child_handles.py 2>/dev/null
"""

import asyncio

from pyworkflow import (
    ChildWorkflowCancelledError,
    configure,
    get_workflow_events,
    reset_config,
    sleep,
    start,
    start_child_workflow,
    step,
    workflow,
)
from pyworkflow.storage import InMemoryStorageBackend


@step()
async def render_thumbnail(image: str) -> str:
    return f"{image}.thumb.png"


@workflow(durable=True)
async def thumbnail_workflow(image: str) -> str:
    return await render_thumbnail(image)


@workflow(durable=True)
async def archive_workflow(image: str) -> str:
    await sleep("30d")  # a long wait: nobody resumes it in this script
    return f"{image} archived"


@workflow(durable=True)
async def gallery_workflow(images: list) -> dict:
    # Start every thumbnail first, then collect the results.
    handles = [
        await start_child_workflow(thumbnail_workflow, image, wait_for_completion=False)
        for image in images
    ]
    thumbnails = [await handle.result() for handle in handles]

    # A child we change our mind about: cancel it through its handle.
    backup = await start_child_workflow(archive_workflow, "backup", wait_for_completion=False)
    # A live look, not recorded: print it, but don't let the result depend on it (a replay
    # would see the status of that moment, and could take another path).
    print(f"  backup child {backup.child_run_id} is {(await backup.get_status()).value}")
    await backup.cancel("backup not needed")
    try:
        await backup.result()
    except ChildWorkflowCancelledError as exc:
        backup_outcome = f"cancelled ({exc.reason})"

    # A child left running when the gallery ends: TERMINATE cancels it.
    await start_child_workflow(archive_workflow, images[0], wait_for_completion=False)
    return {"thumbnails": thumbnails, "backup": backup_outcome}


async def main() -> None:
    reset_config()
    storage = InMemoryStorageBackend()
    configure(storage=storage, default_durable=True)

    print("=== Fire-and-forget children ===")
    run_id = await start(gallery_workflow, ["cat.jpg", "dog.jpg"])
    run = await storage.get_run(run_id)
    print(f"Gallery: {run.status.value} -> {run.result}")

    print("\nIts children:")
    for child in await storage.get_children(run_id):
        reason = f" ({child.cancellation_reason})" if child.cancellation_reason else ""
        print(f"  {child.workflow_name:<19} {child.status.value:<10}{reason}")

    print("\nGallery's event log:")
    for event in await get_workflow_events(run_id):
        print(f"  {event.sequence}: {event.type.value}")


if __name__ == "__main__":
    asyncio.run(main())

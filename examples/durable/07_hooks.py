"""07 - Hooks: a workflow waits for an external event (a webhook, an approval).

Run: python 07_hooks.py 2>/dev/null
"""

import asyncio
from dataclasses import dataclass

from pyworkflow import (
    HookPayloadError,
    configure,
    define_hook,
    get_workflow_events,
    get_workflow_run,
    hook,
    reset_config,
    resume_hook,
    start,
    step,
    workflow,
)
from pyworkflow.storage import InMemoryStorageBackend


@dataclass
class Approval:
    approved: bool
    approver: str


approval_hook = define_hook("manager_approval", Approval)
tokens: dict[str, str] = {}


@step()
async def create_expense(amount: float) -> dict:
    return {"amount": amount, "state": "submitted"}


@step()
async def finalize(expense: dict, approval: Approval) -> dict:
    state = "approved" if approval.approved else "rejected"
    return {**expense, "state": state, "by": approval.approver}


@workflow(durable=True)
async def expense_workflow(amount: float) -> dict:
    expense = await create_expense(amount)
    # The token goes to whoever will answer: an email link, a Slack button, a webhook URL.
    approval = await approval_hook(
        timeout="7d", on_created=lambda token: tokens.__setitem__("approval", token)
    )
    expense = await finalize(expense, approval)
    receipt = await hook("receipt_uploaded", on_created=lambda t: tokens.__setitem__("receipt", t))
    return {**expense, "receipt": receipt["url"]}


async def main() -> None:
    reset_config()
    configure(storage=InMemoryStorageBackend(), default_durable=True)

    print("=== Hooks: waiting for external events ===")
    run_id = await start(expense_workflow, 120.0)
    run = await get_workflow_run(run_id)
    print(f"Started {run_id}: {run.status.value} (waiting for a {run.suspended_reason})")
    print(f"Approval token: {tokens['approval']}")

    try:
        await resume_hook(tokens["approval"], {"approved": "maybe"})
    except HookPayloadError as exc:
        print(f"Invalid payload rejected, nothing recorded: {type(exc).__name__}")

    run = await resume_hook(tokens["approval"], {"approved": True, "approver": "dana"})
    print(f"After approval: {run.status.value} (waiting for a {run.suspended_reason})")

    run = await resume_hook(tokens["receipt"], {"url": "https://example.com/r/1.pdf"})
    print(f"After receipt:  {run.status.value}, result: {run.result}")

    print("\nEvent log:")
    for event in await get_workflow_events(run_id):
        print(f"  {event.sequence:>2}: {event.type.value}")


if __name__ == "__main__":
    asyncio.run(main())

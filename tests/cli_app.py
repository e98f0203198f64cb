"""A small workflow app for the command-line tests (``--app tests.cli_app``)."""

from __future__ import annotations

from typing import Any

import anyio

from pyworkflow import (
    CancellationError,
    continue_as_new,
    hook,
    shield,
    sleep,
    start_child_workflow,
    step,
    workflow,
)

__all__ = ["approval", "failing", "gated", "napper", "relay", "tree"]

TOKENS: dict[str, str] = {}


@step(name="cli.prepare")
async def prepare(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, "prepared": True}


@step(name="cli.finish")
async def finish(order: dict[str, Any], extra: Any = None) -> dict[str, Any]:
    return {**order, "finished": True, "extra": extra}


@step(name="cli.undo")
async def undo(order_id: str) -> str:
    return f"undone {order_id}"


@workflow(name="cli.napper", durable=True)
async def napper(order_id: str, seconds: float) -> dict[str, Any]:
    """Prepares, sleeps ``seconds`` (a durable timer), then finishes."""
    order = await prepare(order_id)
    try:
        await sleep(seconds)
    except CancellationError:
        async with shield():
            await undo(order_id)
        raise
    return await finish(order)


async def _keep(token: str) -> None:
    TOKENS["approval"] = token


@workflow(name="cli.approval", durable=True)
async def approval(order_id: str) -> dict[str, Any]:
    """Prepares, waits for the ``approval`` hook, then finishes with its payload."""
    order = await prepare(order_id)
    payload = await hook("approval", on_created=_keep)
    return await finish(order, payload)


@step(name="cli.explode")
async def explode(order_id: str) -> None:
    raise ValueError(f"cannot ship {order_id}")


@workflow(name="cli.failing", durable=True)
async def failing(order_id: str) -> None:
    """Fails at its only step."""
    await explode(order_id)


@step(name="cli.pass_gate")
async def pass_gate(gate: str) -> str:
    """Appends a line to ``gate + ".entered"``, then waits until the file ``gate`` exists
    (the test controls it) and returns its text."""
    async with await anyio.open_file(gate + ".entered", "a") as entered:
        await entered.write("entered\n")
    path = anyio.Path(gate)
    while not await path.exists():  # noqa: ASYNC110 - the test process makes the file
        await anyio.sleep(0.02)
    return await path.read_text()


@workflow(name="cli.gated", durable=True)
async def gated(order_id: str, gate: str, nap: float) -> dict[str, Any]:
    """Prepares, sleeps ``nap`` seconds, then passes a gate the test opens, and finishes."""
    order = await prepare(order_id)
    await sleep(nap)
    opened = await pass_gate(gate)
    return await finish(order, opened)


@workflow(name="cli.relay", durable=True)
async def relay(legs: int) -> str:
    """Continues as new until ``legs`` runs make a chain."""
    order = await prepare(f"leg-{legs}")
    if legs > 1:
        await continue_as_new(legs - 1)
    return str(order["order_id"])


@workflow(name="cli.sprout", durable=True)
async def sprout(order_id: str) -> str:
    await sleep("1h")
    return order_id


@workflow(name="cli.tree", durable=True)
async def tree(order_id: str) -> str:
    """Waits for a child that sleeps an hour."""
    return str(await start_child_workflow(sprout, order_id))

"""Workflows for the dashboard's tests: a typed approval hook, a retried step, a failure
whose arguments hold markup."""

from __future__ import annotations

from typing import Any

import msgspec

from pyworkflow import define_hook, sleep, step, workflow

__all__ = ["Approval", "approval", "flaky", "napper"]

ATTEMPTS: dict[str, int] = {}


class Approval(msgspec.Struct, frozen=True):
    by: str
    approved: bool = True


approval_hook = define_hook("dash.approval", Approval)


@step(name="dash.prepare")
async def prepare(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id}


@step(name="dash.ship")
async def ship(order: dict[str, Any], by: str) -> dict[str, Any]:
    return {**order, "approved_by": by}


@workflow(name="dash.approval", durable=True, tags=["dashboard"])
async def approval(order_id: str) -> dict[str, Any]:
    """Prepares, waits for a typed ``Approval``, then ships."""
    order = await prepare(order_id)
    answer = await approval_hook()
    return await ship(order, answer.by)


@step(name="dash.wobble", max_retries=2, retry_delay="1s")
async def wobble(key: str) -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] < 2:
        raise ConnectionError(f"attempt {ATTEMPTS[key]} of {key} failed")
    return "steady"


@workflow(name="dash.flaky", durable=True)
async def flaky(key: str) -> str:
    """Its step fails once, waits its retry delay, then succeeds."""
    return await wobble(key)


@workflow(name="dash.napper", durable=True)
async def napper(label: str, seconds: float) -> str:
    await prepare(label)
    await sleep(seconds)
    return label

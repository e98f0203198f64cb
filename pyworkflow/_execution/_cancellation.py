"""``shield()``: cleanup that a cancellation cannot interrupt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from ._context import RunContext, current_context

__all__ = ["shield"]


@asynccontextmanager
async def shield() -> AsyncIterator[None]:
    """Inside ``async with shield():`` checkpoints don't raise CancellationError and the
    code is shielded from task cancellation, so cleanup steps run to completion.

    Example::

        except CancellationError:
            async with shield():
                await release_inventory(order_id)
            raise
    """
    ctx = current_context()
    with anyio.CancelScope(shield=True):
        if isinstance(ctx, RunContext):
            ctx.shield_depth += 1
        try:
            yield
        finally:
            if isinstance(ctx, RunContext):
                ctx.shield_depth -= 1

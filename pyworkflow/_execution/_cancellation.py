"""``shield()``: cleanup that a cancellation cannot interrupt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from ._context import shielded

__all__ = ["shield"]


@asynccontextmanager
async def shield() -> AsyncIterator[None]:
    """Inside ``async with shield():`` checkpoints don't raise CancellationError and the
    code is shielded from task cancellation, so cleanup steps run to completion. The shield
    covers the task that entered it (and tasks it starts inside the block), never its
    sibling branches.

    Example::

        except CancellationError:
            async with shield():
                await release_inventory(order_id)
            raise
    """
    with anyio.CancelScope(shield=True), shielded():
        yield

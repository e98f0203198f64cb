"""A workflow shared by the storage-failure tests: three steps, each one guarded by the
workflow's own ``except Exception:`` (which a storage error must never reach).

``calls`` counts each step body's executions, and ``after`` may hold, per part name, a
coroutine function the body awaits once it has counted (a test's fault to inject there).
Clear both at the start of a test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

from pyworkflow import step, workflow

calls: Counter[str] = Counter()
after: dict[str, Callable[[], Awaitable[None]]] = {}


@step(name="flows.part")
async def part(name: str) -> str:
    calls[name] += 1
    if name in after:
        await after[name]()
    return name.upper()


@workflow(name="flows.three_parts", durable=True)
async def three_parts() -> dict[str, list[str]]:
    done: list[str] = []
    seen: list[str] = []
    for name in ("a", "b", "c"):
        try:
            done.append(await part(name))
        except Exception as exc:  # a storage error must never land here
            seen.append(repr(exc))
    return {"done": done, "seen": seen}

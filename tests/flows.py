"""A workflow shared by the storage-failure tests: three steps, each one guarded by the
workflow's own ``except Exception:`` (which a storage error must never reach).

``calls`` counts each step body's executions (clear it at the start of a test).
"""

from __future__ import annotations

from collections import Counter

from pyworkflow import step, workflow

calls: Counter[str] = Counter()


@step(name="flows.part")
async def part(name: str) -> str:
    calls[name] += 1
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

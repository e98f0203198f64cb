"""A workflow that catches a FatalError and a RetryableError raised by its steps.

Its golden history (``tests/golden/legacy_private_error_names.json``) was recorded before the
package layout moved, when failures were stored under private module paths
(``pyworkflow._exceptions.FatalError``). Replay must rebuild the same classes, or the
``except`` clauses below take another branch and the run ends differently.
"""

from __future__ import annotations

import asyncio

from pyworkflow import FatalError, RetryableError, configure, start, step, workflow
from pyworkflow.storage import InMemoryStorageBackend


@step(name="refuse")
async def refuse() -> str:
    raise FatalError("card declined")


@step(name="busy", max_retries=1, retry_delay=0)
async def busy() -> str:
    raise RetryableError("gateway busy")


@workflow(durable=True, name="recorded_errors")
async def recorded_errors() -> dict[str, str]:
    caught: dict[str, str] = {}
    try:
        await refuse()
    except FatalError as exc:
        caught["fatal"] = f"{type(exc).__name__}: {exc}"
    try:
        await busy()
    except RetryableError as exc:
        caught["retryable"] = f"{type(exc).__name__}: {exc}"
    return caught


async def main() -> None:
    configure(storage=InMemoryStorageBackend())
    await start(recorded_errors)


if __name__ == "__main__":
    asyncio.run(main())

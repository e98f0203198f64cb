"""A workflow that reads the attributes and args of errors raised by its steps.

Its golden history (``tests/golden/apps_recorded_error_details.json``) holds step failures
in the format that records ``error_args``, ``error_attrs`` and ``error_notes``. Replay must
rebuild each error with them (without calling ``PaymentDeclined.__init__``), or the
``except`` clauses below read other values and the run ends differently.
"""

from __future__ import annotations

import asyncio
from datetime import date

from pyworkflow import configure, start, step, workflow
from pyworkflow.storage import InMemoryStorageBackend


class PaymentDeclined(Exception):
    def __init__(self, code: str, retry_on: date) -> None:
        super().__init__(f"payment declined: {code}")
        self.code = code
        self.retry_on = retry_on  # not a JSON value: named in error_notes


@step(name="golden.charge")
async def charge() -> str:
    raise PaymentDeclined("insufficient_funds", date(2025, 6, 1))


@step(name="golden.find")
async def find() -> str:
    raise KeyError("sku-1")


@workflow(durable=True, name="recorded_error_details")
async def recorded_error_details() -> dict[str, object]:
    caught: dict[str, object] = {}
    try:
        await charge()
    except PaymentDeclined as exc:
        caught["code"] = exc.code
    try:
        await find()
    except KeyError as exc:
        caught["key"] = [str(exc), exc.args[0]]
    return caught


async def main() -> None:
    configure(storage=InMemoryStorageBackend())
    await start(recorded_error_details)


if __name__ == "__main__":
    asyncio.run(main())

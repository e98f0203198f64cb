"""Workflows whose values are written by one process and replayed by another
(``tests/values_child.py``): recorded errors, annotations resolved late, refused values.

``from __future__ import annotations`` makes every annotation a string, and ``Order`` is
defined below the step that returns it: it is resolved when the step is first used.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pyworkflow import SerializationError, sleep, step, workflow


class PaymentDeclined(Exception):
    def __init__(self, code: str, amount: Decimal) -> None:
        super().__init__(f"payment declined: {code}")
        self.code = code
        self.amount = amount  # a Decimal is not a JSON value: not recorded, and said so


@step(name="values.charge")
async def charge(amount: str) -> None:
    raise PaymentDeclined("insufficient_funds", Decimal(amount))


@step(name="values.find")
async def find(sku: str) -> None:
    raise KeyError(sku)


@step(name="values.seen")
async def seen(view: dict[str, Any]) -> dict[str, Any]:
    return view  # records what the live execution saw


@workflow(name="values.errors", durable=True)
async def errors() -> dict[str, Any]:
    """Catches recorded errors, then sleeps: a resume replays the ``except`` branches."""
    view: dict[str, Any] = {}
    notes: list[str] = []
    try:
        await charge("9.99")
    except PaymentDeclined as exc:
        view["code"], view["message"] = exc.code, str(exc)
        notes += getattr(exc, "__notes__", [])
    try:
        await find("sku-1")
    except KeyError as exc:
        view["key"], view["key_arg"] = str(exc), exc.args[0]
    live = await seen(view)
    await sleep("1m")
    return {"live": live, "replayed": view, "replayed_notes": notes}


@step(name="values.make_order")
async def make_order(order_id: str) -> Order:
    return Order(order_id, [Line("sku-1", Decimal("2.50"))])


@step(name="values.ratio")
async def ratio() -> float:
    return float("inf")


@step(name="values.average")
async def average() -> Any:
    return {"values": [], "mean": float("nan")}


@step(name="values.blob")
async def blob() -> dict[str, Any]:
    return {"name": "report.pdf", "parts": [b"%PDF-1.7"]}


@workflow(name="values.typed", durable=True)
async def typed(order_id: str) -> dict[str, Any]:
    """Gets an ``Order`` (annotated as a string), and values JSON can't hold faithfully."""
    view: dict[str, Any] = {}
    order = await make_order(order_id)
    view["order"] = [type(order).__name__, type(order.lines[0]).__name__, order.lines[0].price]
    for refused in (ratio, average, blob):
        try:
            await refused()
        except SerializationError as exc:
            view[refused.name] = str(exc)
    live = await seen(view)
    await sleep("1m")
    return {"live": live, "replayed": view}


@dataclass
class Line:
    sku: str
    price: Decimal


@dataclass
class Order:
    order_id: str
    lines: list[Line]

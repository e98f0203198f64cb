"""Payloads: what can be stored, typed decoding on replay, clear errors, nothing written."""

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import msgspec
import pydantic
import pytest

from pyworkflow import (
    SerializationError,
    get_workflow_events,
    list_runs,
    resume,
    start,
    step,
    workflow,
)
from pyworkflow.storage import InMemoryStorageBackend


class Color(enum.Enum):
    RED = "red"


@dataclass
class Point:
    x: int
    y: int


class Item(msgspec.Struct):
    sku: str
    qty: int


class User(pydantic.BaseModel):
    name: str
    age: int


@dataclass
class Everything:
    when: datetime
    day: date
    uid: uuid.UUID
    price: Decimal
    color: Color
    point: Point
    items: list[Item]


SAMPLE = Everything(
    when=datetime(2025, 5, 1, 12, 0, tzinfo=UTC),
    day=date(2025, 5, 1),
    uid=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    price=Decimal("19.99"),
    color=Color.RED,
    point=Point(1, 2),
    items=[Item(sku="a", qty=2)],
)


@step()
async def echo_everything(value: Everything) -> Everything:
    return value


@step()
async def make_user(name: str) -> User:
    return User(name=name, age=42)


@workflow(durable=True)
async def typed_workflow(value: Everything, name: str) -> dict[str, object]:
    echoed = await echo_everything(value)
    user = await make_user(name)
    assert isinstance(echoed, Everything) and isinstance(echoed.items[0], Item)
    assert isinstance(user, User)
    return {"same": echoed == value, "user": user.name, "price": echoed.price}


async def test_rich_types_round_trip_live_and_on_replay(memory: InMemoryStorageBackend) -> None:
    run_id = await start(typed_workflow, SAMPLE, "ada")
    events = await get_workflow_events(run_id)
    assert events[-1].type.value == "workflow_completed"
    assert events[-1].data["result"] == {"same": True, "user": "ada", "price": "19.99"}
    # Replaying from the log decodes the recorded results into the annotated types again.
    memory._events[run_id] = events[:-1]  # drop workflow_completed: the run is "running"
    assert await resume(run_id) == {"same": True, "user": "ada", "price": "19.99"}


@workflow(durable=True)
async def takes_anything(value: object) -> object:
    return value


async def test_non_serializable_argument_writes_nothing(memory: InMemoryStorageBackend) -> None:
    with pytest.raises(SerializationError, match="object") as info:
        await start(takes_anything, object())
    assert "takes_anything" in str(info.value)
    assert len(await list_runs()) == 0
    assert memory._events == {}


@step()
async def returns_a_set_of_objects() -> object:
    return {object()}


@workflow(durable=True)
async def bad_result_workflow() -> object:
    return await returns_a_set_of_objects()


async def test_non_serializable_step_result_fails_the_run_clearly(
    memory: InMemoryStorageBackend,
) -> None:
    run_id = await start(bad_result_workflow)
    run = await memory.get_run(run_id)
    assert run is not None and run.status.value == "failed"
    assert run.error_type == "pyworkflow.SerializationError"
    assert "returns_a_set_of_objects" in (run.error_message or "")
    types = [e.type.value for e in await get_workflow_events(run_id)]
    assert "step_completed" not in types


@workflow(durable=True)
async def returns_object() -> object:
    return object()


async def test_non_serializable_workflow_result_fails_the_run(
    memory: InMemoryStorageBackend,
) -> None:
    run_id = await start(returns_object)
    run = await memory.get_run(run_id)
    assert run is not None and run.status.value == "failed"
    assert "SerializationError" in (run.error_type or "")


# -- argument checks (Codec.bind): a fast path for plain positional calls ----------------------
def _codec_of(fn: object) -> object:
    from pyworkflow._core._codec import Codec

    return Codec(fn)  # type: ignore[arg-type]


async def _two_and_default(a: int, b: int, c: int = 3) -> int:
    return a + b + c


async def _keyword_only(a: int, *, b: int) -> int:
    return a + b


async def _star_args(*values: int) -> int:
    return sum(values)


@pytest.mark.parametrize(
    ("fn", "args", "kwargs", "ok"),
    [
        (_two_and_default, (1, 2), {}, True),
        (_two_and_default, (1, 2, 3), {}, True),
        (_two_and_default, (1,), {}, False),  # too few positional arguments
        (_two_and_default, (1, 2, 3, 4), {}, False),  # too many
        (_two_and_default, (1,), {"b": 2}, True),  # keywords: the full check
        (_two_and_default, (1, 2), {"a": 1}, False),  # a given twice
        (_keyword_only, (1,), {}, False),  # b is keyword-only and missing
        (_keyword_only, (1,), {"b": 2}, True),
        (_star_args, (), {}, True),
        (_star_args, (1, 2, 3, 4, 5), {}, True),
    ],
)
def test_argument_checks_agree_with_the_signature(
    fn: object, args: tuple[int, ...], kwargs: dict[str, int], ok: bool
) -> None:
    codec: object = _codec_of(fn)
    if ok:
        codec.bind("wf", args, kwargs)  # type: ignore[attr-defined]
    else:
        with pytest.raises(TypeError, match=r"bad arguments for wf\("):
            codec.bind("wf", args, kwargs)  # type: ignore[attr-defined]

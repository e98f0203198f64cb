"""Payloads: what can be stored, typed decoding on replay, clear errors, nothing written."""

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pydantic
import pytest

from pyworkflow import (
    ConfigurationError,
    SerializationError,
    get_workflow_events,
    list_runs,
    resume,
    start,
    step,
    workflow,
)
from pyworkflow._core._codec import _MSGPACK, _SUSPECT, encode_value
from pyworkflow.storage import InMemoryStorageBackend

from .values_child import run_child


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


@step()
async def infinite() -> float:
    return float("inf")


@workflow(durable=True)
async def unbounded() -> float:
    return await infinite()


@pytest.mark.parametrize(
    ("wf", "what"),
    [
        (bad_result_workflow, "returns_a_set_of_objects"),
        # a '-> float' step returning inf: refused before the log holds null (issue 12)
        (unbounded, "the result of step 'infinite': result is inf"),
    ],
)
async def test_non_serializable_step_result_fails_the_run_clearly(
    memory: InMemoryStorageBackend, wf: object, what: str
) -> None:
    run_id = await start(wf)  # type: ignore[arg-type]
    run = await memory.get_run(run_id)
    assert run is not None and run.status.value == "failed"
    assert run.error_type == "pyworkflow.SerializationError"
    assert what in (run.error_message or "")
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


# -- values JSON can't hold faithfully are refused before anything is written (issue 12) --------
@workflow(durable=True)
async def echoes(value: object) -> object:
    return value


NEXT: list[object] = []


@step()
async def produce() -> Any:
    return NEXT[0]


@workflow(durable=True)
async def produces() -> object:
    try:
        return await produce()
    except SerializationError as exc:  # the step failed; nothing was stored for it
        return str(exc)


@pytest.mark.parametrize(
    ("args", "kwargs", "path"),
    [
        ((b"\x00",), {}, "args[0] is b'\\x00'"),
        (([1, {"blob": bytearray(b"a")}],), {}, "args[0][1]['blob'] is bytearray(b'a')"),
        ((), {"value": Point(1, float("nan"))}, "kwargs['value'].y is nan"),  # type: ignore
        (([Item(sku="a", qty=1), float("-inf")],), {}, "args[0][1] is -inf"),
    ],
)
async def test_bytes_nan_and_infinity_arguments_are_refused_at_start(
    memory: InMemoryStorageBackend, args: tuple[object, ...], kwargs: dict[str, object], path: str
) -> None:
    with pytest.raises(SerializationError) as info:
        await start(echoes, *args, **kwargs)
    assert path in str(info.value)
    assert "echoes" in str(info.value)
    assert memory._events == {}


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (b"\x89PNG", "bytes values are not stored"),
        ({"parts": [memoryview(b"x")]}, "result['parts'][0]"),
        (float("nan"), "result is nan"),
        ([1.5, {"mean": float("inf")}], "result[1]['mean'] is inf"),
        ({b"key": 1}, "result key b'key'"),
    ],
)
async def test_a_step_result_json_cannot_hold_fails_the_step_before_it_is_written(
    memory: InMemoryStorageBackend, value: object, what: str
) -> None:
    NEXT[:] = [value]
    run_id = await start(produces)
    events = await get_workflow_events(run_id)
    assert [e.type.value for e in events if e.type.value.startswith("step_")] == [
        "step_started",
        "step_failed",
    ]
    failed = events[2]
    assert failed.data["error_type"] == "pyworkflow.SerializationError"
    assert "step 'produce'" in failed.data["error_message"]
    assert what in failed.data["error_message"]
    assert await memory.get_run(run_id) is not None
    assert (await memory.get_run(run_id)).result == failed.data["error_message"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "value",
    [
        "zażółć gęślą jaźń",  # UTF-8 bytes that look like msgpack bin headers
        [196, 197, 198, 1.5, -0.0, 1e308, 2.2250738585072014e-308],
        {"price": Decimal("NaN"), "rate": 196, "when": SAMPLE.when},
        Everything(**{**SAMPLE.__dict__, "items": [Item(sku="ł", qty=197)]}),
    ],
)
def test_values_that_only_look_suspect_are_stored(value: object) -> None:
    assert _SUSPECT.search(_MSGPACK.encode(value)), "the slow path is what this tests"
    raw = encode_value(value, what="v")
    assert msgspec.json.decode(raw) == msgspec.json.decode(msgspec.json.encode(value))


# -- annotations are resolved at first use, and never dropped silently (issue 12) ------------
async def test_late_annotations_and_refused_values_survive_another_process(
    tmp_path: Path, anyio_backend: str
) -> None:
    """``values.typed`` (a ``from __future__ import annotations`` module) returns an ``Order``
    defined below its step, and tries values JSON can't hold; a second process replays it."""
    run_id = await run_child(anyio_backend, tmp_path, "start", "values.typed", "order-1")
    out = msgspec.json.decode(await run_child(anyio_backend, tmp_path, "resume", run_id))
    assert out["status"] == "completed", out
    live, replayed = out["result"]["live"], out["result"]["replayed"]
    assert live == replayed
    assert live["order"] == ["Order", "Line", "2.50"]  # a dataclass live and on replay
    assert "result is inf" in live["values.ratio"]
    assert "result['mean'] is nan" in live["values.average"]
    assert "result['parts'][0] is b'%PDF-1.7'" in live["values.blob"]
    log = (tmp_path / "events" / f"{run_id}.jsonl").read_text()
    assert ":null" not in log.replace('"idempotency_key":null', "")  # no NaN became null


async def test_an_annotation_that_cannot_be_resolved_stops_the_run_and_names_it(
    memory: InMemoryStorageBackend,
) -> None:
    @step(name="codec.ghost")
    async def ghost() -> "Ghost":  # type: ignore[name-defined]  # noqa: F821
        raise AssertionError("never runs")

    @workflow(durable=True, name="codec.haunted")
    async def haunted() -> object:
        return await ghost()

    with pytest.raises(ConfigurationError) as info:
        await start(haunted)
    message = str(info.value)
    assert "step 'codec.ghost'" in message and "'Ghost'" in message
    assert "test_codec:" in message  # the function's module:qualname
    (run,) = await list_runs()
    assert run.status.value == "running"  # not failed: fix the code, then resume it
    assert [e.type.value for e in await get_workflow_events(run.run_id)] == ["workflow_started"]


async def test_a_workflow_whose_annotations_cannot_be_resolved_does_not_start(
    memory: InMemoryStorageBackend,
) -> None:
    @workflow(durable=True, name="codec.unknown_args")
    async def unknown_args(order: "Missing") -> None:  # type: ignore[name-defined]  # noqa: F821
        return None

    with pytest.raises(ConfigurationError, match=r"workflow 'codec\.unknown_args'.*'Missing'"):
        await start(unknown_args, {})
    assert memory._events == {}

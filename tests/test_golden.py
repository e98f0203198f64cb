"""Golden histories: each example's recorded log must replay to the same outcome.

A history minus its final event is replayed by ``resume()`` with the example's current
code. Every checkpoint must be served from the log (no step runs again, no checkpoint
differs) and the run must end with the same final event. Regenerate the files with
``python -m tests.golden.regenerate`` only when a change is meant to alter histories.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pyworkflow import resume
from pyworkflow._core._events import decode_event
from pyworkflow.storage import InMemoryStorageBackend

from .golden.regenerate import ROOT, load_example
from .isolation import isolated_registry

# Event histories only: the folder also holds other golden values (kafka_wire.json).
GOLDEN = sorted(
    p for p in (Path(__file__).parent / "golden").glob("*.json") if '"events"' in p.read_text()
)
_VOLATILE = {"timestamp", "traceback"}


def _stable(event: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in event.items() if k not in _VOLATILE}


def test_every_durable_example_has_a_golden_history() -> None:
    names = {p.stem for p in GOLDEN}
    for n in ("01", "03", "05", "06", "07", "08", "09", "10", "12", "13"):
        assert any(name.startswith(f"durable_{n}_") for name in names), n


@pytest.mark.parametrize(
    "data", [json.loads(p.read_text()) for p in GOLDEN], ids=[p.stem for p in GOLDEN]
)
async def test_golden_history_replays(data: dict[str, Any]) -> None:
    recorded = data["events"]
    events = [decode_event(json.dumps(e)) for e in recorded]
    run_id = events[0].run_id
    storage = InMemoryStorageBackend()
    await storage.append(run_id, events[:-1], expected_sequence=0)

    # The examples reuse the seed's names (order_workflow): each replays in a registry that
    # holds only its own, as in the process that runs it.
    with isolated_registry():
        load_example(ROOT / data["example"])  # registers the example's workflows by name
        await resume(run_id, storage=storage)

    replayed = [msgspec.json.decode(msgspec.json.encode(e)) for e in await storage.read(run_id)]
    new = replayed[len(events) - 1 :]
    assert [e["type"] for e in new] == ["workflow_resumed", recorded[-1]["type"]], new
    assert _stable(new[-1]) | {"sequence": 0} == _stable(recorded[-1]) | {"sequence": 0}

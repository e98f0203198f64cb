"""How far the memory rows of ``just bench-compare`` are from the work they can't avoid.

Each floor does, in plain Python and with none of the engine around it, what one durable
step (or one replayed step) must do at the least; the engine does the same in the same
process, and the difference is what the engine's structure costs (the run's owner, its
requests and commits, the run context, the step's bookkeeping):

* **step**: two event structs (``step_started``, ``step_completed``), two folds into a
  ``RunState`` (the fold validates what is written), one list append per event (the memory
  log), the step's coroutine, one JSON encode of its result and one decode;
* **replay**: a call, a dict lookup of the recorded outcome, a coroutine that returns it
  decoded (one JSON decode).

It also prints a run's own cost (300 runs of 3 steps started at once, as bench-compare's
concurrent memory row), and the share of a step that the run's owner takes alone: a step's two requests
(its start asked, its outcome queued) through ``RunOwner`` on a memory backend, with no
workflow, step body or run context.

Ours runs ``workload.py``'s workflows, as ``just bench-compare`` does. Run: ``python
benchmarks/bench_floor.py [--samples N]``; prints one line per scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from workload import (
    REPLAY_STEPS,
    TOKENS,
    many_steps,
    quiet_logs,
    steps_then_hook,
    three_steps,
    use,
)

from pyworkflow import resume_hook, start
from pyworkflow._core._events import StepCompleted, StepStarted, WorkflowStarted
from pyworkflow._core._replay import RunState, fold
from pyworkflow._execution._clock import SystemClock
from pyworkflow._execution._drafts import UNSTAMPED, Derive
from pyworkflow._execution._owner import Backoff, RunOwner
from pyworkflow.storage import InMemoryStorageBackend

STEPS = 200
REPLAYED = REPLAY_STEPS
_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder(int).decode


async def _plain_add_one(x: int) -> int:
    return x + 1


async def floor_steps() -> float:
    """``STEPS`` sequential steps' unavoidable work (see the module doc)."""
    t0 = time.perf_counter()
    state, log, x = RunState(run_id="r"), list[Any](), 0
    state.last_sequence = 1
    for i in range(1, STEPS + 1):
        now, step_id = datetime.now(UTC), f"r.{i}"
        started = StepStarted(
            run_id="r",
            sequence=state.last_sequence + 1,
            timestamp=now,
            step_id=step_id,
            step_name="add_one",
            checkpoint=i,
            attempt=1,
        )
        state.apply(started)
        log.append(started)
        raw = msgspec.Raw(_ENCODE(await _plain_add_one(x)))
        completed = StepCompleted(
            run_id="r",
            sequence=state.last_sequence + 1,
            timestamp=now,
            step_id=step_id,
            step_name="add_one",
            checkpoint=i,
            attempt=1,
            result=raw,
        )
        state.apply(completed)
        log.append(completed)
        x = _DECODE(raw)
    assert x == STEPS
    return time.perf_counter() - t0


class _Recorded:
    """A step whose outcomes are all recorded: each call returns the next one, decoded."""

    def __init__(self, outcomes: dict[int, msgspec.Raw]) -> None:
        self.outcomes = outcomes
        self.index = 0

    def __call__(self, *args: Any) -> Awaitable[int]:
        self.index += 1
        return self._replayed(self.outcomes[self.index])

    async def _replayed(self, raw: msgspec.Raw) -> int:
        return int(_DECODE(raw))


_OUTCOMES = {i: msgspec.Raw(str(i).encode()) for i in range(1, REPLAYED + 1)}


async def floor_replay() -> float:
    """``REPLAYED`` replayed steps' unavoidable work (see the module doc)."""
    replayed = _Recorded(_OUTCOMES)
    t0 = time.perf_counter()
    total = 0
    for _ in range(REPLAYED):
        total = await replayed(total)
    assert total == REPLAYED
    return time.perf_counter() - t0


def _start_request(event: StepStarted) -> Derive:
    def derive(state: RunState) -> tuple[StepStarted, ...]:
        cp = state.checkpoints.get(event.checkpoint)
        return () if cp is not None and cp.attempts >= event.attempt else (event,)

    return derive


def _outcome_request(event: StepCompleted) -> Derive:
    def derive(state: RunState) -> tuple[StepCompleted, ...]:
        return () if state.checkpoints[event.checkpoint].resolved else (event,)

    return derive


async def owner_steps() -> float:
    """``STEPS`` steps' requests through a run's owner alone, as a step makes them (its
    start asked, its outcome queued), with no workflow, step body or run context: the
    owner's share of a step."""
    storage = InMemoryStorageBackend()
    first = WorkflowStarted(run_id="r", sequence=1, timestamp=datetime.now(UTC), workflow_name="w")
    await storage.append("r", [first], expected_sequence=0)
    owner = RunOwner(fold("r", [first]), storage, SystemClock(), None, Backoff())
    result = msgspec.Raw(b"1")
    t0 = time.perf_counter()
    for i in range(1, STEPS + 1):
        step_id = f"r.{i}"
        started = StepStarted(
            run_id="r",
            sequence=0,
            timestamp=UNSTAMPED,
            step_id=step_id,
            step_name="a",
            checkpoint=i,
            attempt=1,
        )
        await owner.ask(_start_request(started))
        completed = StepCompleted(
            run_id="r",
            sequence=0,
            timestamp=UNSTAMPED,
            step_id=step_id,
            step_name="a",
            checkpoint=i,
            attempt=1,
            result=result,
        )
        owner.submit(_outcome_request(completed))
    await owner.flush()
    return time.perf_counter() - t0


async def ours_steps() -> float:
    """``start()`` of a run of ``STEPS`` steps on a fresh memory backend (bench-compare's
    memory row, which also counts the run's set-up)."""
    use(InMemoryStorageBackend())
    t0 = time.perf_counter()
    await start(many_steps, STEPS)
    return time.perf_counter() - t0


async def ours_replay() -> float:
    """``resume_hook()`` of a run of ``REPLAYED`` completed steps (its replay), with its
    hook delivery and the run's end."""
    use(InMemoryStorageBackend())
    await start(steps_then_hook, REPLAYED)
    token = TOKENS["last"]
    t0 = time.perf_counter()
    await resume_hook(token, {"add": 1})
    return time.perf_counter() - t0


RUNS = 300


async def ours_runs() -> float:
    """``RUNS`` runs of 3 steps started at once (``asyncio.gather``, as bench-compare's
    concurrent memory row): a run's own cost, set-up and end included."""
    use(InMemoryStorageBackend())
    t0 = time.perf_counter()
    await asyncio.gather(*(start(three_steps, i) for i in range(RUNS)))
    return time.perf_counter() - t0


async def best(sample: Callable[[], Awaitable[float]], samples: int) -> float:
    for _ in range(5):
        await sample()  # warm-up
    return min([await sample() for _ in range(samples)])


async def main(samples: int) -> None:
    rows = [
        (f"{STEPS} sequential steps", floor_steps, ours_steps, STEPS),
        (f"replay of {REPLAYED} steps", floor_replay, ours_replay, REPLAYED),
    ]
    owner = await best(owner_steps, samples)
    print(f"the owner's share of a step: {owner / STEPS * 1e6:.2f} µs ({STEPS} steps)")
    runs = await best(ours_runs, max(samples // 4, 5))
    print(f"a 3-step run among {RUNS} started at once: {runs / RUNS * 1e6:.1f} µs")
    for name, floor, ours, count in rows:
        low, got = await best(floor, samples), await best(ours, samples)
        print(
            f"{name}: floor {low * 1e3:.3f} ms ({low / count * 1e6:.2f} µs each), "
            f"ours {got * 1e3:.3f} ms ({got / count * 1e6:.2f} µs each), "
            f"ours / floor {got / low:.1f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=50)
    quiet_logs()
    asyncio.run(main(parser.parse_args().samples))

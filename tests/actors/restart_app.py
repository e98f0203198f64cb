"""Workflows of the supervisor restart test, and its child process (SIGKILLed mid-run).

Step bodies append a line to ``{folder}/trail`` so the parent counts how often each ran.
``python -m tests.actors.restart_app FOLDER`` starts 3 sleeping and 2 stuck runs in an
embedded supervisor on ``FileStorageBackend(FOLDER)``, prints ``READY`` once they are in
place, then waits to be killed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio

from pyworkflow import RunStatus, sleep, step, workflow
from pyworkflow.actors import Supervisor
from pyworkflow.storage import FileStorageBackend


def _trail(line: str) -> None:
    with open(Path(os.environ["RESTART_FOLDER"]) / "trail", "a") as f:
        f.write(line + "\n")


@step(name="rs_note")
async def note(what: str) -> str:
    _trail(what)
    return what


@step(name="rs_wait_for_flag")
async def wait_for_flag(name: str) -> str:
    _trail(f"stuck {name}")
    flag = Path(os.environ["RESTART_FOLDER"]) / "flag"
    while not flag.exists():  # noqa: ASYNC110 - the flag is made by another process
        await anyio.sleep(0.02)
    return name


@workflow(durable=True, name="rs_napper")
async def napper(name: str) -> str:
    await note(f"before {name}")
    await sleep("2s")
    await note(f"after {name}")
    return name


@workflow(durable=True, name="rs_stuck")
async def stuck(name: str) -> str:
    return await wait_for_flag(name)


async def _child(folder: str) -> None:
    storage = FileStorageBackend(folder)
    async with Supervisor(storage=storage) as sup:
        nappers = [await sup.start(napper, f"n{i}") for i in range(3)]
        stucks = [await sup.start(stuck, f"s{i}") for i in range(2)]
        while True:
            runs = [await storage.get_run(r) for r in nappers]
            trail = (
                (Path(folder) / "trail").read_text() if (Path(folder) / "trail").exists() else ""
            )
            if all(r and r.status is RunStatus.SUSPENDED for r in runs) and trail.count(
                "stuck"
            ) == len(stucks):
                break
            await anyio.sleep(0.02)
        print("READY", " ".join(nappers), "|", " ".join(stucks), flush=True)
        await anyio.sleep_forever()




_BLOCK_B = True
"""The child blocks part b until it is killed; the parent's resume lets it finish."""


@step(name="rs_part")
async def part(name: str) -> str:
    _trail(f"part {name}")
    if name == "b" and _BLOCK_B:
        await anyio.sleep_forever()  # killed here
    return name


@workflow(durable=True, name="rs_parts")
async def parts() -> list[str]:
    async with anyio.create_task_group() as tg:
        calls = [part("a"), part("b"), part("c")]
        results: list[str] = ["", "", ""]

        async def run(i: int) -> None:
            results[i] = await calls[i]

        for i in range(3):
            tg.start_soon(run, i)
    return results


async def _parts_child(folder: str) -> None:
    """Start ``parts`` and print its run id; the parent kills us while ``b`` runs."""
    storage = FileStorageBackend(folder)
    async with Supervisor(storage=storage) as sup:
        run_id = await sup.start(parts)
        print("RUN", run_id, flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    os.environ["RESTART_FOLDER"] = sys.argv[1]
    main = _parts_child if sys.argv[2:] == ["parts"] else _child
    anyio.run(main, sys.argv[1], backend="trio")

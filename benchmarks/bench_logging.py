"""Does quiet logging cost anything? A 200-step memory workflow, interleaved, under:

* quiet: the default (``log_level="warning"``: debug/info calls are no-op methods);
* disabled: the engine's logger replaced by a null object (what "no logging" would cost:
  the calls remain, each one a bare method call);
* info: ``configure(log_level="info")`` to /dev/null (console): a few lines per run;
* debug: ``configure(log_level="debug")`` to /dev/null: a line per step, for contrast;
* json: ``configure(log_level="debug", log_format="json")`` to /dev/null.

Run: python benchmarks/bench_logging.py [--steps 200] [--rounds 40] [--update-readme FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import statistics
import time
from pathlib import Path
from typing import Any

from workload import many_steps  # the shared workload (benchmarks/ is on sys.path when run)

from pyworkflow import configure, reset_config, start
from pyworkflow._config import _holder, settings
from pyworkflow.storage import InMemoryStorageBackend

MARK_START = "<!-- bench-logging:start -->"
MARK_END = "<!-- bench-logging:end -->"


class NullLogger:
    """A logger that does nothing: the floor any logging setup is measured against."""

    def bind(self, **_: Any) -> NullLogger:
        return self

    def _nop(self, *_: Any, **__: Any) -> None:
        return None

    debug = info = warning = error = critical = exception = _nop


def setup(mode: str) -> None:
    reset_config()
    if mode == "disabled":
        _holder.current = dataclasses.replace(settings(), log=NullLogger())
    elif mode == "info":
        configure(log_level="info")
    elif mode == "debug":
        configure(log_level="debug")
    elif mode == "json":
        configure(log_level="debug", log_format="json")


async def one(mode: str, steps: int) -> float:
    setup(mode)
    configure(storage=InMemoryStorageBackend())
    t0 = time.perf_counter()
    await start(many_steps, steps)
    return time.perf_counter() - t0


MODES = ("quiet", "disabled", "info", "debug", "json")


async def measure(steps: int, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for m in MODES:  # warm-up
        await one(m, steps)
    for r in range(rounds):
        for m in MODES if r % 2 == 0 else MODES[::-1]:
            times[m].append(await one(m, steps))
    return times


def report(times: dict[str, list[float]], steps: int, rounds: int) -> str:
    base = statistics.median(times["disabled"])
    quartiles = statistics.quantiles(times["disabled"], n=4)
    spread = (quartiles[2] - quartiles[0]) / base
    lines = [
        f"{steps}-step memory workflow, {rounds} interleaved rounds, median vs disabled "
        f"(disabled's own interquartile range: {spread:.1%}):",
        "",
        "| mode | median | vs disabled |",
        "|---|---:|---:|",
    ]
    for m in MODES:
        med = statistics.median(times[m])
        lines.append(f"| {m} | {med * 1e3:.3f} ms | {(med - base) / base:+.1%} |")
    return "\n".join(lines)


def main(steps: int, rounds: int, readme: Path | None) -> None:
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        times = asyncio.run(measure(steps, rounds))
    block = report(times, steps, rounds)
    print(block)
    if readme is not None:
        text = readme.read_text(encoding="utf-8")
        start = text.index(MARK_START) + len(MARK_START)
        end = text.index(MARK_END)
        readme.write_text(text[:start] + "\n" + block + "\n" + text[end:], encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--update-readme", type=Path, help="replace the marked block of this file")
    args = parser.parse_args()
    main(args.steps, args.rounds, args.update_readme)

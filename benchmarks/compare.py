"""Run benchmarks/workload.py under this project and under the reference library, interleaved.

Each scenario runs as a subprocess per library, alternating (ours, ref, ours, ref, ...) for
``--rounds`` rounds; each subprocess warms up once and then times ``--repeat`` samples.
The table shows the minimum and median of all samples of each library and the ratio reference/ours
(> 1: ours is faster), of the minima as issue 14 measures them (medians shown too). Peak memory is each scenario process's ``ru_maxrss`` (median).
Both packages are byte-compiled before the import is timed, as pip leaves an installed one.

Run: just bench-compare            (builds .bench-venv-ref/ with pyworkflow-engine==0.4.0)
     python benchmarks/compare.py --ref-python .bench-venv-ref/bin/python [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "workload.py"
MARK_START = "<!-- bench-compare:start -->"
MARK_END = "<!-- bench-compare:end -->"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    repeat: int
    target: float | None = None  # minimum ratio reference/ours (of minima)
    needs_data: bool = False
    steps_goal: int | None = None
    """For a row the reference can't run: the goal in steps/s (``steps`` per sample)."""
    steps: int = 0


IMPORT_TARGET = 3.0
SCENARIOS = (
    Scenario("steps200_memory", "200 sequential steps, memory", 10, 25),
    Scenario("steps200_file", "200 sequential steps, file (no fsync, as the reference)", 3, 10),
    Scenario("concurrent300_memory", "300 concurrent 3-step runs, memory", 5, 10),
    Scenario("replay1000_memory", "resume replaying 1,000 steps, memory", 5, 30),
    Scenario("replay1000_file", "resume replaying 1,000 steps, file, fresh backend", 5, 40, True),
    Scenario("read2000_file", "read 2,000+ events from file, fresh backend", 10, 15, True),
    Scenario(
        "concurrent100_file_always",
        '100 concurrent 3-step runs, file, durability="always"†',
        3,
        steps_goal=3000,
        steps=300,
    ),
    Scenario("steps200_file_fsync", "200 steps, file; ours fsyncs every append*", 2),
    Scenario("steps100_memory", "100 steps, memory (flatness)", 10),
    Scenario("steps400_memory", "400 steps, memory (flatness)", 10),
    Scenario("steps100_file", "100 steps, file (flatness)", 3),
    Scenario("steps400_file", "400 steps, file (flatness)", 2),
)


@dataclass
class Impl:
    label: str
    python: str
    data: Path
    samples: dict[str, list[float]] = field(default_factory=dict)
    rss: dict[str, list[int]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def best(self, name: str) -> float:
        return min(self.samples[name])


def run_scenario(impl: Impl, sc: Scenario, cwd: str) -> None:
    cmd = [impl.python, str(WORKLOAD), sc.name, "--repeat", str(sc.repeat)]
    if sc.needs_data:
        cmd += ["--data", str(impl.data)]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 and sc.steps_goal is not None and impl.label == "reference":
        errors = [ln for ln in proc.stderr.splitlines() if "Error" in ln and ":" in ln]
        impl.failures[sc.name] = errors[0].strip() if errors else f"exit {proc.returncode}"
        return
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        raise SystemExit(f"{impl.label} {sc.name} failed ({proc.returncode}): {' | '.join(tail)}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    impl.samples.setdefault(sc.name, []).extend(result["samples"])
    impl.rss.setdefault(sc.name, []).append(result["maxrss_kib"])


_IMPORT_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| pyworkflow$")


# pip byte-compiles what it installs (the reference); an editable tree under
# PYTHONDONTWRITEBYTECODE=1 (ours here) would be compiled from source at every import.
_COMPILE = (
    "import compileall, os, pyworkflow; "
    "compileall.compile_dir(os.path.dirname(pyworkflow.__file__), quiet=1)"
)


def byte_compile(impl: Impl, cwd: str) -> None:
    """Byte-compile the package ``impl`` imports, so both import from bytecode, as installed."""
    subprocess.run([impl.python, "-c", _COMPILE], cwd=cwd, check=True, capture_output=True)


def import_time(impl: Impl, cwd: str) -> None:
    """Cumulative microseconds of ``import pyworkflow`` (-X importtime), and wall time."""
    proc = subprocess.run(
        [impl.python, "-X", "importtime", "-c", "import pyworkflow"],
        cwd=cwd, capture_output=True, text=True, check=True,
    )  # fmt: skip
    micros = next(
        int(m.group(1)) for ln in proc.stderr.splitlines() if (m := _IMPORT_LINE.search(ln))
    )
    impl.samples.setdefault("import", []).append(micros / 1e6)


def build(impl: Impl, cwd: str) -> None:
    subprocess.run(
        [impl.python, str(WORKLOAD), "build-replay-file", str(impl.data)],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


_BUILD = (
    "import importlib, importlib.machinery as m, pyworkflow; "
    "mods = [importlib.import_module('pyworkflow.' + n) for n in "
    "('_execution._owner', '_execution._step', '_core._replay')]; "
    "print(sum(str(x.__file__).endswith(tuple(m.EXTENSION_SUFFIXES)) for x in mods))"
)


def build_of(impl: Impl) -> str:
    """Whether ``impl``'s pyworkflow runs its hot path compiled (a wheel, setup.py) or pure."""
    proc = subprocess.run(
        [impl.python, "-c", _BUILD], capture_output=True, text=True, check=True, cwd="/"
    )
    compiled = int(proc.stdout.strip()) == 3
    return "the wheel, its hot path compiled by mypyc" if compiled else "pure Python"


def fmt_s(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def table(ours: Impl, ref: Impl) -> list[str]:
    """Times are the minimum over all samples (the median in brackets); the ratio is of
    minima, as in issue 14."""
    rows = [
        "| scenario | ours: min (median) | reference: min (median) | ratio ref/ours | target "
        "| peak RSS ours / ref |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for sc in SCENARIOS:
        if sc.name.startswith(("steps100", "steps400")):
            continue
        a = ours.best(sc.name)
        mem_ours = statistics.median(ours.rss[sc.name]) / 1024
        if sc.steps_goal is not None:
            rate = sc.steps / a
            ok = "✅" if rate >= sc.steps_goal else "❌"
            failed = ref.failures.get(sc.name, "ran (see samples)")
            rows.append(
                f"| {sc.title} | {fmt_s(a)} ({fmt_s(ours.median(sc.name))}): "
                f"{rate:,.0f} steps/s | can't: {failed} | - | ≥{sc.steps_goal:,} steps/s {ok} "
                f"| {mem_ours:.0f} / - MiB |"
            )
            continue
        b = ref.best(sc.name)
        ratio = b / a
        target = f"≥{sc.target:g}x {'✅' if ratio >= sc.target else '❌'}" if sc.target else "-"
        mem = f"{mem_ours:.0f} / {statistics.median(ref.rss[sc.name]) / 1024:.0f} MiB"
        rows.append(
            f"| {sc.title} | {fmt_s(a)} ({fmt_s(ours.median(sc.name))}) "
            f"| {fmt_s(b)} ({fmt_s(ref.median(sc.name))}) | {ratio:.1f}x | {target} | {mem} |"
        )
    a, b = ours.best("import"), ref.best("import")
    ok = "✅" if b / a >= IMPORT_TARGET else "❌"
    rows.append(
        f"| import pyworkflow (-X importtime) | {fmt_s(a)} ({fmt_s(ours.median('import'))}) "
        f"| {fmt_s(b)} ({fmt_s(ref.median('import'))}) | {b / a:.1f}x "
        f"| ≥{IMPORT_TARGET:g}x {ok} | - |"
    )
    for backend in ("memory", "file"):
        fo = ours.median(f"steps400_{backend}") / ours.median(f"steps100_{backend}")
        fr = ref.median(f"steps400_{backend}") / ref.median(f"steps100_{backend}")
        ok = "✅" if fo <= 4.2 else "❌"
        rows.append(
            f"| flatness, {backend}: time(400 steps) / time(100 steps), medians | {fo:.2f} "
            f"| {fr:.2f} | - | ours ≤4.2 {ok} | - |"
        )
    return rows


def machine() -> list[str]:
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return [
        f"- machine: {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), CPU {cpu}, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
    ]


def command() -> str:
    """``just bench-compare`` and the arguments given, less the interpreter paths it passes."""
    argv, shown = sys.argv[1:], []
    while argv:
        arg = argv.pop(0)
        if arg in ("--ref-python", "--ours-python"):
            argv.pop(0)
        elif not arg.startswith(("--ref-python=", "--ours-python=")):
            shown.append(arg)
    return " ".join(["just bench-compare", *shown])


def update_readme(path: Path, block: str) -> None:
    text = path.read_text(encoding="utf-8")
    start, end = text.index(MARK_START) + len(MARK_START), text.index(MARK_END)
    path.write_text(text[:start] + "\n" + block + "\n" + text[end:], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ref-python", default=".bench-venv-ref/bin/python")
    parser.add_argument("--ours-python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="scenario names (default: all)")
    parser.add_argument("--update-readme", type=Path, help="replace the marked block of this file")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        ours = Impl("ours", str(Path(args.ours_python).absolute()), Path(tmp) / "ours")
        ref = Impl("reference", str(Path(args.ref_python).absolute()), Path(tmp) / "ref")
        for impl in (ours, ref):
            build(impl, tmp)
            byte_compile(impl, tmp)
        chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
        for rnd in range(args.rounds):
            print(f"round {rnd + 1}/{args.rounds}", file=sys.stderr, flush=True)
            for sc in chosen:
                for impl in (ours, ref):
                    run_scenario(impl, sc, tmp)
            for _ in range(3):
                for impl in (ours, ref):
                    import_time(impl, tmp)
    ref_version = subprocess.run(
        [ref.python, "-c", "import pyworkflow; print(pyworkflow.__version__)"],
        capture_output=True, text=True, check=True, cwd="/",
    ).stdout.strip()  # fmt: skip
    lines = [
        *machine(),
        f"- ours: {build_of(ours)}, in {Path(args.ours_python).parent.parent.name}/",
        f"- reference: pyworkflow-engine {ref_version} (PyPI), in {Path(args.ref_python).parent.parent.name}/",
        f"- command: `{command()}` ({args.rounds} rounds, interleaved ours/ref; minima (medians) of all samples)",
        f"- load average (1 min) at start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f}",
        "",
        *(
            table(ours, ref)
            if not args.only
            else [
                f"{n}: min {ours.best(n):.6f} vs "
                + (f"{ref.best(n):.6f}" if n in ref.samples else ref.failures.get(n, "-"))
                for n in args.only
            ]
        ),
        "",
        "\\* the reference never fsyncs; this row compares our fsync-per-append default against it.",
        "† ours only: the reference never fsyncs, and fails on concurrent starts on file "
        "storage (the error it raised is in the row).",
    ]
    block = "\n".join(lines)
    print(block)
    if args.update_readme and not args.only:
        update_readme(args.update_readme, block)


if __name__ == "__main__":
    main()

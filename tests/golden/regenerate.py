"""Record one golden event history per example: python -m tests.golden.regenerate [NAME ...]

With names (e.g. ``02_file_storage``), only those examples are recorded again. Runs each
example's ``main()``, takes the run of its main workflow from the storage it configured, and
writes the events to ``tests/golden/<example>.json``. Review the diff before
committing: a changed history means old runs would replay differently.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType

import msgspec

from pyworkflow import list_runs
from pyworkflow._config import settings
from pyworkflow._core._events import encode_event

from ..isolation import isolated_registry

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

# example file -> the workflow whose run is kept
GOLDEN = {
    "examples/durable/01_basic_workflow.py": "order_workflow",
    "examples/durable/02_file_storage.py": "order_workflow",
    "examples/durable/03_retries.py": "retry_workflow",
    "examples/durable/05_event_log.py": "sleeping_workflow",
    "examples/durable/06_idempotency.py": "payment_workflow",
    "examples/durable/07_hooks.py": "expense_workflow",
    "examples/durable/08_cancellation.py": "order_workflow",
    "examples/durable/09_child_workflows.py": "order_workflow",
    "examples/durable/10_child_handles.py": "gallery_workflow",
    "examples/durable/12_continue_as_new.py": "ledger_workflow",
    "examples/durable/13_step_context.py": "order_workflow",
    "examples/transient/01_basic_workflow.py": None,
    # step failures with error_args, error_attrs and error_notes (recorded since issue 12)
    "tests/golden/apps/recorded_error_details.py": "recorded_error_details",
}


def load_example(path: Path) -> ModuleType:
    name = f"golden_{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def record(example: str, workflow_name: str) -> dict[str, object]:
    module = load_example(ROOT / example)
    with contextlib.redirect_stdout(io.StringIO()):
        await module.main()
    storage = settings().storage
    runs = [r for r in await list_runs(workflow_name=workflow_name, storage=storage)]
    # Of a chain (continue_as_new), a run that continued: its end is the event to guard.
    run = next((r for r in runs if r.continued_to_run_id is not None), runs[0])
    events = await storage.read(run.run_id)  # type: ignore[union-attr]
    return {
        "example": example,
        "workflow": workflow_name,
        "events": [msgspec.json.decode(encode_event(e)) for e in events],
    }


def main() -> None:
    only = set(sys.argv[1:])
    for example, workflow_name in GOLDEN.items():
        if workflow_name is None or not (ROOT / example).exists():
            continue
        if only and Path(example).stem not in only:
            continue
        with isolated_registry():  # the examples reuse the seed's names (order_workflow)
            data = asyncio.run(record(example, workflow_name))
        out = HERE / f"{Path(example).parent.name}_{Path(example).stem}.json"
        out.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {out.relative_to(ROOT)} ({len(data['events'])} events)")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()

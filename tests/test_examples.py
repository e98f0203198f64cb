"""Every example runs as the README says, from the repo root and from its own folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(
    p for p in (ROOT / "examples").rglob("[0-9][0-9]_*.py") if "kafka" not in p.parts
)

# What each example must show: the seed's event names it demonstrates.
EXPECTED = {
    "01_basic_workflow.py": ["workflow_started", "step_completed", "workflow_completed"],
    "02_file_storage.py": ["workflow_started", "step_completed", "workflow_completed"],
    "03_retries.py": ["step_failed", "step_retrying", "workflow_resumed", "workflow_completed"],
    "04_long_running.py": ["sleep_started", "workflow_suspended", "sleep_completed"],
    "05_event_log.py": ["sleep_started", "workflow_suspended", "workflow_resumed", "Data:"],
    "06_idempotency.py": ["Same run id: True", "Card charged 1 time(s)", "-> 1 run"],
    "07_hooks.py": ["hook_created", "hook_received", "completed"],
    "08_cancellation.py": ["cancellation_requested", "workflow_cancelled", "<- cleanup"],
}


@pytest.mark.parametrize("where", ["root", "own-folder"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_runs(example: Path, where: str) -> None:
    cwd = ROOT if where == "root" else example.parent
    target = str(example.relative_to(cwd))
    proc = subprocess.run(
        [sys.executable, target], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for expected in EXPECTED.get(example.name, []) if example.parent.name == "durable" else []:
        assert expected in proc.stdout, (expected, proc.stdout)
    assert "Traceback" not in proc.stdout


def test_there_are_examples() -> None:
    names = {p.name for p in EXAMPLES if p.parent.name == "durable"}
    assert {"01_basic_workflow.py", "03_retries.py", "05_event_log.py", "06_idempotency.py",
            "07_hooks.py", "08_cancellation.py"} <= names
    assert any(p.parent.name == "transient" for p in EXAMPLES)

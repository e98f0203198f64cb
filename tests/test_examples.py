"""Every example runs as the README says, from the repo root and from its own folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [
    *sorted(p for p in (ROOT / "examples").rglob("[0-9][0-9]_*.py") if "kafka" not in p.parts),
    ROOT / "examples" / "actors" / "embedded.py",
]

# What each example must show: the seed's event names it demonstrates.
EXPECTED = {
    "durable/01_basic_workflow.py": ["workflow_started", "step_completed", "workflow_completed"],
    "durable/02_file_storage.py": ["workflow_started", "step_completed", "workflow_completed"],
    "durable/03_retries.py": [
        "step_failed",
        "step_retrying",
        ", resume at 20",  # event.data["resume_at"] is the ISO string, as in the log
        "workflow_resumed",
        "workflow_completed",
    ],
    "durable/04_long_running.py": ["sleep_started", "workflow_suspended", "sleep_completed"],
    "durable/05_event_log.py": ["sleep_started", "workflow_suspended", "workflow_resumed", "Data:"],
    "durable/06_idempotency.py": ["Same run id: True", "Card charged 1 time(s)", "-> 1 run"],
    "durable/07_hooks.py": ["hook_created", "hook_received", "completed"],
    "durable/08_cancellation.py": ["cancellation_requested", "workflow_cancelled", "<- cleanup"],
    "durable/09_child_workflows.py": [
        "Parent after start(): suspended (child_workflow)",
        "'tip': 'refused (ValueError: card declined for 5000.0)', "
        "'shipping': 'courier booked for order-9'}",
        "payment_workflow   failed     depth=1 parent=True",
        "5: child_workflow_failed ValueError",
        "8: child_workflow_completed\n  9: workflow_resumed\n  10: workflow_completed",
        "Resumed again: 0 new events",
    ],
    "durable/10_child_handles.py": [
        "'thumbnails': ['cat.jpg.thumb.png', 'dog.jpg.thumb.png'], "
        "'backup': 'cancelled (backup not needed)'}",
        "is suspended",
        "archive_workflow    cancelled  (backup not needed)",
        "ended: parent-close policy TERMINATE)",
        "7: child_workflow_cancelled\n  8: child_workflow_started\n  9: workflow_completed",
    ],
    "durable/12_continue_as_new.py": [
        "Chain of 3 runs",
        "continued_as_new args=[3] kwargs={'balance': 59.75}",
        "Result of the last run: {'entries': 7, 'balance': 228.0}",
        "Key and tags carried over: ledger-2025-01, ['ledger']",
        "4: workflow_continued_as_new",
        "Same key again -> the chain's first run: True",
    ],
    "durable/11_schedules.py": [
        "Created greenhouse-every-second: every 1s, policy skip",
        "Triggered now: completed -> 'greenhouse: 21.5 C'",
        "(fired by the scheduler: 3)",
        "Status: paused, total_runs=4, successful_runs=4, failed_runs=0",
    ],
    "durable/13_step_context.py": [
        "'book reserved for ada (order order-7)', 'lamp reserved for ada (order order-7)'",
        "charged 49.9 EUR, approved by dana",
        "refused: steps see the context read-only",
        "11: step_context_set  {'order_id': 'order-7', 'customer': 'ada', 'currency': 'EUR', "
        "'approved_by': 'dana'}",
    ],
    # every run woke by itself (no resume() in the script) and returned its value
    "actors/embedded.py": [
        "order-1: {'order_id': 'order-1', 'reserved': True, 'shipped': True}",
        "order-2: {'order_id': 'order-2', 'reserved': True, 'shipped': True}",
        "order-3: {'order_id': 'order-3', 'reserved': True, 'approved_by': 'dana', "
        "'shipped': True}",
        "5: workflow_suspended\n   6: workflow_resumed\n   7: sleep_completed",
        "9: workflow_suspended\n  10: hook_received\n  11: workflow_resumed",
        "14: workflow_completed",
    ],
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
    for expected in EXPECTED.get(f"{example.parent.name}/{example.name}", []):
        assert expected in proc.stdout, (expected, proc.stdout)
    assert "Traceback" not in proc.stdout


def test_there_are_examples() -> None:
    names = {p.name for p in EXAMPLES if p.parent.name == "durable"}
    assert {"01_basic_workflow.py", "03_retries.py", "05_event_log.py", "06_idempotency.py",
            "07_hooks.py", "08_cancellation.py"} <= names
    assert any(p.parent.name == "transient" for p in EXAMPLES)
    assert all(p.is_file() for p in EXAMPLES)
    assert not set(EXPECTED) - {f"{p.parent.name}/{p.name}" for p in EXAMPLES}

"""What ``import pyworkflow`` loads, and the lazy exports that keep it cheap (``_public``).

Each check runs in a fresh interpreter: this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Loaded on first use, never by ``import pyworkflow``: the runtime (engine, run owner, actors
# and asyncio), child workflows and continue-as-new, schedules (cronsim, zoneinfo), every
# storage backend and the storage port, the dashboard, stdlib logging (the Kafka log relay),
# structlog (the first log line), secrets/hashlib (ids are made at run time).
NOT_AT_IMPORT = [
    "asyncio",
    "cronsim",
    "hashlib",
    "logging",
    "pyworkflow._execution._children",
    "pyworkflow._execution._continuation",
    "pyworkflow._execution._engine",
    "pyworkflow._execution._owner",
    "pyworkflow._execution._tree",
    "pyworkflow._log_relay",
    "pyworkflow._schedule_api",
    "pyworkflow._core._schedule",
    "pyworkflow.actors",
    "pyworkflow.dashboard",
    "pyworkflow.storage._file",
    "pyworkflow.storage._kafka",
    "pyworkflow.storage._memory",
    "pyworkflow.storage._port",
    "secrets",
    "structlog",
    "zoneinfo",
]


def _run(code: str) -> object:
    """Run ``code`` in a fresh interpreter; it prints one JSON value, returned here."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_pyworkflow_leaves_the_runtime_unloaded() -> None:
    loaded = _run("import sys, pyworkflow; print(__import__('json').dumps(sorted(sys.modules)))")
    assert isinstance(loaded, list)
    assert "pyworkflow._execution._workflow" in loaded  # the check itself sees what is loaded
    early = sorted(
        m for m in loaded for lazy in NOT_AT_IMPORT if m == lazy or m.startswith(f"{lazy}.")
    )
    assert early == []


def test_defining_a_workflow_loads_no_engine_and_starting_one_does() -> None:
    code = (
        "import json, sys, anyio, pyworkflow\n"
        "@pyworkflow.step()\n"
        "async def add(x: int) -> int:\n"
        "    return x + 1\n"
        "@pyworkflow.workflow()\n"
        "async def flow(x: int) -> int:\n"
        "    return await add(x)\n"
        "defined = '_execution._engine' in ' '.join(sys.modules)\n"
        "async def main() -> object:\n"
        "    run_id = await pyworkflow.start(flow, 1)\n"
        "    return (await pyworkflow.get_workflow_run(run_id)).result\n"
        "result = anyio.run(main)\n"
        "print(json.dumps([defined, 'pyworkflow._execution._engine' in sys.modules, result]))\n"
    )
    assert _run(code) == [False, True, 2]


def test_lazy_exports_are_listed_and_report_the_public_path() -> None:
    code = (
        "import json, pyworkflow, pyworkflow.storage\n"
        "listed = set(pyworkflow.__all__) <= set(dir(pyworkflow))\n"
        "listed = listed and set(pyworkflow.storage.__all__) - {'KafkaStorageBackend'}"
        " <= set(dir(pyworkflow.storage))\n"
        "from pyworkflow import LocalScheduler, Schedule, continue_as_new\n"
        "from pyworkflow.storage import FileStorageBackend, StorageBackend\n"
        "owners = [o.__module__ for o in (LocalScheduler, Schedule, continue_as_new)]\n"
        "owners += [o.__module__ for o in (FileStorageBackend, StorageBackend)]\n"
        "owners.append(pyworkflow.actors.Supervisor.__module__)  # no import pyworkflow.actors\n"
        "print(json.dumps([listed, owners, pyworkflow.Schedule is Schedule]))\n"
    )
    owners = ["pyworkflow"] * 3 + ["pyworkflow.storage"] * 2 + ["pyworkflow.actors"]
    assert _run(code) == [True, owners, True]


def test_exceptions_report_the_public_path_before_any_access() -> None:
    # Recorded failures name their class by __module__: exceptions are never lazy exports.
    code = (
        "import json, pyworkflow, pyworkflow._exceptions as e\n"
        "print(json.dumps(sorted({getattr(e, n).__module__ for n in e.__all__})))\n"
    )
    assert _run(code) == ["pyworkflow"]


def test_an_unknown_name_is_an_attribute_error() -> None:
    import pyworkflow
    import pyworkflow.storage

    with pytest.raises(AttributeError, match="module 'pyworkflow' has no attribute 'nope'"):
        pyworkflow.nope  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(pyworkflow.storage, "MemoryBackend")

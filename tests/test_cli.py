"""The ``pyworkflow`` command line, run as the real console script in subprocesses.

Runs are prepared in-process (tests/cli_app.py) on a file storage under tmp_path, or on
Kafka for the tests marked ``kafka``; every check then goes through ``pyworkflow ...``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import pyworkflow.storage
from pyworkflow import get_workflow_chain, start
from pyworkflow.storage import FileStorageBackend, StorageBackend
from tests import cli_app

ROOT = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).parent / "pyworkflow"
APP = "tests.cli_app"
TIMEOUT = 60


def cli(
    *args: str, storage: str | None = None, stdin: str | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``pyworkflow *args`` from the repository root (so ``--app tests.cli_app`` imports)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWORKFLOW_")}
    if storage is not None:
        env["PYWORKFLOW_STORAGE"] = storage
    return subprocess.run(
        [str(EXE), *args],
        cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def one_error_line(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """Assert the exit code and that stderr is one ``error: ...`` line naming ``needles``."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


@dataclass(frozen=True)
class Runs:
    """Runs prepared in one storage, by what they are doing."""

    url: str
    sleeping: str  # suspended on a 1-hour sleep
    napping: str  # suspended on a sleep that is due after NAP seconds
    waiting: str  # suspended on the "approval" hook
    done: str  # completed
    failed: str  # failed with ValueError


NAP = 0.3


async def prepare(storage: StorageBackend, url: str) -> Runs:
    return Runs(
        url=url,
        sleeping=await start(cli_app.napper, "o-sleep", 3600, storage=storage),
        napping=await start(cli_app.napper, "o-nap", NAP, storage=storage),
        waiting=await start(cli_app.approval, "o-wait", storage=storage),
        done=await start(cli_app.napper, "o-done", 0, storage=storage),
        failed=await start(cli_app.failing, "o-fail", storage=storage),
    )


def prepare_file(path: Path) -> Runs:
    async def go() -> Runs:
        return await prepare(FileStorageBackend(path, durability="none"), f"file:{path}")

    return anyio.run(go)


def prepare_kafka(bootstrap: str, prefix: str) -> Runs:
    async def go() -> Runs:
        backend = pyworkflow.storage.KafkaStorageBackend  # lazily exported (needs aiokafka)
        async with backend(bootstrap, topic_prefix=prefix) as storage:
            return await prepare(storage, f"kafka://{bootstrap}?prefix={prefix}")

    return anyio.run(go)


@pytest.fixture
def runs(tmp_path: Path) -> Runs:
    return prepare_file(tmp_path / "data")


@pytest.fixture(scope="module")
def shared_runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Runs that read-only tests share (nothing may change them)."""
    return prepare_file(tmp_path_factory.mktemp("cli") / "data")


@pytest.fixture
def kafka_runs(kafka_bootstrap: str, kafka_topic_prefix: str) -> Runs:
    pytest.importorskip("aiokafka")
    return prepare_kafka(kafka_bootstrap, kafka_topic_prefix)


# -- help, usage, demo (no storage needed) ------------------------------------------------
COMMANDS = [
    [], ["runs"], ["runs", "list"], ["runs", "show"], ["events"], ["resume"], ["cancel"],
    ["hooks"], ["hooks", "list"], ["hooks", "send"], ["run"], ["demo"],
]  # fmt: skip


def test_help_of_every_command_lists_exit_codes() -> None:
    for command in COMMANDS:
        proc = cli(*command, "--help", storage="memory")
        assert proc.returncode == 0, (command, proc.stderr)
        assert "usage: pyworkflow" in proc.stdout
        assert "exit codes:" in proc.stdout and "4    conflict" in proc.stdout, command


def test_usage_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    one_error_line(cli("runs", "lst", storage="memory"), 2, "invalid choice", "lst")
    one_error_line(cli(storage="memory"), 2, "required")
    one_error_line(cli("runs", "list", "--limit", "0"), 2, "'0'")
    one_error_line(cli("runs", "list", storage="ftp://x"), 2, "ftp://x", "file:PATH")
    one_error_line(cli("runs", "list", storage="file:x?fsync=1"), 2, "fsync")
    one_error_line(cli("runs", "list", storage="kafka://nohost"), 2, "kafka://nohost")
    one_error_line(cli("runs", "list", "--app", "no_such_module_xyz"), 2, "no_such_module_xyz")
    one_error_line(cli("runs", "list", "--app", "tests.cli_app:nope"), 2, "nope")


def test_an_unreachable_broker_is_one_error_line() -> None:
    pytest.importorskip("aiokafka")
    proc = cli("runs", "list", storage="kafka://127.0.0.1:1")
    one_error_line(proc, 1, "127.0.0.1:1", "cannot reach")


def test_demo_wakes_the_run_by_itself(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    began = time.monotonic()
    proc = cli("demo", "--data", str(data), "--wait", "0.5", storage="memory")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - began < 20
    match = re.search(r"run_[0-9a-f]{16}", proc.stdout)
    assert match is not None, proc.stdout
    events = as_json(cli("events", match.group(), "--json", storage=f"file:{data}"))
    types = [e["type"] for e in events]
    # The sleep and the hook each suspend the run and it is woken without any resume().
    assert types == [
        "workflow_started", "step_started", "step_completed", "step_started", "step_completed",
        "sleep_started", "workflow_suspended", "workflow_resumed", "sleep_completed",
        "hook_created", "workflow_suspended", "hook_received", "workflow_resumed",
        "step_started", "step_completed", "workflow_completed",
    ]  # fmt: skip
    due = datetime.fromisoformat(events[5]["resume_at"])
    woke = datetime.fromisoformat(events[7]["timestamp"])
    assert timedelta(0) <= woke - due < timedelta(seconds=2)  # by the timer, when due
    assert events[-1]["result"]["approved_by"] == "dana"
    # What it narrated as it happened is the log, in its order.
    narrated = re.findall(r"^  \+ *[0-9.]+s  ([a-z_]+) ", proc.stdout, flags=re.MULTILINE)
    assert narrated == types
    assert "woke up" in proc.stdout and "approval received" in proc.stdout
    assert "shipped" in proc.stdout.split("sup.result(")[1]


def test_memory_storage_starts_empty() -> None:
    proc = cli("runs", "list", storage="memory")
    assert proc.returncode == 0 and "no runs in memory" in proc.stdout
    assert as_json(cli("runs", "list", "--json", storage="memory")) == {
        "runs": [], "next_cursor": None,
    }  # fmt: skip


# -- read-only commands ---------------------------------------------------------------------
def test_runs_list_table_json_and_filters(shared_runs: Runs) -> None:
    r = shared_runs
    table = cli("runs", "list", storage=r.url)
    assert table.returncode == 0 and table.stdout.startswith("RUN ID")
    for run_id in (r.sleeping, r.waiting, r.done, r.failed):
        assert run_id in table.stdout
    assert "ValueError: cannot ship o-fail" in table.stdout
    doc = as_json(cli("runs", "list", "--json", storage=r.url))
    assert {run["run_id"] for run in doc["runs"]} >= {r.sleeping, r.waiting, r.done, r.failed}
    suspended = as_json(cli("--json", "runs", "list", "--status", "suspended", storage=r.url))
    assert {run["status"] for run in suspended["runs"]} == {"suspended"}
    only = as_json(cli("runs", "list", "--workflow", "cli.approval", "--json", storage=r.url))
    assert [run["run_id"] for run in only["runs"]] == [r.waiting]
    page = as_json(cli("runs", "list", "--limit", "2", "--json", storage=r.url))
    assert len(page["runs"]) == 2 and page["next_cursor"]


def test_runs_show_tells_what_a_run_waits_for(shared_runs: Runs) -> None:
    r = shared_runs
    sleeping = cli("runs", "show", r.sleeping, storage=r.url)
    assert sleeping.returncode == 0
    assert "status:    suspended" in sleeping.stdout
    assert "waiting:   sleep (checkpoint 2) until" in sleeping.stdout
    waiting = cli("runs", "show", r.waiting, storage=r.url).stdout
    assert f"hook 'approval' (checkpoint 2), token {r.waiting}:hook_" in waiting
    done = cli("runs", "show", r.done, storage=r.url).stdout
    assert '"order_id":"o-done"' in done and "status:    completed" in done
    failed = cli("runs", "show", r.failed, storage=r.url).stdout
    assert "error:     ValueError: cannot ship o-fail" in failed
    doc = as_json(cli("runs", "show", r.sleeping, "--json", storage=r.url))
    assert doc["status"] == "suspended" and doc["event_count"] == 5
    assert doc["waiting"][0]["kind"] == "sleep" and doc["waiting"][0]["due_in_seconds"] > 3000
    one_error_line(cli("runs", "show", "run_missing", storage=r.url), 3, "run_missing")


def test_runs_show_and_list_show_a_chain(tmp_path: Path) -> None:
    path = tmp_path / "data"

    async def go() -> list[str]:
        storage = FileStorageBackend(path, durability="none")
        head = await start(cli_app.relay, 3, storage=storage)
        return [r.run_id for r in await get_workflow_chain(head, storage=storage)]

    first, middle, last = anyio.run(go)
    url = f"file:{path}"
    shown = cli("runs", "show", middle, storage=url)
    assert shown.returncode == 0, shown.stderr
    assert "status:         continued_as_new" in shown.stdout
    assert f"continued_from: {first}" in shown.stdout
    assert f"continued_to:   {last}" in shown.stdout
    doc = as_json(cli("runs", "show", last, "--json", storage=url))
    assert doc["continued_from_run_id"] == middle and doc["continued_to_run_id"] is None
    listed = cli("runs", "list", storage=url).stdout
    assert f"continued as {middle}" in listed and f"continued as {last}" in listed
    events = cli("events", first, storage=url).stdout
    assert f"workflow_continued_as_new  new_run_id={middle}" in events
    resumed = cli("resume", first, storage=url)
    assert f"already continued_as_new (the chain goes on as run {middle})" in resumed.stdout


def test_runs_show_shows_a_runs_children_and_its_parent(tmp_path: Path) -> None:
    path = tmp_path / "data"

    async def go() -> tuple[str, str]:
        storage = FileStorageBackend(path, durability="none")
        parent = await start(cli_app.tree, "o-7", storage=storage)
        (child,) = await storage.get_children(parent)
        return parent, child.run_id

    parent, child = anyio.run(go)
    url = f"file:{path}"
    shown = cli("runs", "show", parent, storage=url)
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())  # the columns' width depends on the longest key
    assert f"child: {child} cli.sprout suspended" in text
    assert f"waiting: child workflow 'cli.sprout', run {child} (checkpoint 1)" in text
    kid_text = " ".join(cli("runs", "show", child, storage=url).stdout.split())
    assert f"parent: {parent} (nesting depth 1)" in kid_text
    doc = as_json(cli("runs", "show", parent, "--json", storage=url))
    assert doc["children"] == [
        {"run_id": child, "workflow_name": "cli.sprout", "status": "suspended"}
    ]
    assert doc["waiting"][0]["kind"] == "child_workflow"
    kid = as_json(cli("runs", "show", child, "--json", storage=url))
    assert kid["parent_run_id"] == parent and kid["nesting_depth"] == 1


def test_events_table_and_flat_json(shared_runs: Runs) -> None:
    r = shared_runs
    table = cli("events", r.done, storage=r.url)
    assert table.returncode == 0
    assert [ln.split()[3] for ln in table.stdout.splitlines()[1:]][-1] == "workflow_completed"
    events = as_json(cli("events", r.done, "--json", storage=r.url))
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "workflow_started" and events[0]["workflow_name"] == "cli.napper"
    completed = [e for e in events if e["type"] == "step_completed"]
    assert completed[0]["result"] == {"order_id": "o-done", "prepared": True}
    one_error_line(cli("events", "run_nope", storage=r.url), 3, "run_nope")


def test_hooks_list(shared_runs: Runs) -> None:
    r = shared_runs
    hooks = as_json(cli("hooks", "list", "--json", storage=r.url))
    assert [(h["run_id"], h["hook_name"], h["status"]) for h in hooks] == [
        (r.waiting, "approval", "pending")
    ]
    table = cli("hooks", "list", "--run", r.waiting, storage=r.url)
    assert table.stdout.startswith("HOOK") and hooks[0]["token"] in table.stdout
    assert "no hooks for run" in cli("hooks", "list", "--run", r.done, storage=r.url).stdout
    assert as_json(cli("hooks", "list", "--status", "received", "--json", storage=r.url)) == []
    one_error_line(cli("hooks", "list", "--run", "run_nope", storage=r.url), 3, "run_nope")


def test_default_storage_comes_from_the_environment(shared_runs: Runs) -> None:
    proc = cli("runs", "show", shared_runs.done, "--json", storage=shared_runs.url)
    assert as_json(proc)["run_id"] == shared_runs.done


# -- commands that change runs ----------------------------------------------------------------
def test_resume_needs_the_app_and_continues_a_due_run(runs: Runs) -> None:
    one_error_line(cli("resume", runs.napping, storage=runs.url), 3, "cli.napper", "--app")
    not_due = cli("resume", runs.sleeping, "--app", APP, storage=runs.url)
    assert not_due.returncode == 0 and "not due yet" in not_due.stdout
    time.sleep(NAP)
    doc = as_json(cli("resume", runs.napping, "--app", APP, "--json", storage=runs.url))
    assert doc["status"] == "completed" and doc["result"]["finished"] is True
    again = cli("resume", runs.napping, "--app", APP, storage=runs.url)
    assert again.returncode == 0 and "already completed" in again.stdout


def test_cancel_without_app_records_it_and_resume_runs_the_cleanup(runs: Runs) -> None:
    proc = cli("cancel", runs.sleeping, "--reason", "customer left", storage=runs.url)
    assert proc.returncode == 0, proc.stderr
    assert "recorded" in proc.stdout and "--app" in proc.stdout
    shown = as_json(cli("runs", "show", runs.sleeping, "--json", storage=runs.url))
    assert shown["cancellation_requested"] and shown["status"] == "suspended"
    doc = as_json(cli("--json", "resume", runs.sleeping, "--app", APP, storage=runs.url))
    assert doc["status"] == "cancelled" and doc["cancellation_reason"] == "customer left"
    events = as_json(cli("events", runs.sleeping, "--json", storage=runs.url))
    assert "cli.undo" in [e.get("step_name") for e in events]  # the shielded cleanup ran
    one_error_line(cli("cancel", runs.sleeping, storage=runs.url), 4, "already cancelled")


def test_cancel_with_app_wakes_the_run(runs: Runs) -> None:
    proc = cli("cancel", runs.waiting, "--app", APP, storage=runs.url)
    assert proc.returncode == 0 and "cancelled" in proc.stdout, proc.stderr
    one_error_line(cli("cancel", "run_nope", storage=runs.url), 3, "run_nope")


def test_hooks_send(runs: Runs) -> None:
    token = as_json(cli("hooks", "list", "--json", storage=runs.url))[0]["token"]
    one_error_line(cli("hooks", "send", token, "--json", "{bad", storage=runs.url), 2, "{bad")
    one_error_line(cli("hooks", "send", "nope", storage=runs.url), 2, "'nope'")
    unknown = f"{runs.waiting}:hook_{'0' * 32}"
    one_error_line(cli("hooks", "send", unknown, storage=runs.url), 3, "unknown hook token")
    sent = cli("--json", "hooks", "send", token, "--json", "-", "--app", APP,
               stdin='{"approved": true}', storage=runs.url)  # fmt: skip
    doc = as_json(sent)
    assert doc["status"] == "completed" and doc["result"]["extra"] == {"approved": True}
    one_error_line(cli("hooks", "send", token, storage=runs.url), 4, "already received")


def test_hooks_send_without_app_records_the_payload(runs: Runs) -> None:
    token = as_json(cli("hooks", "list", "--json", storage=runs.url))[0]["token"]
    proc = cli("hooks", "send", token, "--json", '{"n": 1}', storage=runs.url)
    assert proc.returncode == 0 and "payload recorded" in proc.stdout, proc.stderr
    doc = as_json(cli("resume", runs.waiting, "--app", APP, "--json", storage=runs.url))
    assert doc["status"] == "completed" and doc["result"]["extra"] == {"n": 1}


def test_a_locked_run_is_a_conflict(runs: Runs) -> None:
    async def while_locked() -> subprocess.CompletedProcess[str]:
        storage = FileStorageBackend(runs.url.removeprefix("file:"))
        async with storage.lock_run(runs.napping):
            return await anyio.to_thread.run_sync(
                lambda: cli("resume", runs.napping, "--app", APP, storage=runs.url)
            )

    time.sleep(NAP)
    one_error_line(anyio.run(while_locked), 4, runs.napping)


def test_debug_prints_the_traceback_and_logs_follow_the_flags(runs: Runs) -> None:
    proc = cli("--debug", "runs", "show", "run_nope", storage=runs.url)
    assert proc.returncode == 3 and "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no run 'run_nope'")
    time.sleep(NAP)
    logged = cli("resume", runs.napping, "--app", APP, "--log-level", "info",
                 "--log-format", "json", storage=runs.url)  # fmt: skip
    assert logged.returncode == 0, logged.stderr
    records = [json.loads(line) for line in logged.stderr.splitlines()]
    assert "workflow_completed" in {r["event"] for r in records}
    assert all(r["run_id"] == runs.napping for r in records if "run_id" in r)


# -- events --follow ------------------------------------------------------------------------
def _follow(run_id: str, url: str, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWORKFLOW_")}
    return subprocess.Popen(
        [str(EXE), "events", run_id, "--follow", "--interval", "0.05", *extra],
        cwd=ROOT, env={**env, "PYWORKFLOW_STORAGE": url},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _read_until(proc: subprocess.Popen[str], needle: str, seen: list[str]) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, f"follower ended before {needle!r}: {seen} {proc.communicate()}"
        seen.append(line)
        if needle in line:
            return
    pytest.fail(f"no {needle!r} within {TIMEOUT}s: {seen}")


def follow_sees_another_process(runs: Runs) -> None:
    token = as_json(cli("hooks", "list", "--run", runs.waiting, "--json", storage=runs.url))
    follower = _follow(runs.waiting, runs.url, "--json")
    try:
        seen: list[str] = []
        _read_until(follower, '"workflow_suspended"', seen)
        sent = cli("hooks", "send", token[0]["token"], "--json", '{"ok": 1}', "--app", APP,
                   storage=runs.url)  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        _read_until(follower, '"workflow_completed"', seen)
        assert follower.wait(timeout=TIMEOUT) == 0
    finally:
        follower.kill()
        follower.communicate()
    types = [json.loads(line)["type"] for line in seen]
    assert types[-4:] == ["workflow_resumed", "step_started", "step_completed",
                          "workflow_completed"]  # fmt: skip
    assert "hook_received" in types


def test_events_follow_sees_an_event_from_another_process(runs: Runs) -> None:
    follow_sees_another_process(runs)


def test_events_follow_stops_on_ctrl_c(runs: Runs) -> None:
    follower = _follow(runs.sleeping, runs.url)
    try:
        _read_until(follower, "workflow_suspended", [])
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=TIMEOUT)
    finally:
        follower.kill()
    assert follower.returncode == 130 and err.strip() == "interrupted"


# -- run: a supervisor for the app's workflows -------------------------------------------------
def _host(url: str, *extra: str, app_env: bool = False) -> subprocess.Popen[str]:
    """``pyworkflow run`` on ``url``, returned once it says it is hosting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWORKFLOW_")}
    env["PYWORKFLOW_STORAGE"] = url
    app = ["--app", APP]
    if app_env:
        env["PYWORKFLOW_APP"] = APP
        app = []
    proc = subprocess.Popen(
        [str(EXE), "run", *app, "--poll-interval", "0.1", *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _stderr_until(proc, "pyworkflow run: hosting")
    return proc


def _stderr_until(proc: subprocess.Popen[str], needle: str) -> str:
    assert proc.stderr is not None
    seen: list[str] = []
    while True:
        line = proc.stderr.readline()
        assert line, f"pyworkflow run ended before {needle!r}: {seen} {proc.communicate()}"
        seen.append(line)
        if needle in line:
            return line


def _stop(
    proc: subprocess.Popen[str], signum: int, timeout: float = TIMEOUT
) -> tuple[int, str, str]:
    """Send ``signum`` and wait; returns (exit code, stdout, rest of stderr)."""
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _get_run(path: Path, run_id: str) -> Any:
    return anyio.run(FileStorageBackend(path).get_run, run_id)


def _events(path: Path, run_id: str) -> list[Any]:
    return anyio.run(lambda: FileStorageBackend(path).read(run_id))


def _until_finished(path: Path, run_id: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = _get_run(path, run_id)
        if run.status.is_finished:
            return run
        time.sleep(0.05)
    pytest.fail(f"run {run_id} still {run.status.value} after {timeout}s")


def _started(path: Path, wf: Any, *args: Any) -> str:
    """Start a run in this process (not the host's) and leave it where it suspends."""
    return anyio.run(lambda: start(wf, *args, storage=FileStorageBackend(path)))


def test_run_wakes_what_other_processes_left_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    data, url = tmp_path / "data", f"file:{tmp_path / 'data'}"
    napping = _started(data, cli_app.napper, "o-nap", 0.5)
    waiting = _started(data, cli_app.approval, "o-wait")
    assert _get_run(data, napping).status.value == "suspended"
    host = _host(url, app_env=True)
    try:
        # A sleep that another process started ends by itself while the host is up.
        assert _until_finished(data, napping).status.value == "completed"
        assert [e.type.value for e in _events(data, napping)][-2:] == [
            "step_completed", "workflow_completed",
        ]  # fmt: skip
        # A payload recorded by a process without the code: the host runs the rest.
        token = as_json(cli("hooks", "list", "--run", waiting, "--json", storage=url))[0]
        sent = cli("hooks", "send", token["token"], "--json", '{"ok": 1}', storage=url)
        assert sent.returncode == 0 and "payload recorded" in sent.stdout, sent.stderr
        run = _until_finished(data, waiting)
        assert run.status.value == "completed" and run.result["extra"] == {"ok": 1}
        code, out, err = _stop(host, signal.SIGINT)
    finally:
        host.kill()
        host.communicate()
    assert code == 0, err
    assert out == ""  # stdout belongs to the user's program
    assert err.startswith("pyworkflow run: SIGINT: stopping"), err
    assert "Traceback" not in err


@pytest.mark.parametrize("loop", ["trio", "asyncio"])
def test_sigterm_lets_the_running_step_finish_then_exits_0(tmp_path: Path, loop: str) -> None:
    data, gate = tmp_path / "data", tmp_path / "gate"
    run_id = _started(data, cli_app.gated, "o-gate", str(gate), 0.2)
    host = _host(f"file:{data}", "--grace-period", "20", "--loop", loop)
    try:
        while not Path(f"{gate}.entered").exists():  # the host woke the run: step running
            time.sleep(0.02)
        host.send_signal(signal.SIGTERM)
        _stderr_until(host, "SIGTERM: stopping")
        time.sleep(0.3)
        assert host.poll() is None  # it waits for the step
        gate.write_text("opened")
        began = time.monotonic()
        assert host.wait(timeout=TIMEOUT) == 0
        assert time.monotonic() - began < 10  # when the step ended, not at the grace period
    finally:
        host.kill()
        host.communicate()
    events = _events(data, run_id)
    completed = [e for e in events if e.type.value == "step_completed"]
    assert [e.step_name for e in completed][1] == "cli.pass_gate"
    assert json.loads(bytes(completed[1].result)) == "opened"
    assert Path(f"{gate}.entered").read_text() == "entered\n"  # it ran once
    # No new step started after the signal: the run is left for the next host...
    assert events[-1].type.value == "step_completed"
    assert _get_run(data, run_id).status.value == "running"
    host = _host(f"file:{data}", "--loop", loop)
    try:
        deadline = time.monotonic() + TIMEOUT
        while _get_run(data, run_id).status.value != "completed":
            assert time.monotonic() < deadline, "the next host never finished the run"
            time.sleep(0.05)
    finally:
        _stop(host, signal.SIGINT)
    # ...which finishes it without running the gate step again.
    assert Path(f"{gate}.entered").read_text() == "entered\n"


def test_a_step_past_the_grace_period_is_left_for_the_next_host(tmp_path: Path) -> None:
    data, url, gate = tmp_path / "data", f"file:{tmp_path / 'data'}", tmp_path / "gate"
    run_id = _started(data, cli_app.gated, "o-late", str(gate), 0.2)
    host = _host(url, "--grace-period", "0.5")
    try:
        while not Path(f"{gate}.entered").exists():
            time.sleep(0.02)
        began = time.monotonic()
        code, _, err = _stop(host, signal.SIGTERM)
        assert code == 0, err
        assert time.monotonic() - began < 10
    finally:
        host.kill()
        host.communicate()
    types = [e.type.value for e in _events(data, run_id)]
    assert types[-1] == "step_started" and _get_run(data, run_id).status.value == "running"
    gate.write_text("later")
    second = _host(url)
    try:
        run = _until_finished(data, run_id)
        code, _, _ = _stop(second, signal.SIGTERM)
    finally:
        second.kill()
        second.communicate()
    assert code == 0 and run.status.value == "completed" and run.result["extra"] == "later"
    assert Path(f"{gate}.entered").read_text() == "entered\n" * 2  # in flight: ran again


@pytest.mark.parametrize("loop", ["trio", "asyncio"])
def test_a_second_signal_stops_run_at_once_with_130(tmp_path: Path, loop: str) -> None:
    data, gate = tmp_path / "data", tmp_path / "gate"
    run_id = _started(data, cli_app.gated, "o-force", str(gate), 0.2)
    host = _host(f"file:{data}", "--loop", loop)
    try:
        while not Path(f"{gate}.entered").exists():
            time.sleep(0.02)
        host.send_signal(signal.SIGINT)
        _stderr_until(host, "SIGINT: stopping")
        code, _, err = _stop(host, signal.SIGTERM, timeout=10)  # not the 30 s grace period
    finally:
        host.kill()
        host.communicate()
    assert code == 130 and "SIGTERM again: stopping now" in err, err
    assert _get_run(data, run_id).status.value == "running"  # left to recover


def test_run_usage_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    url = f"file:{tmp_path / 'data'}"
    one_error_line(cli("run", storage=url), 2, "--app", "PYWORKFLOW_APP")
    one_error_line(cli("run", "--app", "no_such_module_xyz", storage=url), 2, "no_such_module_xyz")
    one_error_line(cli("run", "--app", "tests.cli_app:nope", storage=url), 2, "nope")
    one_error_line(cli("run", "--app", APP, storage="ftp://x"), 2, "ftp://x", "file:PATH")
    one_error_line(cli("run", "--app", APP, storage="file:x?fsync=1"), 2, "fsync")
    one_error_line(cli("run", "--app", APP, "--grace-period", "0", storage=url), 2, "'0'")
    one_error_line(cli("run", "--app", APP, "--max-active", "-1", storage=url), 2, "'-1'")


def test_worker_needs_kafka_storage_and_says_so(tmp_path: Path) -> None:
    url = f"file:{tmp_path / 'data'}"
    one_error_line(cli("worker", "--app", APP, storage=url), 2, "Kafka", "kafka://")
    one_error_line(cli("worker", storage=url), 2, "--app", "PYWORKFLOW_APP")
    one_error_line(
        cli("worker", "--app", APP, "--session-timeout", "0", storage=url), 2, "'0'"
    )
    helped = cli("worker", "--help")
    assert helped.returncode == 0 and "--session-timeout" in helped.stdout


# -- Kafka ----------------------------------------------------------------------------------
@pytest.mark.kafka
def test_kafka_read_commands(kafka_runs: Runs) -> None:
    r = kafka_runs
    doc = as_json(cli("runs", "list", "--json", storage=r.url))
    assert {run["run_id"] for run in doc["runs"]} == {
        r.sleeping, r.napping, r.waiting, r.done, r.failed,
    }  # fmt: skip
    shown = as_json(cli("runs", "show", r.waiting, "--json", storage=r.url))
    assert shown["waiting"][0]["kind"] == "hook"
    events = as_json(cli("events", r.done, "--json", storage=r.url))
    assert events[-1]["type"] == "workflow_completed"
    hooks = as_json(cli("hooks", "list", "--json", storage=r.url))
    assert [h["run_id"] for h in hooks] == [r.waiting]
    one_error_line(cli("runs", "show", "run_nope", storage=r.url), 3, "run_nope")


@pytest.mark.kafka
def test_kafka_control_commands(kafka_runs: Runs) -> None:
    r = kafka_runs
    proc = cli("cancel", r.sleeping, "--reason", "stop", storage=r.url)
    assert proc.returncode == 0 and "recorded" in proc.stdout, proc.stderr
    doc = as_json(cli("resume", r.sleeping, "--app", APP, "--json", storage=r.url))
    assert doc["status"] == "cancelled"
    doc = as_json(cli("resume", r.napping, "--app", APP, "--json", storage=r.url))
    assert doc["status"] == "completed"
    one_error_line(cli("cancel", r.done, storage=r.url), 4, "already completed")


@pytest.mark.kafka
def test_kafka_follow_and_hooks_send(kafka_runs: Runs) -> None:
    follow_sees_another_process(kafka_runs)


def test_the_cli_runs_without_the_kafka_extra(tmp_path: Path) -> None:
    """README command 1 installs pyworkflow without extras: aiokafka is absent there, and
    ``pyworkflow demo`` (every command but ``worker`` on Kafka) must not need it."""
    code = (
        "import runpy, sys; sys.modules['aiokafka'] = None; "  # as if it were not installed
        "sys.argv = ['pyworkflow', 'worker', '--app', 'app', '--storage', 'memory']; "
        "runpy.run_module('pyworkflow', run_name='__main__')"
    )
    (tmp_path / "app.py").write_text("")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env=env,
    )
    assert "ImportError" not in proc.stderr, proc.stderr
    assert "shares runs through Kafka" in proc.stderr  # the usage error, not a crash

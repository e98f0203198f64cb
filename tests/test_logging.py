"""Logs: structlog key-value events on stderr, bound to run and step; quiet by default."""

from __future__ import annotations

import json

import pytest

from pyworkflow import (
    ConfigurationError,
    RunStatus,
    configure,
    get_workflow_run,
    start,
    start_child_workflow,
    step,
    workflow,
)
from pyworkflow._logging import FollowingLogger, make_logger
from pyworkflow.storage import InMemoryStorageBackend


@step()
async def greet(name: str) -> str:
    return f"hi {name}"


@workflow(durable=True)
async def greeter(name: str) -> str:
    return await greet(name)


async def test_quiet_by_default(
    memory: InMemoryStorageBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    await start(greeter, "ada")
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")


async def test_console_lines_carry_run_and_step(
    memory: InMemoryStorageBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(log_level="debug")
    run_id = await start(greeter, "ada")
    out, err = capsys.readouterr()
    assert out == ""  # stdout belongs to the user's program
    lines = err.splitlines()
    assert any("workflow_started" in line and f"run_id={run_id}" in line for line in lines)
    step_lines = [line for line in lines if "step_completed" in line]
    assert step_lines and "step=greet" in step_lines[0] and f"run_id={run_id}" in step_lines[0]
    assert any("workflow_completed" in line and "workflow=greeter" in line for line in lines)


async def test_json_lines_for_log_collectors(
    memory: InMemoryStorageBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(log_level="info", log_format="json")
    run_id = await start(greeter, "ada")
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    completed = [r for r in records if r["event"] == "workflow_completed"]
    assert completed and completed[0]["run_id"] == run_id
    assert completed[0]["level"] == "info" and completed[0]["workflow"] == "greeter"
    assert all("timestamp" in r for r in records)
    assert not any(r["event"] == "step_completed" for r in records)  # debug, filtered out


@workflow(durable=True, name="log_kid")
async def log_kid(name: str) -> str:
    return await greet(name)


@workflow(durable=True, name="log_parent")
async def log_parent(name: str) -> str:
    return await start_child_workflow(log_kid, name)


async def test_a_parent_starting_a_child_logs_it_at_info(
    memory: InMemoryStorageBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    """The line of a child's start names the child's workflow beside the parent's (the
    run's logger has ``workflow`` bound: the same key given again failed the parent with
    TypeError at log level info)."""
    configure(log_level="info", log_format="json")
    run_id = await start(log_parent, "ada")
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED, run
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (line,) = [r for r in records if r["event"] == "child_workflow_started"]
    assert (line["workflow"], line["child_workflow"]) == ("log_parent", "log_kid")


def test_a_key_given_at_the_call_overrides_the_bound_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As structlog's bound loggers: the call's value wins, nothing is raised."""
    make_logger("info", "json").bind(where="bound").info("x", where="call")
    FollowingLogger(lambda: make_logger("info", "json")).bind(where="bound").info(
        "y", where="call"
    )
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(r["event"], r["where"]) for r in records] == [("x", "call"), ("y", "call")]


def test_bad_log_settings_are_clear_errors() -> None:
    with pytest.raises(ConfigurationError, match="'xml'"):
        configure(log_format="xml")

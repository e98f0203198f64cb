"""Logs: structlog key-value events on stderr, bound to run and step; quiet by default."""

from __future__ import annotations

import json

import pytest

from pyworkflow import ConfigurationError, configure, start, step, workflow
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


def test_bad_log_settings_are_clear_errors() -> None:
    with pytest.raises(ConfigurationError, match="'xml'"):
        configure(log_format="xml")

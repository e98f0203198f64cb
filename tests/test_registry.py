"""One definition a name: workflows, steps and typed hooks are found by the names in the log."""

from __future__ import annotations

import importlib
import runpy
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import msgspec
import pytest

from pyworkflow import ConfigurationError, define_hook, get_workflow_run, start
from pyworkflow._execution._registry import Registry
from pyworkflow.storage import InMemoryStorageBackend

from .isolation import isolated_registry

MODULE = """
from pyworkflow import step, workflow

@step()
async def {step}(x: int) -> int:
    return x * {factor}

@workflow(durable=True)
async def process(x: int) -> str:
    return "{module}: " + str(await {step}(x))
"""


@pytest.fixture
def names() -> Iterator[Registry]:
    with isolated_registry() as registry:
        yield registry


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path for the test's own modules, forgotten after the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("orders", "refunds", "billing"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def write(folder: Path, module: str, step: str = "double", factor: int = 2) -> Path:
    path = folder / f"{module}.py"
    path.write_text(textwrap.dedent(MODULE.format(step=step, factor=factor, module=module)))
    return path


async def test_a_second_workflow_under_a_taken_name_is_refused(
    names: Registry, modules: Path, memory: InMemoryStorageBackend
) -> None:
    write(modules, "orders")
    write(modules, "refunds", step="halve")
    orders = importlib.import_module("orders")
    with pytest.raises(ConfigurationError) as info:
        importlib.import_module("refunds")
    message = str(info.value)
    assert "workflow name 'process' is taken" in message
    assert "orders:process" in message and "refunds:process" in message
    assert "@workflow(name=...)" in message

    run_id = await start(orders.process, 5)  # the first definition still answers to the name
    run = await get_workflow_run(run_id)
    assert run is not None and run.result == "orders: 10"


def test_a_second_step_under_a_taken_name_is_refused(names: Registry, modules: Path) -> None:
    write(modules, "orders")
    importlib.import_module("orders")
    (modules / "billing.py").write_text(
        "from pyworkflow import step\n\n@step()\nasync def double(x: int) -> int:\n    return x\n"
    )
    with pytest.raises(ConfigurationError, match=r"step name 'double' is taken.*@step\(name="):
        importlib.import_module("billing")


def test_the_same_definition_again_is_not_a_second_one(names: Registry, modules: Path) -> None:
    path = write(modules, "orders")
    orders = importlib.import_module("orders")
    importlib.reload(orders)  # a reload
    runpy.run_path(str(path), run_name="__main__")  # python -m orders, then imported by name
    reloaded: ModuleType = importlib.reload(orders)
    assert names.workflow("process") is reloaded.process


class Approval(msgspec.Struct):
    approved: bool


class OtherApproval(msgspec.Struct):
    approved: bool


def test_a_typed_hook_name_stands_for_one_payload_type(names: Registry) -> None:
    define_hook("approval", Approval)
    define_hook("approval", Approval)  # the same definition: fine
    with pytest.raises(ConfigurationError) as info:
        define_hook("approval", OtherApproval)
    assert "test_registry:Approval" in str(info.value)
    assert "test_registry:OtherApproval" in str(info.value)
    assert names.hook_type("approval") is Approval

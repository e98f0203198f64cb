"""Decorated functions keep their signatures for type checkers (mypy --strict)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

SNIPPET = textwrap.dedent(
    """
    from typing import assert_type
    from pyworkflow import start, step, workflow

    @step(max_retries=2)
    async def add(x: int, y: int) -> int:
        return x + y

    @workflow(durable=True)
    async def flow(name: str) -> str:
        total = await add(1, 2)
        assert_type(total, int)
        return name * total

    async def keywords() -> None:
        assert_type(await add(x=1, y=2), int)  # parameter names survive too
        assert_type(await flow(name="n"), str)

    async def use() -> None:
        run_id = await start(flow, "x", idempotency_key="k")
        assert_type(run_id, str)
        await add("no", 2)  # E: wrong argument type
    """
)


def test_signatures_survive_decoration(tmp_path: Path) -> None:
    source = tmp_path / "usage.py"
    source.write_text(SNIPPET)
    out, err, _ = mypy_api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".mypy"), str(source)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out + err
    bad_line = next(i for i, line in enumerate(SNIPPET.splitlines(), 1) if "# E:" in line)
    assert f"usage.py:{bad_line}:" in errors[0]
    assert 'incompatible type "str"; expected "int"' in errors[0]

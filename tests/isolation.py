"""``isolated_registry()``: the process's registry of names, emptied for a block, as in a
process that imported only what the block imports (e.g. one example of several that reuse
the seed's names), and restored after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyworkflow._execution._registry import Registry, registry


@contextmanager
def isolated_registry() -> Iterator[Registry]:
    tables = (registry._workflows, registry._steps, registry._hook_types)
    saved = [dict(table) for table in tables]
    for table in tables:
        table.clear()
    try:
        yield registry
    finally:
        for table, before in zip(tables, saved, strict=True):
            table.clear()
            table.update(before)  # type: ignore[attr-defined]

"""Output of the command line: aligned tables for people, JSON for scripts.

Tables and ``key: value`` blocks go to stdout; times are shown in UTC (``...Z``). JSON output
is one document (``--json``), except ``events --follow --json`` which writes one event per
line (JSON Lines) as they arrive.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec

from .._core._events import Event, encode_event

__all__ = [
    "Printer",
    "event_details",
    "fmt_duration",
    "fmt_time",
    "fmt_value",
    "render_table",
]

_CELL_MAX = 72
_SKIP_DETAILS = frozenset({"step_id", "checkpoint", "traceback"})


def fmt_time(value: datetime | None) -> str:
    """``2026-01-31 12:00:05Z`` (UTC, to the second), or ``-``."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def fmt_duration(seconds: float) -> str:
    """``850ms``, ``4.2s``, ``3m 20s``, ``2h 5m``, ``3d 4h``."""
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    if seconds < 1:
        text = f"{seconds * 1000:.0f}ms"
    elif seconds < 60:
        text = f"{seconds:.1f}s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m {int(seconds % 60)}s"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)}h {int(seconds % 3600 // 60)}m"
    else:
        text = f"{int(seconds // 86400)}d {int(seconds % 86400 // 3600)}h"
    return sign + text


def fmt_value(value: Any, limit: int = _CELL_MAX) -> str:
    """A value as compact JSON, cut to ``limit`` characters."""
    if isinstance(value, msgspec.Raw):
        text = bytes(value).decode()
    else:
        text = msgspec.json.encode(value, enc_hook=repr).decode()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def event_details(event: Event) -> str:
    """The interesting fields of an event as ``key=value`` pairs, on one line."""
    parts: list[str] = []
    for name in event.__struct_fields__:
        if name in ("run_id", "sequence", "timestamp") or name in _SKIP_DETAILS:
            continue
        value = getattr(event, name)
        if value is None or value is msgspec.UNSET or value == ():
            continue
        if name == "hook_id" and hasattr(event, "token"):
            continue
        if isinstance(value, msgspec.Raw) and bytes(value) in (b"{}", b"[]"):
            continue
        if isinstance(value, datetime):
            parts.append(f"{name}={fmt_time(value)}")
        elif isinstance(value, str):
            parts.append(f"{name}={value}")
        else:
            parts.append(f"{name}={fmt_value(value, 48)}")
    return " ".join(parts)


def _cut(text: str, width: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    cells = [[_cut(c, _CELL_MAX) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *cells]:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


class Printer:
    """Writes results to stdout, as text or as JSON."""

    def __init__(self, *, as_json: bool, out: TextIO | None = None) -> None:
        self.as_json = as_json
        self.out = out if out is not None else sys.stdout

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def json(self, document: Any) -> None:
        """One JSON document, indented (datetimes as ISO 8601 strings)."""
        encoded = msgspec.json.encode(document, enc_hook=repr)
        self.line(msgspec.json.format(encoded, indent=2).decode())

    def events_json(self, events: Sequence[Event]) -> None:
        """Events as one JSON array of their flat stored form."""
        body = b",\n  ".join(encode_event(e) for e in events)
        self.line(("[\n  " + body.decode() + "\n]") if events else "[]")

    def event_json_line(self, event: Event) -> None:
        self.line(encode_event(event).decode())

    def event_row(self, event: Event) -> str:
        return (
            f"{event.sequence:>5}  {fmt_time(event.timestamp)}  "
            f"{event.type.value:<22}  {_cut(event_details(event), 100)}".rstrip()
        )

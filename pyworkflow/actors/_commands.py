"""Commands: what clients ask of a run's owner, as records on ``{prefix}.commands``.

The format is an API: any Kafka producer (another language, a connector) may start a run or
deliver a hook by writing one record. Record key: the run id (UTF-8), so a command lands on
the partition of ``{prefix}.commands`` whose number is the run's partition of
``{prefix}.events`` (same key, same partition count, Kafka's default partitioner). Record
value: one JSON object with ``"v": 1`` and a ``"type"``::

    {"v": 1, "type": "start", "run_id": "run_0123456789abcdef", "workflow": "order",
     "args": ["order-1", 99.5], "kwargs": {}, "idempotency_key": null}
    {"v": 1, "type": "resume_hook", "run_id": "run_...", "token": "run_...:hook_...",
     "payload": {"approved": true}}
    {"v": 1, "type": "cancel", "run_id": "run_...", "reason": "customer left"}
    {"v": 1, "type": "resume", "run_id": "run_..."}

``run_id`` is ``run_`` and 16 lowercase hex digits, chosen by the sender (for ``start``) or
taken from the run (the token of a hook starts with it). Every command is idempotent: a
``start`` of a run that exists, a ``cancel`` of a cancelled run, the same payload delivered
twice, each does nothing more the second time, so the owner may execute a command again after
a crash (commands are at-least-once; their effects are recorded once). A ``start`` whose
``idempotency_key`` another run holds starts nothing.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .._exceptions import ConfigurationError

__all__ = [
    "CancelCommand",
    "Command",
    "HookCommand",
    "ResumeCommand",
    "StartCommand",
    "decode_command",
    "encode_command",
]

FORMAT = 1
_RUN_ID = re.compile(r"run_[0-9a-f]{16}")


class _Base(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    v: int = FORMAT
    run_id: str


class StartCommand(_Base, frozen=True, kw_only=True, tag="start"):
    workflow: str
    args: msgspec.Raw = msgspec.Raw(b"[]")
    kwargs: msgspec.Raw = msgspec.Raw(b"{}")
    idempotency_key: str | None = None


class HookCommand(_Base, frozen=True, kw_only=True, tag="resume_hook"):
    token: str
    payload: msgspec.Raw = msgspec.Raw(b"null")


class CancelCommand(_Base, frozen=True, kw_only=True, tag="cancel"):
    reason: str | None = None


class ResumeCommand(_Base, frozen=True, kw_only=True, tag="resume"):
    pass


Command = StartCommand | HookCommand | CancelCommand | ResumeCommand

_decoder = msgspec.json.Decoder(Command)
_encoder = msgspec.json.Encoder()


def encode_command(command: Command) -> bytes:
    return _encoder.encode(command)


def decode_command(value: bytes) -> Command:
    """A command record's value, checked; ConfigurationError naming what is wrong."""
    try:
        command = _decoder.decode(value)
    except msgspec.DecodeError as exc:
        shown = value[:200].decode("utf-8", "replace")
        msg = f"command record {shown!r} is not a pyworkflow command: {exc}"
        raise ConfigurationError(msg) from None
    if command.v != FORMAT:
        msg = f"command format v={command.v} is not supported here (this version reads v=1)"
        raise ConfigurationError(msg)
    if not _RUN_ID.fullmatch(command.run_id):
        msg = f"command run_id {command.run_id!r}: expected 'run_' and 16 lowercase hex digits"
        raise ConfigurationError(msg)
    return command


def raw_json(value: Any, what: str) -> msgspec.Raw:
    """``value`` as raw JSON for a command (no pickle: JSON types only, or a clear error)."""
    try:
        return msgspec.Raw(msgspec.json.encode(value))
    except (TypeError, msgspec.EncodeError) as exc:
        msg = f"{what} {value!r} can't be sent as JSON: {exc}"
        raise ConfigurationError(msg) from None

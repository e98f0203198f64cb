"""Where FileStorageBackend keeps things, and the id checks that guard every path.

No string from a caller becomes part of a path before :func:`check_id` accepted it: ids are
1-200 characters of ``[A-Za-z0-9_.-]``, with no ``..`` and no leading dot (dot-files are the
backend's own temporary files). Idempotency keys are free text and are hashed instead.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ..._exceptions import ConfigurationError, InvalidTokenError

__all__ = ["Layout", "check_id", "is_id", "step_owner"]

_ID = re.compile(r"[A-Za-z0-9_.-]{1,200}")


def check_id(kind: str, value: object) -> str:
    """Return ``value`` if it is safe as a file name, else raise a clear error.

    Hook ids raise :class:`InvalidTokenError` (they come from tokens); other ids raise
    :class:`ConfigurationError`.
    """
    if isinstance(value, str) and is_id(value):
        return value
    shown = value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."
    msg = (
        f"invalid {kind} {shown!r} for FileStorageBackend: ids may only hold letters, digits, "
        "'_', '.' and '-' (1-200 characters, no '..', not starting with '.'); pass the id "
        "that pyworkflow returned"
    )
    if kind == "hook id":
        raise InvalidTokenError(msg)
    raise ConfigurationError(msg)


class Layout:
    """The folders of one storage directory (the seed's layout plus ``idempotency/``)::

    base_path/
    ├── runs/         {run_id}.json        run records (projections of the log, see below)
    ├── events/       {run_id}.jsonl       append-only event logs: the source of truth
    ├── steps/        {step_id}.json       step records
    ├── hooks/        {hook_id}.json       hook records
    ├── idempotency/  {sha256(key)}.json   idempotency claims: {"key": .., "run_id": ..}
    ├── schedules/    {schedule_id}.json   schedule records (``_schedules``)
    ├── .locks/       {run_id}.lock, {run_id}.append.lock   flock files
    ├── .due/         {YYYYMMDD}/{HHMM}/{due}_{run_id}     the due-runs index (``_file_due``)
    └── .created/     {YYYYMMDD}/{HHMM}.jsonl   runs by start time, for list_runs (``_created``)

    File paths are plain ``str`` (built on every append: ``pathlib`` costs microseconds).
    """

    def __init__(self, base_path: str | os.PathLike[str]) -> None:
        if not isinstance(base_path, str | os.PathLike) or not os.fspath(base_path):
            msg = (
                f"FileStorageBackend base_path {base_path!r} must be a non-empty path, "
                "e.g. FileStorageBackend('./workflow_data')"
            )
            raise ConfigurationError(msg)
        self.base = Path(os.path.abspath(base_path))  # immune to a later chdir
        root = str(self.base)
        self.runs = os.path.join(root, "runs")
        self.events = os.path.join(root, "events")
        self.steps = os.path.join(root, "steps")
        self.hooks = os.path.join(root, "hooks")
        self.idempotency = os.path.join(root, "idempotency")
        self.locks = os.path.join(root, ".locks")
        self.due = os.path.join(root, ".due")
        self.created = os.path.join(root, ".created")

    @property
    def folders(self) -> tuple[str, ...]:
        """The folders made on first use (``.due/`` is made by the due index itself)."""
        return (self.runs, self.events, self.steps, self.hooks, self.idempotency, self.locks)

    def run(self, run_id: str) -> str:
        return f"{self.runs}/{check_id('run id', run_id)}.json"

    def log(self, run_id: str) -> str:
        return f"{self.events}/{check_id('run id', run_id)}.jsonl"

    def step(self, step_id: str) -> str:
        return f"{self.steps}/{check_id('step id', step_id)}.json"

    def hook(self, hook_id: str) -> str:
        return f"{self.hooks}/{check_id('hook id', hook_id)}.json"

    def torn(self, run_id: str) -> str:
        """Where torn tails cut off a log are kept (a dot-file: never read as a log)."""
        return f"{self.events}/.{check_id('run id', run_id)}.jsonl.torn"

    def append_lock(self, run_id: str) -> str:
        return f"{self.locks}/{check_id('run id', run_id)}.append.lock"

    def run_lock(self, run_id: str) -> str:
        return f"{self.locks}/{check_id('run id', run_id)}.lock"

    def claim(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            msg = f"idempotency key {key!r} must be a non-empty string"
            raise ConfigurationError(msg)
        try:
            digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        except UnicodeEncodeError:
            msg = f"idempotency key {key!r} is not valid text (lone surrogates); pass a str"
            raise ConfigurationError(msg) from None
        return f"{self.idempotency}/{digest}.json"


def step_owner(step_id: str) -> str | None:
    """The run a step id belongs to, for ids the engine makes (``{run_id}.{checkpoint}``);
    None for any other shape."""
    run_id, dot, checkpoint = step_id.rpartition(".")
    if not dot or not checkpoint.isdigit() or not is_id(run_id):
        return None
    return run_id


def is_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None and ".." not in value and not value.startswith(".")

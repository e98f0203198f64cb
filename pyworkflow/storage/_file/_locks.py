"""A run's execution lock and idempotency claims, for FileStorageBackend.

* ``.locks/{run_id}.lock``: ``lock_run``'s right to execute a run, a ``flock`` taken without
  waiting and dropped by the OS when its holder dies. The holder writes its name into the
  file, so a refused caller learns who holds it.
* ``idempotency/{sha256(key)}.json``: the first claim of a key, published whole with
  ``os.link`` (which fails if the name exists), so the first claimer wins across processes.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import suppress

from ..._exceptions import CorruptRecordError, RunLockedError
from ._io import Offload, fsync_dir, try_flock, write_exclusive
from ._records import CLAIM, Claim, encode_record, load_record

__all__ = ["publish_claim", "read_claim", "release_run_lock", "take_run_lock"]

_HOLDER_TRIES = 25


def read_claim(path: str, key: str) -> str | None:
    """The run id holding ``key``'s claim at ``path``, or None if unclaimed."""
    claim = load_record(path, CLAIM)
    if claim is None:
        return None
    if claim.key != key:
        msg = f"idempotency claim {path} holds key {claim.key!r}, not {key!r}"
        raise CorruptRecordError(msg)
    return claim.run_id


def publish_claim(path: str, claim: Claim, *, sync: bool) -> str:
    """Publish ``claim`` at ``path`` unless a claim got there first; return the holder."""
    if write_exclusive(path, encode_record(claim), sync=sync):
        if sync:
            fsync_dir(os.path.dirname(path))
        return claim.run_id
    held = read_claim(path, claim.key)
    assert held is not None  # published whole by os.link, never deleted by us
    return held


def take_run_lock(path: str, run_id: str, *, inline: bool) -> int:
    """Take the lock file ``path`` without waiting; return the descriptor holding it.

    Raises:
        RunLockedError: held by someone else (named from the lock file's content).
        Offload: ``inline``, and the holder has not written its name yet.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        if not try_flock(fd, exclusive=True, wait=False):
            raise RunLockedError(run_id, holder=_holder(fd, path, inline=inline))
        os.ftruncate(fd, 0)
        os.pwrite(fd, _whoami().encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def release_run_lock(fd: int) -> None:
    with suppress(OSError):
        os.ftruncate(fd, 0)
    os.close(fd)


def _whoami() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def _holder(fd: int, path: str, *, inline: bool) -> str:
    """Who holds the lock on ``fd``, from what the holder wrote into the lock file.

    A holder writes its name just after it took the lock; if we look in between, the file
    is empty: look again a few times (in a worker thread, not on the event loop).
    """
    text = ""
    for attempt in range(_HOLDER_TRIES):
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        if text:
            break
        if inline:
            raise Offload
        if attempt + 1 < _HOLDER_TRIES:
            time.sleep(0.002)
    if text == _whoami():
        return f"another task of this process (lock file {path})"
    return f"{text or 'another process'} (lock file {path})"

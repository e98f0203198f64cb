"""OSError -> StorageError, at a backend's boundary: transient when a retry can cure it.

One classification for every backend that meets the OS (the file backend's reads and
writes; a Kafka client's sockets). :class:`~pyworkflow.TransientStorageError` tells the
run's owner that retrying the same call, after a backoff, may succeed; any other
:class:`~pyworkflow.StorageError` is permanent (the activation stops, the run stays
recoverable, someone has to look).

Transient (``TRANSIENT_ERRNOS``): a resource that frees itself or that an operator can free
while the owner backs off, and an operation that merely took too long:

* ``EAGAIN``/``EWOULDBLOCK``, ``EINTR``, ``EBUSY``: try again later, by definition.
* ``ENOSPC``, ``EDQUOT``: the disk or quota is full; a failed append is cut back off the log
  (nothing half-written stays), so the same append can be retried once there is room.
* ``ENOLCK``, ``ENFILE``, ``EMFILE``, ``ENOMEM``, ``ENOBUFS``: a kernel table, the process's
  file descriptors or memory are exhausted for now.
* ``ETIMEDOUT`` and the network's ``ECONNREFUSED``, ``ECONNRESET``, ``ECONNABORTED``,
  ``EPIPE``, ``EHOSTUNREACH``, ``ENETUNREACH``, ``ENETDOWN``: a peer or a route briefly
  gone (a broker restarting).

Permanent, among others: ``EACCES``/``EPERM`` (permissions), ``EROFS`` (read-only file
system), ``ENOENT``/``ENOTDIR`` (the folder was removed or is not a folder), and **``EIO``**.
``EIO`` usually means a failing device, or a file system that hit an error and went
read-only; worse, after a failed write-back Linux may mark the lost pages clean, so a retried
``fsync`` can report success for data that never reached the disk. Retrying would hide data
loss behind a later success; stopping with the error lets an operator check the disk before
the run is resumed.
"""

from __future__ import annotations

import errno

from .._exceptions import StorageError, TransientStorageError

__all__ = ["TRANSIENT_ERRNOS", "is_transient_oserror", "storage_error_from_oserror"]

_NAMES = (
    "EAGAIN EWOULDBLOCK EINTR EBUSY ENOSPC EDQUOT ENOLCK ENFILE EMFILE ENOMEM ENOBUFS "
    "ETIMEDOUT ECONNREFUSED ECONNRESET ECONNABORTED EPIPE EHOSTUNREACH ENETUNREACH ENETDOWN"
)
TRANSIENT_ERRNOS: frozenset[int] = frozenset(
    code for name in _NAMES.split() if (code := getattr(errno, name, None)) is not None
)
"""errno values of failures that a retry after a backoff can cure (see the module doc)."""

_NO_ROOM = frozenset(c for c in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if c is not None)


def is_transient_oserror(exc: OSError) -> bool:
    """Whether retrying the call that raised ``exc`` may succeed (see the module doc)."""
    return exc.errno in TRANSIENT_ERRNOS or isinstance(exc, ConnectionError | TimeoutError)


def storage_error_from_oserror(what: str, exc: OSError, remedy: str) -> StorageError:
    """The StorageError for ``exc``, transient or not; use ``raise ... from exc``.

    Args:
        what: what failed, e.g. ``"FileStorageBackend at '/data' could not append to run
            'run_1'"``.
        exc: the OSError.
        remedy: what to do about a permanent error the classification has no advice for,
            e.g. ``"check that the folder exists and is writable"``.
    """
    where = f" ({exc.filename})" if exc.filename else ""
    text = f"{what}: {exc.strerror or exc}{where}"
    if exc.errno in _NO_ROOM:
        msg = f"{text}; free disk space (or raise the quota): a retry succeeds once there is room"
        return TransientStorageError(msg)
    if is_transient_oserror(exc):
        return TransientStorageError(f"{text}; this is usually brief: a retry may succeed")
    if exc.errno == errno.EIO:
        msg = (
            f"{text}; the device reported an I/O error (a failing disk, or a file system "
            "that went read-only): check the disk and the kernel log before resuming the run"
        )
        return StorageError(msg)
    return StorageError(f"{text}; {remedy}")

"""Group commit for FileStorageBackend: one barrier makes the writes of many appends durable.

An append with ``durability="always"`` writes its lines (and, at a flush point, its record
files) and is acknowledged only after a *barrier* that began after those writes ended well.
Appends that are ready at the same moment (concurrent runs, concurrent branches of one run)
share a barrier: the first to ask leads it in a worker thread, the others wait for it, and
those who asked while it ran share the next one. Invariant: a waiter returns only when a
barrier that began after it joined its batch has finished, and raises if that barrier
failed (its append is then undone, never acknowledged).

A barrier is one of:

* **syncfs** (Linux 5.8+, where ``syncfs`` reports write-back errors): ``syncfs`` of the
  storage folder's file system writes every dirty file, folder and inode of it and flushes
  the device cache once, followed by an ``fsync`` of the folder, which flushes the device
  cache again: ``sync_filesystem`` writes the block device's metadata buffers (ext4 without a
  journal keeps inodes there) *after* its flush, so only that second flush covers them. Two
  device flushes per batch, however many files: on the benchmark VM a barrier over 100
  appended files costs ~1 ms where 100 ``fdatasync`` calls cost ~20 ms. Write-back errors
  are reported through a descriptor opened before the writes it covers (``open``), so none
  is missed; an error of another file on the same file system fails the batch too (safe:
  its appends are undone and may be retried). Its cost grows with whatever else is dirty on
  that file system, which another busy writer there makes slower.
* **each** (elsewhere): ``fdatasync`` of each file and ``fsync`` of each folder of the batch,
  in one thread; the batch still saves the folders' fsyncs shared by its appends.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
import threading
from collections.abc import Callable

import anyio

from ._io import SyncSet, fsync_dir

__all__ = ["GroupCommit", "syncfs_available"]

_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


def _load_syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs`` on Linux 5.8+ (earlier kernels return 0 even when write-back
    failed), else None."""
    if sys.platform != "linux":
        return None
    try:
        major, minor = (int(part) for part in platform.release().split(".")[:2])
        if (major, minor) < (5, 8):
            return None
        fn: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (ValueError, OSError, AttributeError):
        return None
    return fn


_SYNCFS = _load_syncfs()


def syncfs_available() -> bool:
    """Whether barriers use ``syncfs`` here."""
    return _SYNCFS is not None


class _Batch:
    """Appends waiting for one barrier."""

    __slots__ = ("done", "error", "paths")

    def __init__(self) -> None:
        self.paths = SyncSet()
        self.done = anyio.Event()
        self.error: OSError | None = None


class _Loop(threading.local):
    """The batches of the event loop on this thread (one loop per thread)."""

    def __init__(self) -> None:
        self.open: _Batch | None = None
        self.running: _Batch | None = None


class GroupCommit:
    """Barriers for one storage folder, shared by the appends ready at the same time."""

    def __init__(self, base: str, *, use_syncfs: bool | None = None) -> None:
        self._base = base
        self._use_syncfs = syncfs_available() if use_syncfs is None else use_syncfs
        self._fd: int | None = None
        self._fd_mutex = threading.Lock()
        self._loops = _Loop()

    def open(self) -> None:
        """Open the descriptor that syncfs reports write-back errors through. Call before
        the writes a barrier covers (the layout's set-up does)."""
        if not self._use_syncfs or self._fd is not None:
            return
        with self._fd_mutex:
            if self._fd is None:
                self._fd = os.open(self._base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        with self._fd_mutex:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def barrier(self, paths: SyncSet) -> None:
        """Make ``paths`` (and, with syncfs, everything written before) durable, now."""
        fd = self._fd
        if self._use_syncfs and fd is not None and _SYNCFS is not None:
            if _SYNCFS(fd) != 0:
                code = ctypes.get_errno() or errno.EIO
                raise OSError(code, f"syncfs: {os.strerror(code)}", self._base)
            os.fsync(fd)  # a device flush after the metadata buffers syncfs wrote last
            return
        for path in sorted(paths.files):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _fdatasync(fd)
            finally:
                os.close(fd)
        for folder in sorted(paths.folders):
            fsync_dir(folder)

    async def sync(self, paths: SyncSet) -> None:
        """Return once a barrier that began after this call covered ``paths``.

        Shielded from cancellation: the writes it covers are already made, and the caller
        must learn whether they are durable (a barrier takes milliseconds).

        Raises:
            OSError: the barrier failed; nothing it covered may be acknowledged.
        """
        loop = self._loops
        batch = loop.open
        if batch is None:
            batch = loop.open = _Batch()
        batch.paths.update(paths)
        with anyio.CancelScope(shield=True):
            while not batch.done.is_set():
                running = loop.running
                if running is not None:
                    await running.done.wait()
                    continue
                loop.open, loop.running = None, batch  # lead our batch
                try:
                    await anyio.to_thread.run_sync(
                        self.barrier, batch.paths, limiter=anyio.CapacityLimiter(1)
                    )
                except OSError as exc:
                    batch.error = exc
                except BaseException:
                    batch.error = OSError(errno.EIO, "the group commit was interrupted")
                    raise
                finally:
                    loop.running = None
                    batch.done.set()
        failed = batch.error
        if failed is not None:
            raise OSError(failed.errno, failed.strerror, failed.filename) from failed

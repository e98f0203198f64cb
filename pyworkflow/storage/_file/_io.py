"""Small POSIX file primitives for FileStorageBackend: flocks, atomic writes, fsyncs.

Everything here is synchronous and raises ``OSError``; the backend translates those to
``StorageError`` at its boundary. Paths are ``str``.
"""

from __future__ import annotations

import errno
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

if sys.platform != "win32":
    import fcntl

__all__ = [
    "Offload",
    "SyncSet",
    "flocked",
    "fsync_dir",
    "read_bytes",
    "try_flock",
    "write_all",
    "write_atomic",
    "write_exclusive",
    "write_temp",
]

_FILE_MODE = 0o644
_CHUNK = 1 << 20


class SyncSet:
    """What a group commit must make durable: files whose data (and size) were written, and
    folders in which names were made, replaced or removed."""

    __slots__ = ("files", "folders")

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.folders: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.files or self.folders)

    def update(self, other: SyncSet) -> None:
        self.files |= other.files
        self.folders |= other.folders


class Offload(Exception):
    """Raised by an operation tried inline on the event loop that would block there
    (a contended lock, a large read): the caller runs it again in a worker thread."""


def try_flock(fd: int, *, exclusive: bool, wait: bool) -> bool:
    """Take a flock on ``fd``; without ``wait``, return False instead of blocking."""
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        if not wait:
            return False
        fcntl.flock(fd, mode)
    return True


@contextmanager
def flocked(
    path: str, *, exclusive: bool, wait: bool, make: Callable[[], None] | None = None
) -> Iterator[int]:
    """Hold a flock on the lock file ``path`` (created if missing) for the block.

    flock locks belong to the open file description, so two holders in one process
    exclude each other too; the OS drops the lock when the holder dies. ``make``: called
    if the lock file's folder is missing (then the open is tried again).

    Raises:
        Offload: ``wait`` is False and someone else holds a conflicting lock.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, _FILE_MODE)
    except FileNotFoundError:
        if make is None:
            raise
        make()
        fd = os.open(path, flags, _FILE_MODE)
    try:
        if not try_flock(fd, exclusive=exclusive, wait=wait):
            raise Offload
        yield fd
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_temp(path: str, data: bytes, *, sync: bool) -> str:
    """A new temp file beside ``path`` holding ``data`` (fsynced if ``sync``); its name.

    Nothing is left behind if writing fails."""
    folder, name = os.path.split(path)
    tmp = f"{folder}/.{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
    try:
        try:
            write_all(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def write_atomic(path: str, data: bytes, *, sync: bool) -> None:
    """Replace ``path`` with ``data`` atomically: a temp file in the same folder, flushed
    (and fsynced if ``sync``), then ``os.replace``. Readers see the old or the new file."""
    tmp = write_temp(path, data, sync=sync)
    try:
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def write_exclusive(path: str, data: bytes, *, sync: bool) -> bool:
    """Create ``path`` holding ``data`` unless it exists; return whether we created it.

    The content goes to a temp file first and is published with ``os.link``, which fails
    if the name exists: atomic across processes, and nobody ever sees a half-written file.
    """
    tmp = write_temp(path, data, sync=sync)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with suppress(OSError):
            os.unlink(tmp)


def read_bytes(path: str) -> bytes | None:
    """The file's content, or None if it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        # One read of the size fstat gives (+1 to see the end), not a 1 MiB buffer each
        # time: an allocation that large is an mmap, a mremap and a munmap.
        size = min(os.fstat(fd).st_size + 1, _CHUNK)
        chunks: list[bytes] = []
        while chunk := os.read(fd, size):
            chunks.append(chunk)
            if len(chunk) < size:  # a short read of a regular file: its end
                break
            size = _CHUNK
        return b"".join(chunks)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    """fsync a folder, making the names created or replaced in it durable.

    Callers on several threads share fsyncs (a group commit): a call returns at once when
    an fsync of the same folder that began after the call did has ended, and waits for one
    that is under way instead of starting its own. Concurrent appends that each made a
    name in one folder (a log, a record file, a due entry) then pay one fsync between them.
    """
    _DIR_SYNCS.sync(path)


def _fsync_dir_now(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _DirSyncs:
    """Group commit of folder fsyncs, per folder, across the threads of this process.

    Invariant: a caller returns only after an fsync of its folder that *began* after the
    caller registered (``asked``) ended well: ``synced`` is the highest ticket covered by a
    finished fsync. Counters of a folder that no caller uses any more are dropped.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._asked: dict[str, int] = {}
        self._synced: dict[str, int] = {}
        self._busy: set[str] = set()
        self._users: dict[str, int] = {}

    def sync(self, path: str) -> None:
        with self._cond:
            ticket = self._asked[path] = self._asked.get(path, 0) + 1
            self._users[path] = self._users.get(path, 0) + 1
        try:
            self._sync(path, ticket)
        finally:
            with self._cond:
                self._users[path] -= 1
                if not self._users[path]:
                    del self._users[path], self._asked[path]
                    self._synced.pop(path, None)

    def _sync(self, path: str, ticket: int) -> None:
        with self._cond:
            while path in self._busy:
                self._cond.wait()
            if self._synced.get(path, 0) >= ticket:
                return  # an fsync that began after we asked has ended
            self._busy.add(path)
            covers = self._asked[path]
        done = False
        try:
            _fsync_dir_now(path)
            done = True
        finally:
            with self._cond:
                self._busy.discard(path)
                if done:
                    self._synced[path] = max(self._synced.get(path, 0), covers)
                self._cond.notify_all()


_DIR_SYNCS = _DirSyncs()

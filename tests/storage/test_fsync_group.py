"""Folder fsyncs shared by concurrent threads (``_file._io.fsync_dir``, a group commit).

The rule under test: a call returns only after an fsync of its folder that *began after the
call* has ended well. Real threads; the fsync itself is replaced by a recorder that takes a
few milliseconds (a real one is too fast here to overlap reliably), and real folders get
real fsyncs in the last test.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import pytest

from pyworkflow.storage._file import _io

_clock = itertools.count()
_lock = threading.Lock()


def _tick() -> int:
    with _lock:
        return next(_clock)


class Recorder:
    """Stands in for the fsync: records (folder, began, ended) ticks; may fail once."""

    def __init__(self, fail_first: bool = False) -> None:
        self.syncs: list[tuple[str, int, int]] = []
        self.fail_first = fail_first

    def __call__(self, path: str) -> None:
        began = _tick()
        time.sleep(0.003)
        if self.fail_first:
            self.fail_first = False
            raise OSError(5, "Input/output error")
        self.syncs.append((path, began, _tick()))


def _hammer(folders: list[str], threads: int, calls: int) -> list[tuple[str, int, int, bool]]:
    """Each thread calls fsync_dir ``calls`` times; returns (folder, called, returned, ok)."""
    out: list[tuple[str, int, int, bool]] = []

    def work(n: int) -> None:
        for i in range(calls):
            folder = folders[(n + i) % len(folders)]
            called = _tick()
            try:
                _io.fsync_dir(folder)
                ok = True
            except OSError:
                ok = False
            out.append((folder, called, _tick(), ok))

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return out


@pytest.mark.parametrize("fail_first", [False, True])
def test_every_call_is_covered_by_an_fsync_that_began_after_it(
    monkeypatch: pytest.MonkeyPatch, fail_first: bool
) -> None:
    recorder = Recorder(fail_first=fail_first)
    monkeypatch.setattr(_io, "_fsync_dir_now", recorder)
    calls = _hammer(["/a", "/b"], threads=16, calls=5)
    assert len(calls) == 80
    failed = [c for c in calls if not c[3]]
    assert len(failed) == (1 if fail_first else 0)  # only the caller whose fsync failed
    for folder, called, returned, ok in calls:
        if ok:
            assert any(
                path == folder and called < began and ended < returned
                for path, began, ended in recorder.syncs
            ), f"call at {called} on {folder} returned at {returned} with no fsync covering it"
    # Shared: far fewer fsyncs than calls (16 threads meet at each folder).
    assert len(recorder.syncs) < 60
    assert not _io._DIR_SYNCS._users  # nothing kept for folders nobody syncs now


def test_real_folders_are_fsynced(tmp_path: Path) -> None:
    folders = [str(tmp_path / name) for name in "xyz"]
    for folder in folders:
        os.makedirs(folder)
    calls = _hammer(folders, threads=8, calls=4)
    assert all(ok for *_, ok in calls) and len(calls) == 32
    with pytest.raises(FileNotFoundError):
        _io.fsync_dir(str(tmp_path / "missing"))

"""What the index folders of FileStorageBackend (``.due/``, ``.created/``) share: the
folder, and its ``.built`` marker that says every run in ``events/`` is indexed."""

from __future__ import annotations

import os

from ._io import fsync_dir

__all__ = ["IndexFolder"]

_BUILT = ".built"


class IndexFolder:
    """An index folder of one storage folder. Synchronous; raises ``OSError``."""

    def __init__(self, root: str) -> None:
        self.root = root

    def ensure(self, events: str, *, sync: bool) -> None:
        """Make the folder; a storage folder with no log yet is fully indexed (``.built``);
        one with logs is indexed by its first reader."""
        if os.path.isdir(self.root):
            return
        with os.scandir(events) as entries:
            logs = any(entry.name.endswith(".jsonl") for entry in entries)
        os.makedirs(self.root, exist_ok=True)
        if not logs:
            self.mark_built(sync=sync)

    def built(self) -> bool:
        return os.path.exists(f"{self.root}/{_BUILT}")

    def mark_built(self, *, sync: bool) -> None:
        os.makedirs(self.root, exist_ok=True)
        os.close(os.open(f"{self.root}/{_BUILT}", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        if sync:
            fsync_dir(self.root)

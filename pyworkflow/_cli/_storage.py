"""``--storage``: a storage URL on the command line, turned into an open backend.

Accepted forms (also from ``$PYWORKFLOW_STORAGE``; default ``file:./workflow_data``)::

    file:./workflow_data            a folder, relative to the current directory
    file:///srv/workflow_data       an absolute folder
    file:./data?durability=none     with FileStorageBackend's fsync policy
    memory                          an empty in-memory backend (for demos and --help)
    kafka://HOST:PORT[,HOST:PORT]   Apache Kafka; ``?prefix=NAME`` picks the topic prefix
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .. import storage as storage_package
from .._exceptions import ConfigurationError
from ..storage import FileStorageBackend, InMemoryStorageBackend, StorageBackend

__all__ = ["DEFAULT_STORAGE", "STORAGE_ENV", "StorageSpec", "open_storage", "parse_storage"]

STORAGE_ENV = "PYWORKFLOW_STORAGE"
DEFAULT_STORAGE = "file:./workflow_data"

_FORMS = "file:PATH, memory or kafka://HOST:PORT[?prefix=NAME]"


@dataclass(frozen=True, slots=True)
class StorageSpec:
    """A parsed ``--storage`` value."""

    kind: str
    """``file``, ``memory`` or ``kafka``."""
    target: str = ""
    """The folder (file) or the bootstrap servers (kafka)."""
    options: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.kind}:{self.target}" if self.target else self.kind


def parse_storage(text: str | None) -> StorageSpec:
    """Parse a storage URL; ``None`` means ``$PYWORKFLOW_STORAGE`` or the default.

    Raises:
        ConfigurationError: the URL has no known form, naming it and the forms accepted.
    """
    if text is None:
        text = os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE
    text = text.strip()
    if text == "memory":
        return StorageSpec("memory")
    scheme, _, rest = text.partition(":")
    if scheme == "file" and rest:
        return _file_spec(text, rest)
    if scheme == "kafka" and rest.startswith("//"):
        return _kafka_spec(text)
    msg = f"unknown storage {text!r}: use {_FORMS} (or set ${STORAGE_ENV})"
    raise ConfigurationError(msg)


def _file_spec(text: str, rest: str) -> StorageSpec:
    path, _, query = rest.partition("?")
    if path.startswith("//"):  # file:///abs/path or file://localhost/abs/path
        parts = urlsplit(f"file:{path}")
        if parts.netloc not in ("", "localhost"):
            msg = f"storage {text!r}: a file URL names a local folder, not host {parts.netloc!r}"
            raise ConfigurationError(msg)
        path = parts.path
    if not path:
        msg = f"storage {text!r} names no folder: use e.g. file:./workflow_data"
        raise ConfigurationError(msg)
    options = _options(text, query, allowed={"durability"})
    return StorageSpec("file", path, options)


def _kafka_spec(text: str) -> StorageSpec:
    parts = urlsplit(text)
    servers = parts.netloc
    hosts = [h for h in servers.split(",") if h]
    if not hosts or any(not h.rpartition(":")[2].isdigit() for h in hosts):
        msg = f"storage {text!r}: expected kafka://HOST:PORT[,HOST:PORT...], e.g. kafka://localhost:9092"
        raise ConfigurationError(msg)
    options = _options(text, parts.query, allowed={"prefix"})
    return StorageSpec("kafka", ",".join(hosts), options)


def _options(text: str, query: str, *, allowed: set[str]) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - allowed)
    if unknown:
        msg = (
            f"storage {text!r}: unknown option {unknown[0]!r}; "
            f"this storage accepts {', '.join(sorted(allowed))}"
        )
        raise ConfigurationError(msg)
    return options


def _kafka_backend(spec: StorageSpec) -> Any:
    try:
        cls = getattr(storage_package, "KafkaStorageBackend")  # noqa: B009 - lazy export
    except (AttributeError, ImportError) as exc:
        msg = (
            f"storage {spec.describe()!r} needs KafkaStorageBackend, which could not be "
            f"loaded ({exc}); install it with: pip install 'pyworkflow[kafka]'"
        )
        raise ConfigurationError(msg) from None
    kwargs: dict[str, Any] = {"bootstrap_servers": spec.target}
    if "prefix" in spec.options:
        kwargs["topic_prefix"] = spec.options["prefix"]
    return cls(**kwargs)


def make_backend(spec: StorageSpec) -> StorageBackend:
    """A backend for ``spec`` (not yet started, for Kafka)."""
    if spec.kind == "memory":
        return InMemoryStorageBackend()
    if spec.kind == "file":
        durability: Any = spec.options.get("durability", "always")
        return FileStorageBackend(spec.target, durability=durability)
    backend: StorageBackend = _kafka_backend(spec)
    return backend


@asynccontextmanager
async def open_storage(
    spec: StorageSpec, *, fold_nothing: bool = False
) -> AsyncIterator[StorageBackend]:
    """The backend for ``spec``, started (Kafka connects) and closed on exit.

    ``fold_nothing``: a Kafka backend starts folding no partition (a worker folds the ones
    its group assigns it, not the whole topic first)."""
    backend = make_backend(spec)
    fold = getattr(backend, "fold_partitions", None)
    start = getattr(backend, "start", None)
    if fold_nothing and callable(fold):
        await fold(())  # starts it
    elif callable(start):
        await start()
    try:
        yield backend
    finally:
        await backend.aclose()

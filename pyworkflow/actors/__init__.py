"""The actor runtime: one owner per run.

A :class:`Supervisor` hosts one actor task per active run in an anyio task group (trio
nurseries in the worker process). The actor is the only writer of its run's log: workflow
code asks (a step, a sleep, a hook, a cancellation check) and the actor validates each event
with the replay fold and writes it. Suspended runs leave memory (passivation) and are woken
by durable timers and delivered hooks. See ``DESIGN.md`` section 4.

With Kafka storage, :class:`Worker` processes share the runs through a consumer group (the
partitions a worker owns are the runs it executes) and a :class:`Client` sends them
commands; both need the ``kafka`` extra and are imported on first access.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .. import _public
from ._supervisor import Supervisor as Supervisor

if TYPE_CHECKING:
    from ._client import Client as Client
    from ._worker import Worker as Worker

__all__ = ["Client", "Supervisor", "Worker"]

_public.publish(globals(), ["Supervisor"])

_LAZY = {"Client": "._client", "Worker": "._worker"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            module = importlib.import_module(_LAZY[name], __name__)
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.partition(".")[0] != "aiokafka":
                raise
            msg = f"{name} needs aiokafka: pip install 'pyworkflow[kafka]'"
            raise ImportError(msg, name=name) from exc
        found = getattr(module, name)
        _public.publish({"__name__": __name__, name: found}, [name])
        return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The actor runtime: one owner per run.

A :class:`Supervisor` hosts one actor task per active run in an anyio task group (trio
nurseries in the worker process). The actor is the only writer of its run's log: workflow
code asks (a step, a sleep, a hook, a cancellation check) and the actor validates each event
with the replay fold and writes it. Suspended runs leave memory (passivation) and are woken
by durable timers and delivered hooks. See ``DESIGN.md`` section 4.
"""

from .. import _public
from ._supervisor import Supervisor as Supervisor

__all__ = ["Supervisor"]

_public.publish(globals(), __all__)

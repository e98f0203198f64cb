"""The actor runtime (coming next): one owner per run.

A ``Supervisor`` hosts one run actor task per active run in an anyio task group (trio
nurseries in the worker process). The actor is the only writer of its run's log: workflow
code asks (a step, a sleep, a hook, a cancellation check) and the actor validates each event
with the replay fold and writes it. Suspended runs leave memory (passivation) and are woken
by durable timers and delivered hooks; ``pyworkflow worker`` processes share the runs of a
Kafka consumer group. See ``DESIGN.md`` section 4.
"""

__all__: list[str] = []

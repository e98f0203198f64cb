"""The projections publisher: what a backend's accepted appends changed, to the compacted
topics ``{prefix}.runs``, ``.steps`` and ``.hooks`` (the latest record of each key)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ..._core._projection import Projection
from ._codec import encode_record
from ._placement import KeyHashes
from ._settings import TopicNames

__all__ = ["LINGER_S", "ProjectionPublisher"]

_Publish = tuple[str, bytes, bytes]
LINGER_S = 0.05
"""How long a projection waits for more changes of its key before it is sent."""


class ProjectionPublisher:
    """Queues projection records (on the fold's path, without waiting) and sends them in
    batches from :meth:`run`, a background task of the backend's loop."""

    def __init__(self, topics: TopicNames, log: Any, hashes: KeyHashes) -> None:
        self.topics = topics
        self.log = log
        self._hashes = hashes
        self._outbox: asyncio.Queue[_Publish | None] = asyncio.Queue()
        self._runs_partitions = 0
        self._unsent = 0
        """Records sent and not yet acknowledged by the brokers."""

    @property
    def left(self) -> int:
        """Records queued or unacknowledged (what is lost if the backend closes now)."""
        return self._unsent + self._outbox.qsize()

    def queue(self, sequence: int, change: Projection, start: tuple[int, int]) -> None:
        """Publish what an accepted append changed (its log ends at ``sequence``; the run
        starts at ``start``: offset and epoch)."""
        topics, put = self.topics, self._outbox.put_nowait
        run = change.run
        put((topics.runs, run.run_id.encode(), encode_record(sequence, run, start)))
        for step in change.steps.values():
            put((topics.steps, step.step_id.encode(), encode_record(sequence, step)))
        for hook in change.hooks.values():
            put((topics.hooks, hook.token.encode(), encode_record(sequence, hook)))

    def finish(self) -> None:
        """Have :meth:`run` send what is queued, then end."""
        self._outbox.put_nowait(None)

    async def run(self, producer: AIOKafkaProducer) -> None:
        """Send queued records in batches until :meth:`finish`."""
        while True:
            items = [await self._outbox.get()]
            if items[0] is not None:
                # Linger: a run appends every few ms while it executes; what it changed in
                # the meantime is sent once (the topics keep a key's latest record anyway).
                # Readers of these topics see a change up to LINGER_S later.
                await asyncio.sleep(LINGER_S)
            while not self._outbox.empty():
                items.append(self._outbox.get_nowait())
            # The topics are compacted by key: of the records queued for one key, only the
            # newest is worth sending (several appends of one run while the last batch was
            # on its way; a reader could not have relied on the ones in between anyway).
            latest: dict[tuple[str, bytes], bytes] = {}
            for item in items:
                if item is not None:
                    latest[item[0], item[1]] = item[2]
            pending: list[asyncio.Future[Any]] = []
            for (topic, key), value in latest.items():
                try:
                    partition = None
                    if topic == self.topics.runs:  # run ids' hashes are cached: not twice
                        count = self._runs_partitions or len(await producer.partitions_for(topic))
                        self._runs_partitions = count
                        partition = self._hashes.partition(key.decode(), count)
                    sent = await producer.send(topic, value=value, key=key, partition=partition)
                    pending.append(sent)
                except KafkaError as exc:
                    self.log.warning("kafka_projection_failed", topic=topic, error=repr(exc))
            self._unsent = len(pending)
            for outcome in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    self.log.warning("kafka_projection_failed", error=repr(outcome))
            if None in items:
                return

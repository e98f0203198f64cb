"""The owner of a run: the only writer of its log while it executes the run.

Workflow code (a step, a sleep, a hook, the run's end) and calls from outside (a hook
payload, a cancellation) never write to storage themselves: they *ask*. A request is a
function ``derive(state) -> drafts`` naming the events that bring the run to what the asker
wants, judged against the run's state at the moment of writing. A group commit takes every
request that is ready, derives its events, validates each with the replay fold (the same
``RunState.apply`` that reads the log) and writes them all with one append. It is led by a
task that asks while no commit is in flight (the others wait for it), so the sequential path
costs no task switch; the outcomes of concurrent branches ride with it as soon as they are
ready.

Invariants:

* ``state`` is the fold of the log as far as it was acknowledged, plus, while a commit is in
  flight, the events being written. When a write fails, the state is folded again from the
  log: nothing derived from an unwritten event survives.
* ``derive`` is idempotent: after a conflict (another writer appended a hook payload or a
  cancellation) or an uncertain write (an error after the data may have landed), it runs
  again against the new state and returns nothing for what is already there. Stale drafts
  are never re-sent.
* Storage errors never reach workflow code. A transient one is retried with capped
  exponential backoff; a permanent one (or too many transient ones) stops the execution,
  which ends with the error for whoever runs it, and the run stays recoverable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from msgspec.structs import replace as _replace

from .._core._caused import caused
from .._core._events import (
    CHILD_OUTCOMES,
    CancellationRequested,
    Event,
    HookReceived,
    WorkflowStarted,
)
from .._core._replay import RunState, fold
from .._exceptions import ConflictError, CorruptRecordError, RunLockedError, StorageError
from ._drafts import Derive, Draft, stamp
from ._signals import SuspendSignal

if TYPE_CHECKING:
    from ..storage import StorageBackend
    from ._clock import Clock

__all__ = [
    "Backoff",
    "Opening",
    "OwnerStopped",
    "OwnerStoppedSignal",
    "RunOwner",
]


_EXTERNAL = (CancellationRequested, HookReceived, *CHILD_OUTCOMES)
"""Events that other writers may append to a run that is being executed (a child's
outcome is written by the child's host when the child ends)."""


class Opening:
    """A run's start, written by its owner's first commit together with the first events
    the workflow asks for (one append instead of two). Whoever started the run waits for
    it (:meth:`wait`): the start is durable once that commit is.

    Raises from :meth:`wait` OwnerStopped (with a ConflictError as its cause when another
    writer started the run first) if the start could not be written.

    ``retry``: a storage error of the commit that holds the start is retried like any
    other (a supervisor's actor; its starter waits); False for a start executed inline by
    its caller (module-level ``start()``), who gets the error at once, as from any write
    of a start: nothing started (or, for an uncertain write, the start may land later).
    """

    __slots__ = ("_event", "done", "error", "retry", "started")

    def __init__(self, started: WorkflowStarted, *, retry: bool = True) -> None:
        self.started = started
        self.retry = retry
        self.error: BaseException | None = None
        self.done = False
        self._event: anyio.Event | None = None
        """Made when someone waits (an event costs ~2 µs: a run started inline has none)."""

    def finish(self, error: BaseException | None = None) -> None:
        if not self.done:
            self.error = error
            self.done = True
            if self._event is not None:
                self._event.set()

    async def wait(self) -> None:
        if not self.done:
            self._event = self._event or anyio.Event()
            await self._event.wait()
        if self.error is not None:
            raise self.error


class OwnerStopped(Exception):
    """The owner could not write and stopped the execution; ``__cause__`` says why."""


class OwnerStoppedSignal(BaseException):
    """Unwinds the workflow's tasks when their owner stopped (a BaseException: a user's
    ``except Exception:`` can't catch it); the host reports ``RunOwner.stopped``."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff for transient storage errors."""

    initial: float = 0.05
    factor: float = 2.0
    cap: float = 5.0
    attempts: int | None = 8
    """Retries before giving up (None: retry until the host stops)."""

    def delays(self) -> Iterator[float]:
        delay, count = self.initial, 0
        while self.attempts is None or count < self.attempts:
            yield delay
            delay, count = min(delay * self.factor, self.cap), count + 1


def _nothing(state: RunState) -> Sequence[Draft]:
    return ()


class _Request:
    """A request whose asker waits for another task's commit (a commit's leader answers
    its own request itself, and nobody waits for a submitted one: those are queued as bare
    derives)."""

    __slots__ = ("answered", "derive", "error", "waiter")

    def __init__(self, derive: Derive) -> None:
        self.derive = derive
        self.error: BaseException | None = None
        self.waiter: anyio.Event | None = None
        self.answered = False

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self.answered = True
        if self.waiter is not None:
            self.waiter.set()


class RunOwner:
    """Writes one run's log for one execution: the group commits of its requests."""

    def __init__(
        self,
        state: RunState,
        storage: StorageBackend,
        clock: Clock,
        log: Any,
        backoff: Backoff,
        opening: Opening | None = None,
    ) -> None:
        self.run_id = state.run_id
        self.state = state
        self.storage = storage
        self.clock = clock
        self.log = log
        self.backoff = backoff
        self.woken = False
        """Another writer appended a hook payload or a cancellation since this was reset."""
        self.draining = False
        """The host shuts down: steps running finish, no new one starts."""
        self._queue: list[_Request | Derive] = []
        self._refused: BaseException | None = None
        """The error the leader's own request was answered with (its derive raised)."""
        self._writing = False
        self._stale = False
        self._opening = opening
        """The run's start, folded into ``state`` but not written yet (see Opening)."""
        self._unwritten: list[Event] = [] if opening is None else [opening.started]
        self._acked = state.last_sequence - len(self._unwritten)
        """The sequence of the last event known to be in the log."""
        self._attempts: list[list[Event]] = []
        self._closed = False
        self.stopped: BaseException | None = None

    # -- asking -------------------------------------------------------------------------
    def submit(self, derive: Derive) -> None:
        """Queue a request without waiting (a step's outcome): the next commit writes it,
        before anything queued later (:meth:`flush` to have it written now)."""
        if self._closed:
            raise SuspendSignal  # the execution is over: a straggling branch stops here
        self._queue.append(derive)

    async def ask(self, derive: Derive) -> None:
        """Queue a request and wait until its events are written; a requester-facing error
        raised by ``derive`` (e.g. CancellationError) is raised here.

        With no commit in flight, the asking task leads the group commit itself: it writes
        everything queued, round after round; else it waits for the commit that takes it
        (and leads, if that commit's leader was cancelled). Either way the owner's rules
        apply: storage errors are retried or stop the execution, never raised here."""
        if self._closed:
            raise SuspendSignal
        if not self._writing:  # the sequential path: this task leads, its request first
            self._queue.append(derive)
            await self._lead(derive)
            if self._refused is not None:
                error, self._refused = self._refused, None
                raise error
            return
        request = _Request(derive)
        self._queue.append(request)
        while not request.answered:
            if self._writing:
                request.waiter = anyio.Event()
                await request.waiter.wait()
            else:
                await self._lead()
        if request.error is not None:
            raise request.error

    async def flush(self) -> None:
        """Wait until everything queued so far is written."""
        if (self._queue or self._unwritten) and not self._closed:
            await self.ask(_nothing)

    async def write_start_alone(self) -> None:
        """Write the run's start if it is not written yet, and nothing else: a code error
        (non-determinism, an annotation that can't be resolved) stops the execution, and
        the run stays started, to be resumed once the code is fixed. What else is queued
        goes with the execution, as it would without a start to write."""
        if self._unwritten and not self._closed and not self._writing:
            self._queue.clear()
            await self.ask(_nothing)

    @property
    def closed(self) -> bool:
        """No more requests are taken (the execution is ending, or its owner stopped)."""
        return self._closed

    def close(self) -> None:
        """No more requests (what is still queued is not written: flush first)."""
        self._closed = True
        if self._opening is not None and self._unwritten:
            stopped = OwnerStopped(f"run {self.run_id!r}: its execution ended before its start")
            self._opening.finish(self.stopped or stopped)

    # -- the group commit ---------------------------------------------------------------
    async def _lead(self, own: Derive | None = None) -> None:
        """Commit what is queued, round after round, until the queue is empty. Invariant:
        one leader at a time; requests are written in the order they were queued, each
        commit holding everything that was ready when it began. ``own``: the leader's own
        request, queued bare; an error its derive raises is left in ``_refused``."""
        self._writing = True
        if own is not None:  # (a leader that ended by raising may have left one; reset
            self._refused = None  # here, not in ask: mypyc would take it for None there)
        batch: list[_Request | Derive] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                if self._stale:  # a leader was cancelled mid-commit: the log says what landed
                    await self._reload(self._acked, self._attempts, self.backoff.delays())
                    self._stale = False
                # The commit, inline (it is every step's path): derive, validate, append.
                seq = self.state.last_sequence - len(self._unwritten)
                events, accepted = self._derive(batch, own)
                if events:
                    self._attempts = [events]
                    try:
                        await self.storage.append(self.run_id, events, expected_sequence=seq)
                    except (ConflictError, StorageError) as exc:
                        await self._recommit(accepted, seq, exc, own)
                    if self._unwritten:
                        self._written()
                self._acked = self.state.last_sequence
                for request in accepted:
                    if type(request) is _Request:
                        request.finish()
                batch = []
        except Exception as exc:
            self._stop(exc)
            raise caused(OwnerStoppedSignal(), exc)
        except BaseException:
            # The leading task was cancelled (its branch, not the run). What this commit
            # folded in may not be written: the next leader folds the log again first and
            # derives the unanswered requests anew. A waiting requester leads now.
            self._queue[:0] = [r for r in batch if type(r) is not _Request or not r.answered]
            self._stale = True
            self._writing = False
            waiting = next((r for r in self._queue if type(r) is _Request and r.waiter), None)
            if type(waiting) is _Request and waiting.waiter is not None:
                waiting.waiter.set()
            raise
        finally:
            self._writing = False

    def halt(self, error: BaseException) -> OwnerStoppedSignal:
        """Stop the execution for an infrastructure error met outside a commit (starting or
        hosting a child, say): the host ends the activation with ``error``, the workflow
        never sees it. Returns the signal to raise."""
        self._stop(error)
        return OwnerStoppedSignal()

    def _stop(self, exc: BaseException) -> None:
        self._closed = True
        if self.stopped is None:
            self.stopped = exc
        if self._opening is not None and self._unwritten:
            self._opening.finish(exc)
        for request in self._queue:
            if type(request) is _Request:
                request.finish(OwnerStoppedSignal())
        self._queue.clear()

    async def _recommit(
        self,
        batch: list[_Request | Derive],
        seq: int,
        error: ConflictError | StorageError,
        own: Derive | None,
    ) -> None:
        """After a failed append of ``batch``'s events (after ``seq``): fold the log again,
        derive again against what it now holds, append again, until one lands. Leaves in
        ``batch`` the requests still to answer (a derive may answer one with its error)."""
        delays = self.backoff.delays()
        attempts = self._attempts  # each may yet land: an uncertain write lands late
        while True:
            if isinstance(error, RunLockedError):  # the run is someone else's now (fenced)
                msg = f"run {self.run_id!r}: {error}; this execution stops"
                raise caused(OwnerStopped(msg), error)
            if not isinstance(error, ConflictError):
                if self._unwritten and self._opening is not None and not self._opening.retry:
                    msg = f"run {self.run_id!r}: its start could not be written: {error}"
                    raise caused(OwnerStopped(msg), error)
                await self._retry_later(error, delays, "append")
            await self._reload(seq, attempts, delays)
            seq = self.state.last_sequence - len(self._unwritten)
            events, accepted = self._derive(batch, own)
            batch[:] = accepted
            if not events:
                return
            attempts.append(events)
            try:
                await self.storage.append(self.run_id, events, expected_sequence=seq)
            except (ConflictError, StorageError) as exc:
                error = exc
            else:
                return

    def _derive(
        self, batch: list[_Request | Derive], own: Derive | None
    ) -> tuple[list[Event], list[_Request | Derive]]:
        """The events of ``batch``'s requests (after the run's start while it is not
        written), folded into ``state``; the requests they answer."""
        events: list[Event] = [*self._unwritten]
        accepted: list[_Request | Derive] = []
        timestamp = self.clock.now()
        state, run_id = self.state, self.run_id
        for request in batch:
            try:
                drafts = request.derive(state) if isinstance(request, _Request) else request(state)
            except Exception as exc:  # the requester's answer, e.g. CancellationError
                if type(request) is _Request:
                    request.finish(exc)
                elif request is own:
                    self._refused = exc
                continue
            for draft in drafts:
                if isinstance(draft, Draft):
                    event = stamp(draft, run_id, state.last_sequence + 1, timestamp)
                else:  # drafted whole (a step's events): stamped here, one call less
                    event = _replace(draft, sequence=state.last_sequence + 1, timestamp=timestamp)
                try:
                    state.apply(event)  # the fold validates what is about to be written
                except CorruptRecordError as exc:  # an engine bug: write nothing, stop
                    msg = f"run {self.run_id!r}: refusing to write {event!r}: {exc}"
                    raise caused(OwnerStopped(msg), exc)
                events.append(event)
            accepted.append(request)
        return events, accepted

    async def _reload(
        self, seq: int, attempts: list[list[Event]], delays: Iterator[float]
    ) -> None:
        """Fold the log again after a failed or uncertain write. What follows ``seq`` may be
        our own events (one of this commit's attempts landed after all) and hook payloads or
        cancellations from other writers; anything else means another executor took the
        run over."""
        while True:
            try:
                events = await self.storage.read(self.run_id)
            except StorageError as exc:
                await self._retry_later(exc, delays, "read")
                continue
            break
        if self._unwritten:
            if not events:  # our start is not in the log (yet): the next append brings it
                self.state = fold(self.run_id, self._unwritten)
                self._acked = 0
                return
            if events[0] != self._unwritten[0]:
                msg = f"run {self.run_id!r} was started by another writer; this execution stops"
                raise caused(OwnerStopped(msg), ConflictError(msg))
            self._written()  # an attempt of ours landed after all
        newer = events[seq:]
        landed = next((a for a in attempts if newer[: len(a)] == a), [])
        for event in newer[len(landed) :]:
            if not isinstance(event, _EXTERNAL):
                msg = (
                    f"run {self.run_id!r} was advanced by another executor "
                    f"({event.type.value!r} at sequence {event.sequence}); this execution stops"
                )
                raise caused(OwnerStopped(msg), ConflictError(msg))
            self.woken = True
            self.log.info("external_event", event_type=event.type.value, seq=event.sequence)
        self.state = fold(self.run_id, events)
        self._acked = self.state.last_sequence

    def _written(self) -> None:
        """The run's start is in the log: whoever started the run may go on."""
        if self._unwritten:
            self._unwritten = []
            assert self._opening is not None
            self._opening.finish()

    async def _retry_later(self, exc: StorageError, delays: Iterator[float], what: str) -> None:
        delay = next(delays, None) if exc.retriable else None
        if delay is None:
            self.log.error("storage_failed", operation=what, error=repr(exc))
            msg = f"run {self.run_id!r}: storage {what} failed: {exc}"
            raise caused(OwnerStopped(msg), exc)
        self.log.warning("storage_retry", operation=what, delay=delay, error=repr(exc))
        await self.clock.sleep(delay)

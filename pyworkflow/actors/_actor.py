"""A run's actor: its mailbox, and the task that hosts its activations one at a time."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from .._core._events import Event
from .._core._replay import RunState
from .._exceptions import TransientStorageError
from .._execution._drafts import Derive, Draft
from .._execution._owner import Opening, RunOwner

__all__ = ["Command", "RunActor"]

Answer = Callable[[BaseException | None], None]
"""Tells a command's sender how it ended: None once written, else the error."""



class Command:
    """A request from outside the run (a hook payload, a cancellation) and its answer.

    Its ``derive`` never raises: the sender's error (an expired hook, say) is kept for the
    sender, and the activation that wrote the command goes on.
    """

    __slots__ = ("_derive", "done", "error")

    def __init__(self, derive: Derive) -> None:
        self._derive = derive
        self.error: BaseException | None = None
        self.done = anyio.Event()

    def derive(self, state: RunState) -> Sequence[Draft | Event]:
        try:
            return self._derive(state)
        except Exception as exc:
            self.error = exc
            return ()

    def answer(self, error: BaseException | None) -> None:
        if error is not None and not isinstance(error, Exception):
            # The run's execution stopped (its storage failed) before this was written.
            error = TransientStorageError(
                "the run's execution stopped before this command was recorded; send it again"
            )
        self.error = self.error or error
        self.done.set()

    async def wait(self) -> None:
        """Wait until the command is written (or refused); raise the sender's error."""
        await self.done.wait()
        if self.error is not None:
            raise self.error


class RunActor:
    """One active run: a mailbox of commands, handled in order by its task.

    The task lives while the run has something to do and ends when the run rests
    (passivation): memory then holds only a timer entry, if the run sleeps.
    """

    def __init__(self, run_id: str, *, fresh: bool, opening: Opening | None = None) -> None:
        self.run_id = run_id
        self.fresh = fresh
        """Its first activation starts a run that was just recorded (not a recovery)."""
        self.opening = opening
        """The run's start, for its first activation to write (see ``Opening``)."""
        self.has_rested = False
        """The task ended: the run is suspended, finished, or owned elsewhere."""
        self._rested: anyio.Event | None = None  # made when someone waits (rarely)
        self.state: RunState | None = None
        """The run's state as its last activation left it."""
        self.error: BaseException | None = None
        """The infrastructure error its last activation ended with, if any."""
        self.result: Any = None
        self._mailbox: deque[tuple[Derive, Answer]] = deque()
        self._owner: RunOwner | None = None

    async def rested(self) -> None:
        """Wait until the task has ended."""
        if not self.has_rested:
            self._rested = self._rested or anyio.Event()
            await self._rested.wait()

    def rest(self) -> None:
        """The task ends: wake whoever waits in :meth:`rested`."""
        self.has_rested = True
        if self._rested is not None:
            self._rested.set()

    def post(self, command: Command) -> None:
        self.push((command.derive, command.answer))

    def push(self, item: tuple[Derive, Answer]) -> None:
        """Keep a command for the next activation."""
        self._mailbox.append(item)

    @property
    def live_owner(self) -> RunOwner | None:
        """The owner of the activation on now, if it still takes requests."""
        owner = self._owner
        return owner if owner is not None and not owner.closed else None

    @property
    def pending(self) -> bool:
        return bool(self._mailbox)

    def take(self) -> tuple[Derive, Answer] | None:
        """The next kept command, if there is one."""
        return self._mailbox.popleft() if self._mailbox else None

    def drain(self) -> list[tuple[Derive, Answer]]:
        """Every command still kept (the task is ending)."""
        items = list(self._mailbox)
        self._mailbox.clear()
        return items

    # The Inbox protocol of the engine: an activation attaches its owner while it lasts.
    async def attach(self, owner: RunOwner) -> None:
        self._owner = owner
        while self._mailbox:
            derive, answer = self._mailbox.popleft()
            try:
                await owner.ask(derive)
            except BaseException as exc:
                answer(exc)
                raise
            answer(None)

    def detach(self) -> None:
        self._owner = None

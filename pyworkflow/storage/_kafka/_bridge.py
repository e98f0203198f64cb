"""A dedicated asyncio loop in one thread, awaited from asyncio or trio without a thread per call.

aiokafka is asyncio-only. The backend runs it on its own event loop in one background
thread, under asyncio callers too: one code path, the backend works from any event loop
(several ``asyncio.run`` calls, trio, anyio), and its consumer keeps tailing while the
caller's loop is busy. A call is one hop: ``LoopThread.submit`` hands the coroutine to the
loop (as ``asyncio.run_coroutine_threadsafe`` would), and the future's done-callback wakes
the waiting task through the caller's loop named by anyio's ``current_token()`` (one code
path for asyncio and trio). Both directions coalesce: concurrent calls share one wake-up of
the loop, and calls that finish together one wake-up of the caller's (a wake-up is a
syscall and a GIL hand-off; with 100 runs appending at once they were the worker's cost). Measured:
a round trip costs ~55 us (asyncio) / ~65 us (trio) on an idle machine, against 1-2 ms for
every call that reaches the broker. Under load the two threads share the GIL: running
aiokafka on an asyncio caller's own loop instead was ~20-30% faster end to end in
``benchmarks/bench_kafka.py``, at the price of a second code path and a backend tied to
the first loop that used it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import functools
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import anyio
from anyio.lowlevel import EventLoopToken, current_token

from ..._exceptions import StorageError

__all__ = ["LoopThread", "wait_future"]

T = TypeVar("T")


class LoopThread:
    """Runs one coroutine (the backend's supervisor) on a fresh asyncio loop in a thread.

    The loop lives exactly as long as that coroutine: when it returns, remaining tasks are
    cancelled, the loop is closed and the thread ends.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop = asyncio.new_event_loop()
        self._finished: cf.Future[None] = cf.Future()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._submitted: list[tuple[Coroutine[Any, Any, Any], cf.Future[Any]]] = []

    def start(self, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
        def run() -> None:
            try:
                with asyncio.Runner(loop_factory=lambda: self._loop) as runner:
                    runner.run(main())
            except BaseException as exc:  # reported to whoever joins the thread
                self._finished.set_exception(exc)
            else:
                self._finished.set_result(None)

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> cf.Future[T]:
        """Schedule ``coro`` on the loop; StorageError if the loop is gone.

        Calls submitted while the loop has not yet taken the previous ones ride on the same
        wake-up of the loop (one self-pipe write for many concurrent calls)."""
        future: cf.Future[T] = cf.Future()
        with self._lock:
            self._submitted.append((coro, future))
            if len(self._submitted) > 1:
                return future  # a wake-up is on its way: it takes this one too
        try:
            self._loop.call_soon_threadsafe(self._start_submitted)
        except RuntimeError as exc:  # the loop is closed
            with self._lock:
                dropped, self._submitted = self._submitted, []
            for pending, _ in dropped:
                pending.close()
            raise StorageError("the Kafka backend is closed; create a new one") from exc
        return future

    def _start_submitted(self) -> None:
        """On the loop: a task for each submitted call, its outcome copied to its future
        (and a cancelled future cancels its task), as ``run_coroutine_threadsafe`` does."""
        with self._lock:
            submitted, self._submitted = self._submitted, []
        loop = self._loop
        for coro, future in submitted:
            if future.cancelled():
                coro.close()
                continue
            task = loop.create_task(coro)
            task.add_done_callback(functools.partial(_copy_outcome, future))
            future.add_done_callback(functools.partial(_cancel_task, loop, task))

    def call_soon(self, callback: Callable[[], object]) -> bool:
        """Run ``callback`` on the loop; False if the loop is already closed."""
        try:
            self._loop.call_soon_threadsafe(callback)
        except RuntimeError:
            return False
        return True

    @property
    def finished(self) -> bool:
        """Whether the loop's coroutine has returned and the loop is closed."""
        return self._finished.done()

    async def join(self) -> None:
        """Wait (without blocking the caller's loop) until the thread has ended. Cancelling
        the wait leaves the thread alone."""
        await wait_future(self._finished, cancel=False)
        if self._thread is not None:
            self._thread.join()


def _copy_outcome(future: cf.Future[Any], task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        future.cancel()
        return
    if not future.set_running_or_notify_cancel():
        return  # cancelled by its waiter meanwhile
    exc = task.exception()
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(task.result())


def _cancel_task(
    loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], future: cf.Future[Any]
) -> None:
    if future.cancelled():
        with contextlib.suppress(RuntimeError):  # the loop is closed: the task is gone
            loop.call_soon_threadsafe(task.cancel)


class _Waker:
    """Runs callbacks on one event loop from other threads: the callbacks that come while
    the loop has not yet run the previous ones ride on the same wake-up (one write to the
    loop's wake-up socket for many finished calls)."""

    def __init__(self, schedule: Callable[[Callable[[], object]], object]) -> None:
        self._schedule = schedule
        self._lock = threading.Lock()
        self._pending: list[Callable[[], object]] = []

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Raises RuntimeError if the loop has ended."""
        with self._lock:
            self._pending.append(callback)
            if len(self._pending) > 1:
                return
        try:
            self._schedule(self._run)
        except RuntimeError:
            with self._lock:
                self._pending.clear()
            raise

    def _run(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for callback in pending:
            callback()


_wakers: weakref.WeakKeyDictionary[Any, _Waker] = weakref.WeakKeyDictionary()
_wakers_lock = threading.Lock()


def _waker(token: EventLoopToken) -> _Waker:
    native = token.native_token
    with _wakers_lock:
        waker = _wakers.get(native)
        if waker is None:
            waker = _wakers[native] = _Waker(_call_soon_threadsafe(token))
    return waker


async def wait_future(future: cf.Future[T], *, cancel: bool = True) -> T:
    """Await a concurrent future from asyncio or trio; cancelling the wait cancels it
    (unless ``cancel=False``)."""
    done = anyio.Event()
    call_soon = _waker(current_token()).call_soon

    def wake(_: cf.Future[Any]) -> None:
        # RuntimeError (trio's RunFinishedError is one): the waiting loop ended, nobody to wake
        with contextlib.suppress(RuntimeError):
            call_soon(done.set)

    future.add_done_callback(wake)
    try:
        await done.wait()
    except BaseException:
        if cancel:
            future.cancel()
        raise
    if future.cancelled():
        msg = "the Kafka backend stopped before the call finished (it was closed meanwhile)"
        raise StorageError(msg)
    return future.result()


def _call_soon_threadsafe(token: EventLoopToken) -> Callable[[Callable[[], object]], object]:
    """The caller's loop's non-blocking, thread-safe "run this soon".

    anyio's token names the caller's loop on either backend. Its own
    ``from_thread.run_sync(token=)`` blocks the calling thread until the callback ran, which
    would stall the Kafka loop thread on every wake-up; asyncio's loop
    (``call_soon_threadsafe``) and trio's token (``run_sync_soon``) both offer the
    non-blocking form.
    """
    native = token.native_token
    schedule: Callable[[Callable[[], object]], object] | None = getattr(
        native, "run_sync_soon", None
    ) or getattr(native, "call_soon_threadsafe", None)
    if schedule is None:
        msg = f"cannot wake an event loop of type {type(native).__name__} from another thread"
        raise StorageError(msg)
    return schedule

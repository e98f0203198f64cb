"""``pyworkflow run``: host a Supervisor for the app's workflows until Ctrl-C or SIGTERM.

The supervisor wakes the storage's runs when they are due (sleeps, retry delays, hook
timeouts), picks up what other processes made due (a hook payload sent by ``pyworkflow
hooks send``, a run whose process died) and executes them with the app's code. The first
SIGINT or SIGTERM stops it gracefully: no new work is taken, active runs get up to the
grace period to finish their running steps and rest, and the process exits 0. A second
signal stops it at once (exit 130); what was in flight is left recoverable, as after a crash.

Its status lines (start, stop) go to stderr: stdout belongs to the user's program.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeGuard

import anyio

from .. import actors
from .._execution._workflow import Workflow
from ..actors import Supervisor
from ._common import APP_ENV, CliEnv, CommandFailed, ExitCode

if TYPE_CHECKING:
    from ..storage import KafkaStorageBackend

__all__ = ["cmd_run", "cmd_worker"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_SETTLE = 0.05  # seconds for a signal already in delivery to arrive


@dataclass(slots=True)
class _Stop:
    """What the signals asked for: a graceful stop, then (a second signal) an immediate one."""

    requested: anyio.Event = field(default_factory=anyio.Event)
    signal_name: str = ""
    forced: bool = False


def _note(text: str) -> None:
    sys.stderr.write(f"pyworkflow run: {text}\n")
    sys.stderr.flush()


def _app_name(env: CliEnv) -> str:
    app: str | None = env.args.app or os.environ.get(APP_ENV)
    if not app:
        msg = (
            f"pyworkflow run needs the module that defines your workflows: "
            f"--app MODULE[:ATTR] (or ${APP_ENV})"
        )
        raise CommandFailed(msg, ExitCode.USAGE)
    return app


def _hosted(app: str) -> str:
    """The workflows the app's module defines or imports, for the start line."""
    module = sys.modules.get(app.partition(":")[0])
    names = sorted(
        {v.name for v in vars(module).values() if isinstance(v, Workflow)} if module else ()
    )
    if not names:
        return f"{app} (no @workflow among its module's names)"
    return f"{len(names)} workflow{'s' * (len(names) != 1)} from {app} ({', '.join(names)})"


async def _watch_signals(
    signals: AsyncIterator[int], stop: _Stop, force: anyio.CancelScope
) -> None:
    async for signum in signals:
        name = signal.Signals(signum).name
        if not stop.requested.is_set():
            stop.signal_name = name
            stop.requested.set()
            continue
        _note(f"{name} again: stopping now; steps in flight are left to recover")
        stop.forced = True
        force.cancel()
        return


@contextmanager
def _late_signals_ignored() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while inside, outside the signal receiver. A signal that
    arrives as the receiver closes (a wrapper like ``just`` or ``timeout`` forwarding a
    second copy) is then dropped instead of killing a process that is exiting cleanly:
    trio re-raises pending signals when the receiver closes, against the handler it found."""
    previous = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    for signum in _SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


async def cmd_run(env: CliEnv) -> int:
    args = env.args
    app = _app_name(env)
    host = Supervisor(
        env.storage,
        max_active=args.max_active,
        poll_interval=args.poll_interval,
        grace_period=args.grace_period,
    )
    return await _host_until_signalled(env, host, f"hosting {_hosted(app)}")


async def cmd_worker(env: CliEnv) -> int:
    args = env.args
    app = _app_name(env)
    if not _is_kafka(env.storage):
        msg = (
            f"pyworkflow worker shares runs through Kafka: pass --storage "
            f"kafka://HOST:PORT?prefix=NAME (got {env.storage_desc})"
        )
        raise CommandFailed(msg, ExitCode.USAGE)
    host = actors.Worker(  # the attribute imports aiokafka, which the kafka extra brings
        env.storage,
        max_active=args.max_active,
        session_timeout=args.session_timeout,
        grace_period=args.grace_period,
    )
    return await _host_until_signalled(env, host, f"worker for {_hosted(app)}")


def _is_kafka(storage: object) -> TypeGuard[KafkaStorageBackend]:
    """Whether ``storage`` is a KafkaStorageBackend (imported here: it needs aiokafka, an
    extra; ``pyworkflow demo`` and ``run`` must work without it)."""
    try:
        from ..storage import KafkaStorageBackend
    except ImportError:
        return False  # no aiokafka: no Kafka storage either
    return isinstance(storage, KafkaStorageBackend)


async def _host_until_signalled(env: CliEnv, host: Supervisor, what: str) -> int:
    """Run ``host`` (a Supervisor, or a Worker that also serves its commands) until the
    first SIGINT/SIGTERM, then leave it gracefully; a second signal stops at once."""
    args = env.args
    stop = _Stop()
    serve = getattr(host, "serve", None)
    with _late_signals_ignored():
        with anyio.open_signal_receiver(*_SIGNALS) as signals:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_signals, signals, stop, tg.cancel_scope)
                async with host, anyio.create_task_group() as serving:
                    if serve is not None:
                        serving.start_soon(serve)
                    _note(
                        f"{what} on {env.storage_desc} "
                        f"(max {args.max_active} active, {args.loop}, pid {os.getpid()}); "
                        "Ctrl-C or SIGTERM stops"
                    )
                    await stop.requested.wait()
                    _note(
                        f"{stop.signal_name}: stopping; no new work is taken, active runs get up "
                        f"to {args.grace_period:g}s to finish their steps and rest (a second "
                        "signal stops at once)"
                    )
                    serving.cancel_scope.cancel()
                tg.cancel_scope.cancel()
        # A signal still on its way to the closed receiver is re-raised by the loop soon
        # after; let that happen while it is ignored.
        await anyio.sleep(_SETTLE)
    return ExitCode.INTERRUPTED if stop.forced else ExitCode.OK

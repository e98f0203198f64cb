"""Serving the dashboard with Hypercorn on trio, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import sys

import anyio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from ._app import create_app
from ._options import DashboardOptions

__all__ = ["serve"]


async def serve(options: DashboardOptions, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the dashboard on ``host:port`` until SIGINT or SIGTERM (on trio: Hypercorn's
    trio worker). Status lines go to stderr."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.graceful_timeout = 2.0
    stop = anyio.Event()

    async def on_signal() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                stop.set()
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(on_signal)
        auth = "token required" if options.token else "no token (loopback only)"
        mode = ", read-only" if options.read_only else ""
        sys.stderr.write(
            f"pyworkflow dashboard: http://{config.bind[0]}/ on {options.storage_desc} "
            f"({auth}{mode}); Ctrl-C stops it\n"
        )
        sys.stderr.flush()
        await hypercorn_serve(create_app(options), config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
        tg.cancel_scope.cancel()

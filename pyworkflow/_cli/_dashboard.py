"""``pyworkflow dashboard``: serve the web dashboard on the storage (needs the extra)."""

from __future__ import annotations

import importlib
from typing import Any

from ._common import CliEnv, CommandFailed, ExitCode

__all__ = ["cmd_dashboard"]


def _dashboard() -> Any:
    """``pyworkflow.dashboard``, imported only here: its dependencies are an extra."""
    try:
        return importlib.import_module("pyworkflow.dashboard")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] == "pyworkflow":
            raise
        msg = (
            f"the dashboard needs {exc.name!r}, which is not installed: "
            "pip install 'pyworkflow[dashboard]'"
        )
        raise CommandFailed(msg, ExitCode.USAGE) from None


async def cmd_dashboard(env: CliEnv) -> int:
    args = env.args
    dashboard = _dashboard()
    token = dashboard.check_bind(args.host, args.token)
    options = dashboard.DashboardOptions(
        storage=env.storage, storage_desc=env.storage_desc, token=token,
        read_only=args.read_only, interval=args.interval,
    )  # fmt: skip
    await dashboard.serve(options, host=args.host, port=args.port)
    return ExitCode.OK

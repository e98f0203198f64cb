"""The argument parser of ``pyworkflow``: one sub-command per ``add_*`` function.

The options every command shares (``--storage``, ``--app``, ``--json``, ``--debug``,
``--log-level``, ``--log-format``) are accepted before the command and after it. A new
command (e.g. a later ``worker``) is one more ``add_*`` function in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, get_args

from .._core._records import HookStatus, RunStatus
from .._logging import LogFormat, LogLevel
from ._common import APP_ENV, ExitCode
from ._control import cmd_cancel, cmd_hooks_list, cmd_hooks_send, cmd_resume
from ._dashboard import cmd_dashboard
from ._host import cmd_run, cmd_worker
from ._runs import cmd_events, cmd_runs_list, cmd_runs_show
from ._schedules import (
    cmd_schedules_list,
    cmd_schedules_pause,
    cmd_schedules_resume,
    cmd_schedules_trigger,
)
from ._storage import DEFAULT_STORAGE, STORAGE_ENV

__all__ = ["EPILOG", "build_parser"]

EPILOG = f"""\
storage (--storage or ${STORAGE_ENV}, default {DEFAULT_STORAGE}):
  file:PATH                  a folder (file:./workflow_data, file:///srv/wf?durability=none)
  memory                     an empty in-memory store (only useful for demo)
  kafka://HOST:PORT[?prefix=NAME]   Apache Kafka, topics {{prefix}}.events, ...

app (--app or ${APP_ENV}): the module that defines the workflows, as module or
  module:attribute; needed to execute runs (run, resume; cancel and hooks send wake the run).

exit codes:
  {ExitCode.OK}    ok
  {ExitCode.ERROR}    error (storage failure, unexpected error)
  {ExitCode.USAGE}    usage: bad arguments, storage URL, --app, JSON payload or hook token
  {ExitCode.NOT_FOUND}    not found: run, hook token, or the run's workflow (needs --app)
  {ExitCode.CONFLICT}    conflict: run locked by another executor, already finished, hook
       already received or expired
  {ExitCode.INTERRUPTED}  interrupted (Ctrl-C; for run and worker, a second SIGINT/SIGTERM:
       the first stops it gracefully and exits 0)
"""

_LEVELS: tuple[str, ...] = get_args(LogLevel)
_FORMATS: tuple[str, ...] = get_args(LogFormat)


class _Parser(argparse.ArgumentParser):
    """Reports a usage error as one ``error:`` line and exits with code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (see: {self.prog} --help)\n")
        raise SystemExit(ExitCode.USAGE)


def _common(parser: argparse.ArgumentParser, *, top: bool, json_flag: bool = True) -> None:
    # After the command, options default to SUPPRESS so they don't overwrite the ones
    # given before it (argparse copies a sub-parser's defaults onto the namespace).
    def d(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("common options")
    group.add_argument(
        "--storage", metavar="URL", default=d(None),
        help=f"where runs are stored (default: ${STORAGE_ENV} or {DEFAULT_STORAGE})",
    )  # fmt: skip
    group.add_argument(
        "--app", metavar="MODULE[:ATTR]", default=d(None),
        help=f"import this module so its workflows can run (default: ${APP_ENV})",
    )  # fmt: skip
    if json_flag:
        group.add_argument("--json", action="store_true", default=d(False), help="print JSON")
    group.add_argument("--debug", action="store_true", default=d(False), help="tracebacks")
    group.add_argument("--log-level", choices=_LEVELS, default=d(None), help="default: warning")
    group.add_argument("--log-format", choices=_FORMATS, default=d(None), help="default: console")


Adder = Callable[[Any], None]


def _command(
    commands: Any,
    name: str,
    help_text: str,
    handler: Callable[..., Any] | None = None,
    *,
    json_flag: bool = True,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help_text, description=help_text, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    _common(parser, top=False, json_flag=json_flag)
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def _add_runs(commands: Any) -> None:
    runs = _command(commands, "runs", "list and inspect runs")
    sub = runs.add_subparsers(dest="runs_command", required=True, metavar="{list,show}")
    ls = _command(sub, "list", "list runs, newest first", cmd_runs_list)
    ls.add_argument("--status", choices=[s.value for s in RunStatus], help="only this status")
    ls.add_argument("--workflow", metavar="NAME", help="only runs of this workflow")
    ls.add_argument("--limit", type=_positive, default=50, metavar="N", help="default: 50")
    ls.add_argument("--cursor", help="continue after a previous page")
    show = _command(
        sub, "show", "a run's status, result or error, timings and waits", cmd_runs_show
    )
    show.add_argument("run_id", metavar="RUN_ID")


def _add_events(commands: Any) -> None:
    events = _command(commands, "events", "print a run's event log", cmd_events)
    events.add_argument("run_id", metavar="RUN_ID")
    events.add_argument(
        "--follow", "-f", action="store_true",
        help="keep printing new events until the run finishes (Ctrl-C stops); "
        "with --json, one event per line",
    )  # fmt: skip
    events.add_argument(
        "--interval", type=_positive_float, default=0.2, metavar="SECONDS",
        help="polling interval of --follow (default: 0.2)",
    )  # fmt: skip


def _add_resume_cancel(commands: Any) -> None:
    resume = _command(commands, "resume", "continue a suspended run (needs --app)", cmd_resume)
    resume.add_argument("run_id", metavar="RUN_ID")
    cancel = _command(commands, "cancel", "request a run's cancellation", cmd_cancel)
    cancel.add_argument("run_id", metavar="RUN_ID")
    cancel.add_argument("--reason", metavar="TEXT", help="recorded with the cancellation")


def _add_hooks(commands: Any) -> None:
    hooks = _command(commands, "hooks", "list hooks and send their payloads")
    sub = hooks.add_subparsers(dest="hooks_command", required=True, metavar="{list,send}")
    ls = _command(sub, "list", "hooks of all runs or of one, oldest first", cmd_hooks_list)
    ls.add_argument("--run", metavar="RUN_ID", help="only this run's hooks")
    ls.add_argument("--status", choices=[s.value for s in HookStatus], help="only this status")
    send = _command(
        sub, "send", "deliver a payload to a waiting hook", cmd_hooks_send, json_flag=False
    )
    send.add_argument("token", metavar="TOKEN", help="run_...:hook_... (see hooks list)")
    send.add_argument(
        "--json", dest="payload", default="null", metavar="PAYLOAD",
        help="the payload as JSON ('-' reads stdin; default: null); for JSON output "
        "put --json before the command: pyworkflow --json hooks send ...",
    )  # fmt: skip


def _add_schedules(commands: Any) -> None:
    schedules = _command(commands, "schedules", "list, pause, resume and trigger schedules")
    sub = schedules.add_subparsers(
        dest="schedules_command", required=True, metavar="{list,pause,resume,trigger}"
    )
    _command(sub, "list", "schedules by id, with their next run and counts", cmd_schedules_list)
    for name, text, cmd in (
        ("pause", "stop a schedule's firing (its runs go on)", cmd_schedules_pause),
        ("resume", "fire a paused schedule again, from its next due time", cmd_schedules_resume),
        ("trigger", "start a run of the schedule now (needs --app)", cmd_schedules_trigger),
    ):
        _command(sub, name, text, cmd).add_argument("schedule_id", metavar="SCHEDULE_ID")


def _add_demo(commands: Any) -> None:
    demo = _command(
        commands, "demo", "a durable order workflow in an embedded Supervisor on file storage"
    )
    demo.add_argument("--data", type=Path, default=Path("workflow_data"), help="storage folder")
    demo.add_argument("--wait", type=float, default=1.5, help="seconds the workflow sleeps")
    demo.set_defaults(handler=None, needs_storage=False)


def _add_run(commands: Any) -> None:
    run = _command(
        commands, "run", "host a Supervisor for the app's workflows until Ctrl-C or SIGTERM",
        cmd_run, json_flag=False,
    )  # fmt: skip
    run.description = """\
host a Supervisor for the app's workflows (--app) until Ctrl-C or SIGTERM: it wakes
sleeps, retry delays and hook timeouts when due, and executes what other processes make
due (hook payloads, cancellations, runs whose process died). The first SIGINT or SIGTERM
stops it gracefully: no new work, active runs get --grace-period to finish their
running steps and rest, exit 0. A second one stops it at once (exit 130); what was in flight is
recovered by the next host, as after a crash. Status lines go to stderr."""
    _host_options(run)
    run.add_argument(
        "--poll-interval", type=_positive_float, default=1.0, metavar="SECONDS",
        help="how often the storage is read for runs other processes made due (default: 1)",
    )  # fmt: skip


def _host_options(command: Any) -> None:
    """What ``run`` and ``worker`` share: how many runs at once, the grace period, the loop."""
    command.add_argument(
        "--max-active", type=_positive, default=1000, metavar="N",
        help="runs executing at once; more wait (default: 1000)",
    )  # fmt: skip
    command.add_argument(
        "--grace-period", type=_positive_float, default=30.0, metavar="SECONDS",
        help="on SIGINT/SIGTERM, how long running steps may go on (default: 30)",
    )  # fmt: skip
    command.add_argument(
        "--loop", choices=("trio", "asyncio"), default="trio",
        help="the event loop the workflows run on (default: trio); asyncio if your steps "
        "use asyncio-only libraries",
    )  # fmt: skip


def _add_worker(commands: Any) -> None:
    worker = _command(
        commands, "worker", "a worker of a Kafka storage: executes the runs of the "
        "partitions its consumer group gives it, until Ctrl-C or SIGTERM",
        cmd_worker, json_flag=False,
    )  # fmt: skip
    worker.description = """\
join the consumer group {prefix}.workers on {prefix}.commands and execute the runs of the
partitions it assigns (--storage kafka://HOST:PORT?prefix=NAME, --app for the code): their
commands (start, hook payloads, cancellations sent by a Client) and their timers. A dead
worker's partitions move to the others after --session-timeout. The first SIGINT or
SIGTERM stops it gracefully: running steps get --grace-period to finish and be recorded,
its partitions go back to the group, exit 0; a second one stops it at once (exit 130)."""
    _host_options(worker)
    worker.set_defaults(fold_nothing=True)  # its partitions come from the group
    worker.add_argument(
        "--session-timeout", type=_positive_float, default=10.0, metavar="SECONDS",
        help="the consumer group's session timeout: a dead worker's runs move on after "
        "about this long (default: 10)",
    )  # fmt: skip


def _add_dashboard(commands: Any) -> None:
    dashboard = _command(
        commands, "dashboard", "serve a web dashboard of the storage's runs (needs the "
        "dashboard extra)", cmd_dashboard, json_flag=False,
    )  # fmt: skip
    dashboard.description = """\
serve a web dashboard: runs (paged, filtered, counted by status), each run's record,
timeline and events, live over server-sent events, and the operator's actions (cancel with
a reason, deliver a hook payload, resume a due run; --app runs the workflows on). Binds
127.0.0.1; anywhere else it needs a token (--token or $PYWORKFLOW_DASHBOARD_TOKEN) that
every request carries (Authorization: Bearer, or open /?token=... once). Needs
pip install 'pyworkflow[dashboard]'."""
    dashboard.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    dashboard.add_argument("--port", type=int, default=8000, help="default: 8000")
    dashboard.add_argument(
        "--token", metavar="SECRET", default=None,
        help="require this token (default: $PYWORKFLOW_DASHBOARD_TOKEN; required off loopback)",
    )  # fmt: skip
    dashboard.add_argument(
        "--read-only", action="store_true", help="show runs, but no actions"
    )
    dashboard.add_argument(
        "--interval", type=_positive_float, default=0.5, metavar="SECONDS",
        help="how often live pages read the storage (default: 0.5)",
    )  # fmt: skip
    dashboard.set_defaults(loop="trio")  # Hypercorn's trio worker


COMMANDS: tuple[Adder, ...] = (
    _add_runs, _add_events, _add_resume_cancel, _add_hooks, _add_schedules, _add_run, _add_worker,
    _add_demo,
    _add_dashboard,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pyworkflow",
        description="Inspect and drive durable, event-sourced workflow runs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser, top=True)
    parser.set_defaults(needs_storage=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"{text!r} is not a whole number >= 1"
        raise argparse.ArgumentTypeError(msg)
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        msg = f"{text!r} is not a number of seconds > 0"
        raise argparse.ArgumentTypeError(msg)
    return value

"""The ``pyworkflow`` command line: parse, open the storage, run one command, exit.

Errors are printed as one ``error: ...`` line on stderr (``--debug`` adds the traceback)
and mapped to the exit codes listed in ``--help``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence

import anyio

from .._config import configure
from .._exceptions import (
    ConfigurationError,
    ConflictError,
    HookAlreadyReceivedError,
    HookExpiredError,
    HookPayloadError,
    InvalidTokenError,
    NotFoundError,
    WorkflowError,
)
from ._common import APP_ENV, CliEnv, CommandFailed, ExitCode, load_app
from ._demo import run_demo
from ._output import Printer
from ._parser import build_parser
from ._storage import open_storage, parse_storage

__all__ = ["exit_code_for", "main"]

# Most specific first.
_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (HookAlreadyReceivedError, ExitCode.CONFLICT),
    (HookExpiredError, ExitCode.CONFLICT),
    (InvalidTokenError, ExitCode.NOT_FOUND),
    (NotFoundError, ExitCode.NOT_FOUND),
    (ConflictError, ExitCode.CONFLICT),
    (ConfigurationError, ExitCode.USAGE),
    (HookPayloadError, ExitCode.USAGE),
)


def exit_code_for(exc: BaseException) -> int:
    """The exit code that reports ``exc``."""
    if isinstance(exc, CommandFailed):
        return exc.code
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return ExitCode.ERROR


def _message(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, WorkflowError | CommandFailed):
        return text
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {text}"
    return f"unexpected {type(exc).__name__}: {text} (run with --debug for the traceback)"


def _leaf(exc: BaseException) -> BaseException:
    """The one error inside (nested) single-member exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def _run(args: argparse.Namespace) -> int:
    spec = parse_storage(args.storage)
    printer = Printer(as_json=args.json)
    async with open_storage(spec, fold_nothing=getattr(args, "fold_nothing", False)) as storage:
        configure(storage=storage)
        env = CliEnv(args=args, storage=storage, storage_desc=spec.describe(), printer=printer)
        code: int = await args.handler(env)
        return code


def _setup(args: argparse.Namespace) -> None:
    if not args.debug:  # a client library's own warnings would break the one-line errors
        logging.getLogger("aiokafka").addHandler(logging.NullHandler())
        logging.getLogger("aiokafka").propagate = False
    if args.log_level is not None or args.log_format is not None:
        levels = {} if args.log_level is None else {"log_level": args.log_level}
        formats = {} if args.log_format is None else {"log_format": args.log_format}
        configure(**levels, **formats)
    app = args.app or os.environ.get(APP_ENV)
    if app:
        load_app(app)


def _dispatch(args: argparse.Namespace) -> int:
    _setup(args)
    if not args.needs_storage:  # demo
        anyio.run(run_demo, args.data, args.wait)
        return ExitCode.OK
    # `run` picks its loop (trio by default, as the worker runs on trio); the rest asyncio.
    code: int = anyio.run(_run, args, backend=getattr(args, "loop", "asyncio"))
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyworkflow`` console script; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error already reported (2)
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # stdout closed early (| head): not an error worth a message
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.ERROR
    except Exception as exc:
        leaf = _leaf(exc)
        if args.debug:
            traceback.print_exception(exc)
        sys.stderr.write(f"error: {_message(leaf)}\n")
        return exit_code_for(leaf)

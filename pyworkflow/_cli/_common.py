"""What every command of the command line shares: its environment and the app loader."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from dataclasses import dataclass

from .._exceptions import ConfigurationError
from ..storage import StorageBackend
from ._output import Printer

__all__ = ["APP_ENV", "CliEnv", "CommandFailed", "ExitCode", "load_app"]

APP_ENV = "PYWORKFLOW_APP"
_APP = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*)?")


class ExitCode:
    """The exit codes of ``pyworkflow`` (documented in ``--help`` and the README)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4
    INTERRUPTED = 130


class CommandFailed(Exception):
    """A command that cannot do what was asked; ``main`` prints it as one ``error:`` line."""

    def __init__(self, message: str, code: int = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class CliEnv:
    """One invocation: its parsed arguments, its open storage and where it prints."""

    args: argparse.Namespace
    storage: StorageBackend
    storage_desc: str
    printer: Printer


def load_app(spec: str) -> object:
    """Import the app named ``module`` or ``module:attr`` so its ``@workflow``s register.

    The current directory is put on ``sys.path`` first, as ``python -m`` would.

    Raises:
        ConfigurationError: the name is malformed, the module can't be imported, or it
            has no such attribute (the message names which).
    """
    if not _APP.fullmatch(spec):
        msg = f"--app {spec!r} is not 'module' or 'module:attribute' (e.g. myapp.workflows:app)"
        raise ConfigurationError(msg)
    module_name, _, attr = spec.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        missing = exc.name or module_name
        msg = (
            f"cannot import app module {module_name!r}: {exc}; check --app (or ${APP_ENV}) "
            f"and that {missing!r} is importable from {cwd} or PYTHONPATH"
        )
        raise ConfigurationError(msg) from exc
    except Exception as exc:  # the user's module failed while importing
        msg = f"importing app module {module_name!r} raised {type(exc).__name__}: {exc}"
        raise ConfigurationError(msg) from exc
    for part in attr.split(".") if attr else ():
        try:
            target = getattr(target, part)
        except AttributeError:
            msg = f"app {spec!r}: {module_name!r} has no attribute {attr!r}"
            raise ConfigurationError(msg) from None
    return target

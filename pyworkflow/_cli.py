"""The ``pyworkflow`` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import anyio

from ._demo import run_demo

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyworkflow", description="Durable, event-sourced workflows."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="run a durable order workflow on file storage (no broker needed)"
    )
    demo.add_argument("--data", type=Path, default=Path("workflow_data"), help="storage folder")
    demo.add_argument("--wait", type=float, default=2.0, help="seconds the workflow sleeps")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyworkflow`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        anyio.run(run_demo, args.data, args.wait)
    return 0

"""The `aura-monitor` command line: one sub-command per concept, each a module with add_arguments/run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..exceptions import AuraMonitorError

Runner = Callable[[argparse.Namespace], int]


def _build_parser() -> argparse.ArgumentParser:
    from .commands import register

    parser = argparse.ArgumentParser(
        prog="aura-monitor",
        description="Sidecar monitor and stall diagnoser for multi-stage video render pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"aura-monitor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    run: Runner = args.run
    try:
        return run(args)
    except AuraMonitorError as exc:
        print(f"aura-monitor {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

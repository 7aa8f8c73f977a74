"""The `aura-monitor` command line: one sub-command per concept, each a module with add_arguments/run."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from .. import __version__
from ..exceptions import AuraMonitorError
from .exits import INTERRUPTED_BASE, code_for

Runner = Callable[[argparse.Namespace], int]


class Stopped(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so every command cleans up the same way for both."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _build_parser() -> argparse.ArgumentParser:
    from .commands import register

    parser = argparse.ArgumentParser(
        prog="aura-monitor",
        description="Sidecar monitor and stall diagnoser for multi-stage video render pipelines.",
        epilog="exit codes (every command): 0 success; 1 what was asked for does not exist, the sidecar could "
        "not be reached, or a check failed; 2 usage error. `aura-monitor COMMAND --help` lists each one's.",
    )
    parser.add_argument("--version", action="version", version=f"aura-monitor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub)
    return parser


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM unwinds like Ctrl-C (commands that own their signals replace this)."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_stopped)
    except ValueError:  # not the main thread (an embedding program): leave its signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    run: Runner = args.run
    try:
        with _sigterm_as_interrupt():
            return run(args)
    except AuraMonitorError as exc:
        print(f"aura-monitor {args.command}: error: {exc}", file=sys.stderr)
        return code_for(exc)
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
        print(f"aura-monitor {args.command}: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return INTERRUPTED_BASE + signum

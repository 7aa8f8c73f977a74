"""Registry of sub-commands; each module contributes add_arguments() and run()."""

from __future__ import annotations

import argparse
from typing import Any

from . import demo, serve


def _add(sub: Any, name: str, help_text: str, module: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    module.add_arguments(parser)
    parser.set_defaults(run=module.run)


def register(sub: Any) -> None:
    _add(sub, "serve", "Run the sidecar: watch a jobs dir, serve the API, SSE and /metrics.", serve)
    _add(sub, "demo", "Run the sidecar on a generated jobs dir of demo jobs.", demo)

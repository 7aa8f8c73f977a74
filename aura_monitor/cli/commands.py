"""Registry of sub-commands; each module contributes add_arguments() and run(), and may document its exits."""

from __future__ import annotations

import argparse
from typing import Any

from . import demo, serve
from . import explain as explain_cli
from . import fleet as fleet_cli
from . import incidents as incidents_cli
from . import jobs as jobs_cli
from . import pipeline as pipeline_commands
from . import thresholds as thresholds_cli
from . import watch as watch_cli
from .exits import epilog


def _add(sub: Any, name: str, help_text: str, module: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=getattr(module, "EPILOG", None) or epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the exit-code table's lines
    )
    module.add_arguments(parser)
    parser.set_defaults(run=module.run)


def register(sub: Any) -> None:
    _add(sub, "serve", serve.HELP, serve)
    _add(sub, "explain", explain_cli.HELP, explain_cli)
    _add(sub, "demo", "Sidecar + reference worker + one job per fault, live; --once checks every verdict.", demo)
    _add(sub, "watch", watch_cli.HELP, watch_cli)
    _add(sub, "jobs", jobs_cli.HELP, jobs_cli)
    _add(sub, "fleet", fleet_cli.HELP, fleet_cli)
    _add(sub, "incidents", incidents_cli.HELP, incidents_cli)
    _add(sub, "thresholds", thresholds_cli.HELP, thresholds_cli)
    pipeline_commands.register(sub)

"""Registry of sub-commands; each module contributes add_arguments() and run()."""

from __future__ import annotations

import argparse
from typing import Any

from . import demo, serve
from . import explain as explain_cli
from . import jobs as jobs_cli
from . import pipeline as pipeline_commands
from . import watch as watch_cli


def _add(sub: Any, name: str, help_text: str, module: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    module.add_arguments(parser)
    parser.set_defaults(run=module.run)


def register(sub: Any) -> None:
    _add(sub, "serve", "Run the sidecar: watch a jobs dir, serve the API, SSE and /metrics.", serve)
    _add(sub, "explain", "Explain a job: verdict, evidence and what to do, from the files alone.", explain_cli)
    _add(sub, "demo", "Sidecar + reference worker + one job per fault, live; --once checks every verdict.", demo)
    _add(sub, "watch", "Follow one job live (progress bar); exit 0 completed, 1 failed, 3 cancelled.", watch_cli)
    _add(sub, "jobs", "List the sidecar's jobs as a table.", jobs_cli)
    pipeline_commands.register(sub)

"""What the commands that talk to a running sidecar share: its URL and how they fail to reach it."""

from __future__ import annotations

import argparse
import os

from ..exceptions import AuraMonitorError

DEFAULT_URL = "http://127.0.0.1:9465"


class ServerUnreachable(AuraMonitorError):
    """The sidecar could not be reached, or kept dropping the stream, after every reconnection."""


def add_url_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("AURA_MONITOR_URL", DEFAULT_URL),
        help=f"the sidecar's base URL [AURA_MONITOR_URL; default {DEFAULT_URL}]",
    )

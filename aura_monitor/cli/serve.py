"""`aura-monitor serve`: the sidecar with its HTTP API."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

import uvicorn

from ..api.app import create_app
from ..api.limits import raise_fd_limit
from ..config import Settings
from ..exceptions import ConfigError
from ..sidecar import Sidecar
from .settings import add_settings_flags, settings_from_args


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# A token anyone on the network can guess is no token: refused off loopback below this length.
MIN_TOKEN_LENGTH = 16


def check_exposure(settings: Settings) -> None:
    """Refuse to expose retry/cancel beyond loopback without a token of at least 16 characters."""
    if is_loopback(settings.host):
        return
    token = (settings.token or "").strip()
    if not token:
        raise ConfigError(
            f"refusing to bind {settings.host} without a token: set --token or AURA_MONITOR_TOKEN "
            "(mutating routes would be open to the network)"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"refusing to bind {settings.host} with a {len(token)}-character token: beyond loopback --token "
            f"(AURA_MONITOR_TOKEN) needs at least {MIN_TOKEN_LENGTH} characters, e.g. `openssl rand -hex 16`"
        )


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# An update crosses three threads (the inotify reader, the ingest thread, the event loop); with the
# default 5 ms GIL switch interval each hand-off can wait that long under load.
GIL_SWITCH_INTERVAL_S = 0.0005


def run_server(settings: Settings, sidecar: Sidecar | None = None, announce: bool = True) -> None:
    check_exposure(settings)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    raise_fd_limit()  # before the app: the SSE stream cap is derived from the limit
    sidecar = sidecar or Sidecar(settings)
    app = create_app(sidecar)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    if announce:
        print(
            f"aura-monitor watching {sidecar.jobs_dir}; "
            f"API on http://{settings.host}:{settings.port}/api/jobs (docs at /docs, metrics at /metrics)",
            flush=True,
        )
    server.run()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_flags(parser)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(settings.log_level)
    run_server(settings)
    return 0

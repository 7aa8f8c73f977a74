"""`aura-monitor serve`: the sidecar with its HTTP API."""

from __future__ import annotations

import argparse
import contextlib
import errno
import ipaddress
import logging
import socket
import sys
from pathlib import Path

import uvicorn

from ..api.app import create_app
from ..api.limits import raise_fd_limit
from ..config import Settings
from ..exceptions import ConfigError
from ..sidecar import Sidecar
from .exits import DAEMON_STOP, UsageError, epilog
from .settings import add_settings_flags, settings_from_args

HELP = "Run the sidecar: watch a jobs dir, serve the API, SSE and /metrics."
EPILOG = epilog(
    (
        "0    stopped on request",
        "1    the sidecar failed while running",
    ),
    DAEMON_STOP,
    "2    usage error (a bad flag or value) or the address is already in use",
)
log = logging.getLogger("aura_monitor.serve")


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


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for host:port (every address the name resolves to), bound before anything is announced.

    Why here and not in uvicorn: uvicorn reports "address in use" as a log line and exits 1 after our
    banner; binding first turns it into one clear error (exit 2) and gives the real port for --port 0.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}; check --host (AURA_MONITOR_HOST)") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys((i[0], i[1], i[2], i[3], i[4]) for i in infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart over TIME_WAIT, as uvicorn does
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:  # every address on the port the first one was given
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(2048)
            sock.set_inheritable(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        hint = (
            "another process holds it (another aura-monitor?): stop it or pick another --port (AURA_MONITOR_PORT)"
            if exc.errno == errno.EADDRINUSE
            else "check --host and --port (AURA_MONITOR_HOST, AURA_MONITOR_PORT)"
        )
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; {hint}") from None
    return sockets


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _AnnouncingServer(uvicorn.Server):
    """uvicorn's server that says where it listens once the app started and the sockets serve."""

    def __init__(self, config: uvicorn.Config, banner: str | None) -> None:
        super().__init__(config)
        self._banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._banner and not self.should_exit:
            print(self._banner, flush=True)


def warn_if_missing(jobs_dir: Path) -> None:
    """A jobs dir that does not exist yet is waited for, not an error (Aura creates it on first run): say so."""
    if not jobs_dir.is_dir():
        log.warning(
            "jobs dir %s does not exist (yet): no job will show until it is created; watching for it. "
            "If that is the wrong place, set --jobs-dir or AURA_MONITOR_JOBS_DIR (or AURA_DATA_PATH)",
            jobs_dir,
        )


def run_server(settings: Settings, sidecar: Sidecar | None = None, announce: bool = True) -> None:
    check_exposure(settings)
    sockets = bind(settings.host, settings.port)
    try:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        raise_fd_limit()  # before the app: the SSE stream cap is derived from the limit
        sidecar = sidecar or Sidecar(settings)
        if announce:
            warn_if_missing(sidecar.jobs_dir)
        app = create_app(sidecar)
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_level=settings.log_level, timeout_graceful_shutdown=1
        )
        urls = ", ".join(url_of(sock) for sock in sockets)
        banner = (
            f"aura-monitor listening on {urls} (API /api/jobs, docs /docs, metrics /metrics); "
            f"watching {sidecar.jobs_dir}"
        )
        _AnnouncingServer(config, banner if announce else None).run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_flags(parser)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(settings.log_level)
    # uvicorn re-raises the SIGINT/SIGTERM it shut down on; the stop was asked for, so it is a success.
    with contextlib.suppress(KeyboardInterrupt):
        run_server(settings)
    return 0

"""A cap on concurrent SSE streams, refused before any work with a 503 and `Retry-After`.

Why: every stream holds a socket, and a process has a fixed number of file descriptors (1,024 by default).
With a thousand streams open, accept() fails, `/healthz` and `/metrics` stop answering and the loop logs
each failure. Refusing streams past a cap keeps a reserve of descriptors for everything else.
"""

from __future__ import annotations

import asyncio
import logging
import re
import resource
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import Settings
from ..events import EventBroker
from ..ratelog import RateLimitedLog
from .problems import problem

log = logging.getLogger(__name__)

DEFAULT_MAX_STREAMS = 10_000
# Descriptors kept for everything but streams: the API, /metrics, job files, the watcher, log files.
MIN_RESERVE = 64
RETRY_AFTER_S = 5
_STREAM_PATH = re.compile(r"^/api/(events|jobs/[^/]+/events|jobs/[^/]+/progress/stream)$")


def fd_soft_limit() -> int | None:
    """The process' open-file soft limit, None when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def raise_fd_limit(ceiling: int = 65_536) -> int | None:
    """Raise the open-file soft limit to the hard limit (at most `ceiling`), as Go and nginx do; the new soft limit.

    Why: the soft limit is often 1,024 while the hard one allows far more, and every SSE client is a descriptor.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.info("open-file limit stays %d (could not raise it to %d: %s)", soft, wanted, exc)
    return fd_soft_limit()


def stream_cap(configured: int | None, soft_limit: int | None) -> int:
    """--max-streams (or 10,000), never more than the fd limit minus a reserve of a quarter (at least 64)."""
    wanted = configured if configured is not None else DEFAULT_MAX_STREAMS
    if soft_limit is None:
        return wanted
    return max(1, min(wanted, soft_limit - max(MIN_RESERVE, soft_limit // 4)))


class StreamCap:
    """ASGI middleware counting open SSE streams; past the cap a new one gets 503 before it is routed."""

    def __init__(self, app: ASGIApp, settings: Settings, broker: EventBroker | None = None) -> None:
        self.app = app
        self.broker = broker
        self.jobs_url = f"{settings.resolved_external_url}/api/jobs"  # named in the refusal: a URL that opens
        self.limit = fd_soft_limit()
        self.cap = stream_cap(settings.max_streams, self.limit)
        self.open = 0
        self.refused = 0
        self._log = RateLimitedLog(log, burst=3, interval=60.0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # runs until the server shuts down: then say what was left unsaid
            try:
                await self.app(scope, receive, send)
            finally:
                self._log.flush()
            return
        if scope["type"] != "http" or scope.get("method") != "GET" or not _STREAM_PATH.match(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        if self.open >= self.cap:  # the loop is single-threaded: no lock between this test and the increment
            self.refused += 1
            if self.broker is not None:
                self.broker.refused += 1
            self._log.log(
                logging.WARNING,
                "SSE streams at their cap",
                "refused an SSE stream: %d are open, the cap is %d (--max-streams; open-file limit %s); "
                "raise `ulimit -n` and --max-streams, or put fewer clients on this sidecar",
                self.open,
                self.cap,
                self.limit if self.limit is not None else "unlimited",
            )
            response = problem(
                503,
                "Too many streams",
                f"{self.open} event streams are open and this sidecar takes at most {self.cap} "
                f"(--max-streams, bounded by the open-file limit); retry later or poll GET {self.jobs_url}",
                "too-many-streams",
                scope.get("path"),
                # Closed at once: a refused client that keeps its connection would still hold a descriptor.
                headers={"Retry-After": str(RETRY_AFTER_S), "Connection": "close"},
                maxStreams=self.cap,
            )
            await response(scope, receive, send)
            return
        self.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1


def bound_loop_errors(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Route the event loop's error reports (accept() failing with EMFILE...) through a rate limit.

    Returns a function restoring the previous handler.
    """
    previous = loop.get_exception_handler()
    limited = RateLimitedLog(logging.getLogger("asyncio"), burst=3, interval=60.0)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        key = str(context.get("message") or type(context.get("exception")).__name__)
        # Only the first few of each kind go to the real handler (with their traceback); the rest are counted.
        if limited.allow(key, logging.ERROR):
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

    loop.set_exception_handler(handler)

    def restore() -> None:
        limited.flush()
        loop.set_exception_handler(previous)

    return restore

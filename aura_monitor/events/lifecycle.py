"""Ending streams when the server shuts down.

uvicorn asks open connections to finish, waits `timeout_graceful_shutdown`, then cancels them, and only
afterwards tells the app (lifespan shutdown): an endless stream would hold every shutdown for that long.
So the app watches the server's own `should_exit` flag. The server is handed over explicitly
(`app.state.uvicorn_server`) or found through the signal handler uvicorn installs when it runs in the
main thread, which is a bound method of the server.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from .broker import EventBroker

# Every stream must end within the 1 s graceful-shutdown budget; polling faster only costs idle CPU.
POLL_S = 0.25


def running_uvicorn_server() -> Any | None:
    """The uvicorn Server of this process, when it installed its signal handlers (main thread only)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        owner = getattr(signal.getsignal(sig), "__self__", None)
        # Any class in its ancestry: `serve` runs a subclass of uvicorn's Server (defined in aura_monitor), and
        # checking only its own class missed it, so SIGTERM left every stream to be cut off after the grace.
        from_uvicorn = any(cls.__module__.startswith("uvicorn") for cls in type(owner).__mro__)
        if owner is not None and from_uvicorn and hasattr(owner, "should_exit"):
            return owner
    return None


async def end_streams_on_exit(broker: EventBroker, server: Any) -> None:
    """Poll the server's exit flag (set by signals and by `server.should_exit = True` alike)."""
    while not getattr(server, "should_exit", False):
        await asyncio.sleep(POLL_S)
    broker.shutdown()


def watch_server_exit(broker: EventBroker, server: Any | None) -> asyncio.Task[None] | None:
    """Start the watch for `server` (or the one found from the signal handlers); None when there is none."""
    server = server if server is not None else running_uvicorn_server()
    if server is None:
        return None
    return asyncio.get_running_loop().create_task(end_streams_on_exit(broker, server), name="aura-sse-exit-watch")

"""The FastAPI application around a Sidecar."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from .. import __version__
from ..events import watch_server_exit
from ..sidecar import Sidecar
from . import aura, board, control, events, fleet, incidents, jobs, problems, runbooks, thresholds
from .guard import BrowserGuard
from .limits import StreamCap, bound_loop_errors
from .scrape import exposition_response


def create_app(sidecar: Sidecar, *, manage_lifecycle: bool = True) -> FastAPI:
    """The HTTP API; with `manage_lifecycle` the app starts and stops the sidecar with the server."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        restore_loop_errors = bound_loop_errors(asyncio.get_running_loop())
        if manage_lifecycle:
            sidecar.start()
        exit_watch = watch_server_exit(sidecar.events, getattr(app.state, "uvicorn_server", None))
        try:
            yield
        finally:
            if exit_watch is not None:
                exit_watch.cancel()
            if manage_lifecycle:
                sidecar.stop()
            restore_loop_errors()

    app = FastAPI(
        title="aura-monitor",
        version=__version__,
        description="Sidecar monitor and stall diagnoser for video render pipelines.",
        lifespan=lifespan,
        redirect_slashes=False,  # an API answers a problem, never a redirect to a guessed URL
    )
    app.state.sidecar = sidecar
    problems.install(app)
    # Added last = runs first: a foreign Host or a cross-site POST is refused before a stream slot is counted.
    app.add_middleware(StreamCap, settings=sidecar.settings, broker=sidecar.events)
    app.add_middleware(BrowserGuard, settings=sidecar.settings)
    app.include_router(jobs.router)
    app.include_router(aura.router)
    app.include_router(events.router)
    app.include_router(control.router)
    app.include_router(board.router)
    app.include_router(runbooks.router)
    app.include_router(fleet.router)
    app.include_router(incidents.router)
    app.include_router(thresholds.router)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers (and says which node it watches)."""
        return {"status": "ok", "node": sidecar.settings.node}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "not ready"}})
    def readyz(request: Request) -> JSONResponse:
        """Readiness: jobs dir, file watcher and stall timer; degraded (still 200) when some dirs are unwatched."""
        checks: dict[str, Any] = {
            "node": sidecar.settings.node,
            "externalUrl": sidecar.settings.resolved_external_url,
            "jobsDir": str(sidecar.jobs_dir),
            "jobsDirExists": sidecar.watcher.root_exists,
            "watcherAlive": sidecar.watcher.observer_alive,
            "watchBackend": sidecar.settings.watch,
            "stallTimerAlive": sidecar.stall_timer.alive,
            "trackedJobs": len(sidecar.tracker),
        }
        ready = sidecar.ready
        degraded = [*sidecar.watcher.degraded_reasons(), *sidecar.history.degraded_reasons()] if ready else []
        checks["unwatchedDirs"] = sidecar.watcher.stats.unwatched_dirs
        # Degraded stays 200: the rescan still sees every change, so a load balancer must keep the sidecar.
        checks["status"] = ("degraded" if degraded else "ready") if ready else "not ready"
        if degraded:
            checks["reasons"] = degraded
        if not ready:
            reasons = []
            if not checks["jobsDirExists"]:
                reasons.append(f"jobs dir {sidecar.jobs_dir} does not exist yet (waiting for it)")
            if not checks["watcherAlive"]:
                reasons.append("file watcher is not running")
            if not checks["stallTimerAlive"]:
                reasons.append("stall timer is not running")
            checks["reasons"] = reasons
        return JSONResponse(checks, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics(request: Request) -> Response:
        """Prometheus exposition (a plain route: a mounted app would answer 307), gzip'd when asked."""
        return exposition_response(sidecar.exposition(), request.headers.get("accept-encoding", ""))

    return app

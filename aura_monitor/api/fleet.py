"""GET /api/fleet: every node and stalled job of the fleet, read from Prometheus (--prometheus-url)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ..telemetry.fleet import Fleet, read_fleet
from ..telemetry.promql import PrometheusClient, PrometheusUnavailable
from .problems import problem

router = APIRouter(prefix="/api", tags=["fleet"])

# Every open board polls every 5 s; one Prometheus answer serves them all for this long.
CACHE_SECONDS = 3.0


@dataclass
class _Answer:
    at: float
    fleet: Fleet | None
    error: PrometheusUnavailable | None


class FleetCache:
    """One Prometheus read at a time, shared for CACHE_SECONDS (errors too, so a dead Prometheus is not hammered)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = asyncio.Lock()
        self._answer: _Answer | None = None

    async def get(self) -> _Answer:
        async with self._lock:  # a burst of boards waits for the one read in flight instead of adding queries
            answer = self._answer
            if answer is None or time.monotonic() - answer.at >= CACHE_SECONDS:
                answer = self._answer = await self._read()
            return answer

    async def _read(self) -> _Answer:
        async with httpx.AsyncClient() as client:
            try:
                fleet = await read_fleet(PrometheusClient(self.url, client))
            except PrometheusUnavailable as exc:
                return _Answer(time.monotonic(), None, exc)
        return _Answer(time.monotonic(), fleet, None)


def _cache(request: Request, url: str) -> FleetCache:
    cache: FleetCache | None = getattr(request.app.state, "fleet_cache", None)
    if cache is None or cache.url != url:
        cache = request.app.state.fleet_cache = FleetCache(url)
    return cache


@router.get(
    "/fleet",
    response_model=Fleet,
    response_model_by_alias=True,
    responses={
        404: {"description": "no --prometheus-url: the fleet view is off"},
        502: {"description": "Prometheus could not be reached or refused the query"},
    },
)
async def fleet(request: Request) -> Response:
    """Every node (up or down, jobs by status) and every stalled job of the fleet, from Prometheus."""
    url = request.app.state.sidecar.settings.prometheus_url
    if not url:
        return problem(
            404,
            "Fleet view is off",
            "this sidecar has no Prometheus to read the fleet from: start it with --prometheus-url "
            "http://<prometheus>:9090 (or AURA_MONITOR_PROMETHEUS_URL), the Prometheus that scrapes every "
            "sidecar (docs/fleet.md)",
            "fleet-disabled",
            instance=str(request.url.path),
        )
    answer = await _cache(request, url.rstrip("/")).get()
    if answer.fleet is None:
        error = answer.error or PrometheusUnavailable(url, "gave no answer")
        return problem(
            502,
            "Prometheus unavailable",
            f"{error}; the fleet view reads every node from it. Check that Prometheus runs and that "
            "this sidecar reaches it (--prometheus-url)",
            "prometheus-unavailable",
            instance=str(request.url.path),
            prometheusUrl=error.url,
        )
    return JSONResponse(answer.fleet.model_dump(mode="json", by_alias=True), headers={"Cache-Control": "no-store"})

"""GET /api/incidents, /api/incidents/{id} and /api/stats: the incident history (docs/history.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from ..exceptions import InvalidQuery
from ..history import IncidentQuery, StoreUnavailable
from ..history.stats import parse_span, stage_stats
from ..jobs.stages import stage_key
from ..jobs.verdicts import Verdict
from ..records.timestamps import format_iso, parse_iso
from .jobs import SidecarDep
from .problems import problem

router = APIRouter(prefix="/api", tags=["history"])

Incident = dict[str, Any]


def _when(text: str | None, now: float, what: str) -> float | None:
    """An ISO-8601 instant, or a duration meaning that long ago ("24h")."""
    if text is None or not text.strip():
        return None
    try:
        return parse_iso(text)
    except ValueError:
        pass
    try:
        return now - parse_span(text, what)
    except InvalidQuery:
        raise InvalidQuery(f"{what} {text[:40]!r}: expected an ISO-8601 time or a duration like 24h or 7d") from None


def _verdicts(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    known = {verdict.value for verdict in Verdict}
    words = tuple(word.strip() for word in raw.split(",") if word.strip())
    unknown = [word for word in words if word not in known]
    if unknown:
        raise InvalidQuery(f"unknown verdict {unknown[0][:40]!r}; use one of {', '.join(sorted(known))}")
    return words


def _dated(incident: Incident) -> Incident:
    """Epoch seconds to the API's ISO-8601 times, the timeline's too."""
    incident["startedAt"] = format_iso(incident["startedAt"])
    if incident["endedAt"] is not None:
        incident["endedAt"] = format_iso(incident["endedAt"])
    incident["timeline"] = [{"at": format_iso(item["at"]), "code": item["code"]} for item in incident["timeline"]]
    return incident


def _unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
    return problem(
        503,
        "History unavailable",
        f"{exc}; watching and detection go on, retry in a few seconds (see /readyz)",
        "history-unavailable",
        request.url.path,
        headers={"Retry-After": "5"},
    )


@router.get("/incidents", response_model=None)
def list_incidents(
    request: Request,
    sidecar: SidecarDep,
    since: Annotated[str | None, Query(description="ISO-8601 time or duration ago, e.g. 24h", max_length=64)] = None,
    until: Annotated[str | None, Query(description="ISO-8601 time or duration ago", max_length=64)] = None,
    verdict: Annotated[str | None, Query(description="comma-separated final verdict codes", max_length=400)] = None,
    stage: Annotated[str | None, Query(description="stage name or canonical stage", max_length=64)] = None,
    open: Annotated[bool | None, Query(description="only open (true) or closed (false) incidents")] = None,
    node: Annotated[str | None, Query(description="render node name", max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any] | JSONResponse:
    """Incidents (stalls) newest first: `{incidents, count}`, count being every match (not only this page)."""
    now = sidecar.clock.now()
    query = IncidentQuery(
        since=_when(since, now, "since"),
        until=_when(until, now, "until"),
        verdicts=_verdicts(verdict),
        stage=stage_key(stage) if stage else None,
        open=open,
        node=node,
        limit=limit,
    )
    try:
        incidents, count = sidecar.history.store.incidents(query)
    except StoreUnavailable as exc:
        return _unavailable(request, exc)
    return {"incidents": [_dated(incident) for incident in incidents], "count": count}


@router.get("/incidents/{incident_id}", response_model=None)
def get_incident(
    request: Request,
    sidecar: SidecarDep,
    incident_id: Annotated[str, Path(description="incident id from GET /api/incidents", max_length=64)],
) -> Incident | JSONResponse:
    """One incident with its evidence snapshot (what the job showed at each verdict)."""
    try:
        incident = sidecar.history.store.incident(incident_id)
    except StoreUnavailable as exc:
        return _unavailable(request, exc)
    if incident is None:
        return problem(
            404, "Incident not found", f"no incident {incident_id!r}; list them with GET /api/incidents",
            "incident-not-found", request.url.path,
        )  # fmt: skip
    return _dated(incident)


@router.get("/stats", response_model=None)
def get_stats(
    request: Request,
    sidecar: SidecarDep,
    window: Annotated[str, Query(description="how far back: 90s, 15m, 24h, 7d, 2w", max_length=32)] = "24h",
) -> dict[str, Any] | JSONResponse:
    """Per stage over the window: runs, duration p50/p95, stall rate, incidents by verdict, time to resolution."""
    seconds = parse_span(window, "window")
    now = sidecar.clock.now()
    try:
        stages = stage_stats(sidecar.history.store, now - seconds)
    except StoreUnavailable as exc:
        return _unavailable(request, exc)
    return {"window": window, "windowSeconds": seconds, "since": format_iso(now - seconds), "stages": stages}

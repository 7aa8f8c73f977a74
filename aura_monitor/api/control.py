"""Mutating routes: retry and cancel, behind the bearer token when one is configured."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .jobs import JobIdPath, SidecarDep, sidecar_of

_bearer = HTTPBearer(auto_error=False, description="the sidecar's --token, when one is configured")


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """401 unless the request carries `Authorization: Bearer <token>` (only when a token is configured)."""
    token = sidecar_of(request).settings.token
    if not token:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        reason = "a wrong bearer token" if credentials is not None else "no bearer token"
        raise HTTPException(
            401,
            detail=f"this route needs the sidecar's token (Authorization: Bearer ...); the request carried {reason}",
            headers={"WWW-Authenticate": 'Bearer realm="aura-monitor"'},
        )


router = APIRouter(prefix="/api", tags=["control"], dependencies=[Depends(require_token)])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_RETRY_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "retry requested: `{jobId, action, requestId, channel, attempt, retriesRemaining}`"},
    400: {"description": "backoff active or retries used up (Retry-After, retriesRemaining)", **_PROBLEM},
    401: {"description": "token missing or wrong", **_PROBLEM},
    404: {"description": "no such job", **_PROBLEM},
    409: {"description": "the job is not failed or cancelled", **_PROBLEM},
    502: {"description": "the request could not be delivered (upstream unreachable)", **_PROBLEM},
}
_CANCEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "cancel requested: `{jobId, action, requestId, channel}`"},
    401: {"description": "token missing or wrong", **_PROBLEM},
    404: {"description": "no such job", **_PROBLEM},
    409: {"description": "the job already ended", **_PROBLEM},
    502: {"description": "the request could not be delivered (upstream unreachable)", **_PROBLEM},
}


@router.post("/jobs/{job_id}/retry", status_code=202, responses=_RETRY_RESPONSES)
def retry_job(job_id: JobIdPath, sidecar: SidecarDep) -> JSONResponse:
    """Run a failed or cancelled job again (same id, next attempt), within the retry policy."""
    return JSONResponse(sidecar.control.retry(job_id).body(), status_code=202)


@router.post("/jobs/{job_id}/cancel", status_code=202, responses=_CANCEL_RESPONSES)
def cancel_job(job_id: JobIdPath, sidecar: SidecarDep) -> JSONResponse:
    """Stop a job that has not ended; the job ends `cancelled` once its runner honoured the request."""
    return JSONResponse(sidecar.control.cancel(job_id).body(), status_code=202)

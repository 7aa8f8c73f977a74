"""RFC 9457 problem responses for every error the API can return."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..exceptions import (
    AuraMonitorError,
    BackoffActive,
    ControlError,
    InvalidJobId,
    JobNotFound,
    NotCancellable,
    NotRetryable,
    UnsafePath,
)

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    slug: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:aura-monitor:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    503: "Service unavailable",
}


def install(app: FastAPI) -> None:
    """Route every error through problem()."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.url.path}; see /docs for the API"
        return problem(
            exc.status_code,
            _TITLES.get(exc.status_code, "Error"),
            detail,
            f"http-{exc.status_code}",
            request.url.path,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"where": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
            for err in exc.errors()
        ]
        summary = "; ".join(f"{e['where']}: {e['message']}" for e in errors[:3])
        return problem(400, "Invalid request", summary, "invalid-request", request.url.path, errors=errors)

    @app.exception_handler(AuraMonitorError)
    async def domain_error(request: Request, exc: AuraMonitorError) -> JSONResponse:
        path = request.url.path
        if isinstance(exc, InvalidJobId):
            return problem(400, "Invalid job id", str(exc), "invalid-job-id", path)
        if isinstance(exc, JobNotFound):
            return problem(404, "Job not found", str(exc), "job-not-found", path)
        if isinstance(exc, BackoffActive):
            return problem(
                400,
                "Retry not allowed now",
                str(exc),
                "retry-backoff",
                path,
                headers={"Retry-After": str(max(1, round(exc.retry_after)))},
                retryAfterSeconds=exc.retry_after,
                retriesRemaining=exc.retries_remaining,
            )
        if isinstance(exc, UnsafePath):
            return problem(409, "Refusing to write through a link", str(exc), "unsafe-path", path)
        if isinstance(exc, (NotRetryable, NotCancellable)):
            return problem(409, "Conflict", str(exc), "conflict", path)
        if isinstance(exc, ControlError):
            return problem(502, "Control request failed", str(exc), "control-failed", path)
        return problem(400, "Bad request", str(exc), "bad-request", path)

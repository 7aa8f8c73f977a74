"""Routes only Aura's frontend calls: `/output`, `/failure-details` and `/logs`, shaped as Aura serves them
(AURA_API.md sections 3 and 4; docs/aura.md)."""

from __future__ import annotations

import os
import stat
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from ..diagnosis.links import JobLinks
from ..jobs.model import JobStatus
from ..records.logs import NO_LOGS, job_log_text
from ..records.safe_read import ReadRoots
from ..records.timestamps import format_iso
from .jobs import KnownJob, SidecarDep
from .problems import problem

router = APIRouter(prefix="/api", tags=["aura"])

# Aura's /output `status`: the enum name lowercased ("done", not "completed").
_OUTPUT_WORDS = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.PAUSED: "paused",
    JobStatus.COMPLETED: "done",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "canceled",
}
# Aura's fallback body when a failed job carries no FailureDetails.
_FALLBACK_ACTIONS = ["Check logs for details", "Retry the operation"]


def _output_file(path: str) -> tuple[os.stat_result | None, str]:
    """lstat only (never opened, never read: docs/security.md): the file's stat when it is a regular file, else
    the reason it does not count as the output."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, "Output path set but file not found on disk"
    except OSError as exc:
        return None, f"Output path set but it cannot be inspected ({exc.strerror or exc})"
    if not stat.S_ISREG(st.st_mode):
        return None, "Output path set but it is not a regular file (a link, directory or FIFO is not shown)"
    return st, ""


@router.get("/jobs/{job_id}/output")
def job_output(job: KnownJob, request: Request) -> JSONResponse:
    """Aura's output check (its Force Complete button): 200 always, `exists` with `path` and `sizeBytes`."""
    state, record = job
    base: dict[str, Any] = {
        "jobId": state.id,
        "status": _OUTPUT_WORDS[record.status],
        "progress": int(record.percent),
        "stage": record.stage,
        "correlationId": record.correlation_id or state.id,
    }
    path = record.output_path
    if not path:
        return JSONResponse({"exists": False, **base, "message": "Output file not yet generated"})
    st, reason = _output_file(path)
    if st is None:
        return JSONResponse({"exists": False, **base, "expectedPath": path, "message": reason})
    body = {"exists": True, "path": path, "sizeBytes": st.st_size, "createdAt": format_iso(st.st_mtime), **base}
    return JSONResponse(body)


@router.get("/jobs/{job_id}/failure-details")
def failure_details(job: KnownJob, sidecar: SidecarDep, request: Request) -> JSONResponse:
    """Aura's JobFailure of a failed job (camelCase); 400 `Job Not Failed` otherwise, as Aura answers."""
    state, record = job
    correlation = record.correlation_id or state.id
    if record.status is not JobStatus.FAILED:
        return problem(
            400,
            "Job Not Failed",
            f"job {state.id} is {record.status.value}, not failed: it has no failure details. "
            f"GET {JobLinks(sidecar.settings.resolved_external_url, state.id).url('explain')} tells what it is doing",
            "job-not-failed",
            request.url.path,
            correlationId=correlation,
            currentStatus=record.status.value,
            jobId=state.id,
        )
    failed_at = format_iso(record.completed_at) if record.completed_at is not None else None
    stage = record.failure_stage or record.stage
    if record.error_code is None and not record.suggested_actions and record.stderr_snippet is None:
        body: dict[str, Any] = {
            "stage": stage,
            "message": record.error_message or "Job failed",
            "correlationId": correlation,
            "suggestedActions": _FALLBACK_ACTIONS,
            "failedAt": failed_at,
        }
    else:
        body = {
            "stage": stage,
            "message": record.error_message or "Job failed",
            "correlationId": correlation,
            "stderrSnippet": record.stderr_snippet,
            "installLogSnippet": None,
            "logPath": record.encoder_log,
            "suggestedActions": list(record.suggested_actions),
            "errorCode": record.error_code,
            "failedAt": failed_at,
        }
    body["jobId"] = state.id
    body["explain"] = JobLinks(sidecar.settings.resolved_external_url, state.id).url("explain")
    return JSONResponse(body)


@router.get("/jobs/{job_id}/logs", response_class=PlainTextResponse)
def job_logs(job: KnownJob, sidecar: SidecarDep) -> PlainTextResponse:
    """The job's log lines as text/plain (Aura's `Logs` joined by newlines), read from the jobs dir only."""
    state, record = job
    settings = sidecar.settings
    roots = ReadRoots([sidecar.jobs_dir, settings.resolved_ffmpeg_log_dir, *settings.read_root])
    text = job_log_text(str(sidecar.jobs_dir), state.id, record, roots)
    return PlainTextResponse(
        text or NO_LOGS, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    )

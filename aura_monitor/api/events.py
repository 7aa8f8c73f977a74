"""Server-Sent Events routes: one job, all jobs, and Aura's `/progress/stream` alias (docs/api.md)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query

from ..events import EventStreamResponse
from ..exceptions import JobNotFound
from ..jobs.model import validate_job_id
from ..records.layout import RECORD_NAME
from ..sidecar import Sidecar
from .jobs import JobIdPath, SidecarDep

router = APIRouter(prefix="/api", tags=["events"])

# Just after a (re)start the first scan may not have reached a job a client is resuming: wait this long.
DISCOVERY_WAIT_S = 3.0
# Aura's /progress/stream waits this long for a job that is not there yet (its export screen connects right
# after creating the job, before the record may be on disk); the stream cap counts the waiting request.
AURA_JOB_WAIT_S = 20.0

LastEventIdHeader = Annotated[
    str | None, Header(description="id of the last event received; its successors are replayed", max_length=128)
]
LastEventIdQuery = Annotated[
    str | None,
    Query(
        alias="lastEventId",
        description="same as the Last-Event-ID header, for clients that cannot set it",
        max_length=128,
    ),
]

_SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "an endless stream of events (docs/api.md)"},
    204: {"description": "the client already received this job's terminal event: nothing more will come"},
    404: {"description": "no such job"},
}


async def _known(sidecar: Sidecar, job_id: str, missing_wait: float = 0.0, *, readable: bool = False) -> None:
    """Return once the job is tracked (with `readable`, once its record has parsed too); wait while its record
    exists but is not ingested yet, and up to `missing_wait` seconds for a record that does not exist yet;
    else 404. A job still unparseable when the wait ends is tracked: the stream opens and speaks once it parses."""
    validate_job_id(job_id)

    def ready() -> bool:
        state = sidecar.tracker.get(job_id)
        return state is not None and (not readable or state.record is not None)

    if ready():
        return
    record = os.path.join(sidecar.jobs_dir, job_id, RECORD_NAME)
    start = time.monotonic()
    deadline = start + max(DISCOVERY_WAIT_S, missing_wait)
    while time.monotonic() < deadline and (os.path.exists(record) or time.monotonic() < start + missing_wait):
        await asyncio.sleep(0.02 if os.path.exists(record) else 0.25)
        if ready():
            return
    if sidecar.tracker.get(job_id) is not None:
        return
    waited = f" (waited {missing_wait:g} s for it to appear)" if missing_wait else ""
    raise JobNotFound(f"no job {job_id!r} in {sidecar.jobs_dir}{waited}")


SnapshotQuery = Annotated[
    Literal["recent", "all"],
    Query(
        description="`recent` (default): active jobs plus the --snapshot-finished most recently finished, "
        "with counts of the rest; `all`: every job (large with thousands of jobs)"
    ),
]


def _stream(
    sidecar: Sidecar,
    job_id: str | None,
    last_event_id: str | None,
    *,
    aura_progress: bool = False,
    snapshot: str = "recent",
) -> EventStreamResponse:
    settings = sidecar.settings
    return EventStreamResponse(
        sidecar.events,
        job_id,
        last_event_id,
        clock=sidecar.clock,
        heartbeat=settings.heartbeat_interval,
        retry_ms=settings.sse_retry_ms,
        aura_progress=aura_progress,
        finished_limit=None if snapshot == "all" else settings.snapshot_finished,
        node=settings.node,
    )


@router.get("/jobs/{job_id}/events", response_class=EventStreamResponse, status_code=200, responses=_SSE_RESPONSES)
async def job_events(
    job_id: JobIdPath,
    sidecar: SidecarDep,
    last_event_id: LastEventIdHeader = None,
    resume: LastEventIdQuery = None,
) -> EventStreamResponse:
    """SSE for one job: `connected` with the job, its events, and one terminal event after which it ends."""
    await _known(sidecar, job_id)
    return _stream(sidecar, job_id, last_event_id or resume)


@router.get("/events", response_class=EventStreamResponse, status_code=200, responses=_SSE_RESPONSES)
async def all_events(
    sidecar: SidecarDep,
    last_event_id: LastEventIdHeader = None,
    resume: LastEventIdQuery = None,
    snapshot: SnapshotQuery = "recent",
) -> EventStreamResponse:
    """SSE for every job: `connected` with active and recent jobs (or all), then every job's events; it does not end."""
    return _stream(sidecar, None, last_event_id or resume, snapshot=snapshot)


@router.get(
    "/jobs/{job_id}/progress/stream", response_class=EventStreamResponse, status_code=200, responses=_SSE_RESPONSES
)
async def aura_progress_stream(
    job_id: JobIdPath,
    sidecar: SidecarDep,
    last_event_id: LastEventIdHeader = None,
    resume: LastEventIdQuery = None,
) -> EventStreamResponse:
    """Aura-compatible: `job-progress {percent, stage, status, message, outputPath}` on every change, then
    Aura's `job-completed`; like Aura's, it waits up to 20 s for a job that is not there yet."""
    # Readable: Aura's export screen reads `status` from the first job-progress; a record caught mid-write
    # (tracked, not parsed yet) would make that frame all nulls.
    await _known(sidecar, job_id, AURA_JOB_WAIT_S, readable=True)
    return _stream(sidecar, job_id, last_event_id or resume, aura_progress=True)

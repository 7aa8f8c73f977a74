"""Read-only job routes: list, one job, progress, queue."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from ..diagnosis.links import JobLinks
from ..diagnosis.runner import DiagnosisBusy
from ..exceptions import InvalidQuery, JobNotFound
from ..jobs.model import JobRecord, JobStatus, validate_job_id
from ..jobs.stages import stage_key
from ..jobs.tracker import JobState
from ..sidecar import Sidecar
from ..views import Job, JobList, Progress, Queue, QueueStats, job_view, progress_view, queue_item, safe_job_views
from .problems import problem

router = APIRouter(prefix="/api", tags=["jobs"])

JobIdPath = Annotated[str, Path(description="job id (directory name under the jobs dir)", max_length=256)]

# Aura's queue filter words, mapped onto our statuses.
_QUEUE_WORDS = {
    "pending": (JobStatus.QUEUED,),
    "processing": (JobStatus.RUNNING,),
    "queued": (JobStatus.QUEUED,),
    "running": (JobStatus.RUNNING,),
    "paused": (JobStatus.PAUSED,),
    "completed": (JobStatus.COMPLETED,),
    "failed": (JobStatus.FAILED,),
    "canceled": (JobStatus.CANCELLED,),
    "cancelled": (JobStatus.CANCELLED,),
}


def sidecar_of(request: Request) -> Sidecar:
    sidecar: Sidecar = request.app.state.sidecar
    return sidecar


SidecarDep = Annotated[Sidecar, Depends(sidecar_of)]


def known_job(job_id: JobIdPath, sidecar: SidecarDep) -> tuple[JobState, JobRecord]:
    """The job's state and last good record; 400 for an unsafe id, 404 when unknown or never readable."""
    validate_job_id(job_id)
    state = sidecar.tracker.get(job_id)
    if state is None:
        raise JobNotFound(f"no job {job_id!r} in {sidecar.jobs_dir}")
    record = state.record
    if record is None:
        raise JobNotFound(
            f"job {job_id!r} has a job.json that has never been readable ({state.last_parse_error}); "
            f"GET {JobLinks(sidecar.settings.resolved_external_url, job_id).url('explain')} tells more"
        )
    return state, record


KnownJob = Annotated[tuple[JobState, JobRecord], Depends(known_job)]


def _statuses(raw: str | None, words: Mapping[str, tuple[JobStatus, ...]]) -> set[JobStatus] | None:
    if raw is None or raw == "":
        return None
    wanted: set[JobStatus] = set()
    for word in raw.lower().split(","):
        if word.strip() not in words:
            raise InvalidQuery(f"unknown status {word.strip()!r}; use one of {', '.join(sorted(words))}")
        wanted.update(words[word.strip()])
    return wanted


def _pairs(states: Iterable[JobState]) -> list[tuple[JobState, JobRecord]]:
    return [(state, state.record) for state in states if state.record is not None]


def _page(
    sidecar: Sidecar,
    wanted: set[JobStatus] | None,
    stalled: bool | None,
    stage: str | None,
    limit: int,
) -> tuple[list[tuple[JobState, JobRecord]], int]:
    """The newest `limit` jobs matching, and how many match, read from the tracker's index (jobs/index.py).

    Why: a page of 100 out of 100,000 jobs must cost 100 views, not a sort of every job. Only a stage filter
    still looks at every job of the chosen statuses (to count them), and it builds no view while doing so.
    """
    tracker = sidecar.tracker
    index = tracker.index
    with tracker.lock:
        if stalled:
            ids: Iterable[str] = index.newest_stalled(wanted)
        else:
            ids = index.newest(wanted)
            if stalled is False:
                ids = (job_id for job_id in ids if job_id not in index.stalled)
        if stage is None:
            if stalled:
                ids = list(ids)
                total = len(ids)
            else:
                counts = index.counts()
                total = sum(n for status, n in counts.items() if wanted is None or status in wanted)
                if stalled is False:
                    total -= len(index.newest_stalled(wanted))
            return _pairs(tracker.states(itertools.islice(ids, limit))), total
        matching = [
            (state, record)
            for state, record in _pairs(tracker.states(ids))
            if stage in (record.stage.lower(), stage_key(record.stage))
        ]
        return matching[:limit], len(matching)


_STATUS_WORDS = {s.value: (s,) for s in JobStatus}


@router.get("/jobs", response_model=JobList, response_model_by_alias=True)
def list_jobs(
    sidecar: SidecarDep,
    status: Annotated[str | None, Query(description="comma-separated statuses", max_length=200)] = None,
    stage: Annotated[str | None, Query(description="stage name or canonical stage", max_length=64)] = None,
    stalled: Annotated[bool | None, Query(description="only stalled (true) or not stalled (false)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobList:
    """Jobs, newest first."""
    wanted = _statuses(status, _STATUS_WORDS)
    stage_filter = stage.strip().lower() if stage else None
    now = sidecar.clock.now()
    page, total = _page(sidecar, wanted, stalled, stage_filter, limit)
    base = sidecar.settings.resolved_external_url
    jobs = safe_job_views(page, now, "GET /api/jobs", lambda state, record, at: job_view(state, record, at, base))
    return JobList(jobs=jobs, count=len(jobs), total=total)


@router.get("/jobs/{job_id}", response_model=Job, response_model_by_alias=True)
def get_job(job: KnownJob, sidecar: SidecarDep) -> Job:
    """One job."""
    return job_view(*job, sidecar.clock.now(), sidecar.settings.resolved_external_url)


@router.get("/jobs/{job_id}/progress", response_model=Progress, response_model_by_alias=True)
def get_progress(job: KnownJob, sidecar: SidecarDep) -> Progress:
    """Percent, stage, elapsed time, ETA (median velocity of recent samples) and steps."""
    return progress_view(*job, sidecar.clock.now())


@router.get(
    "/jobs/{job_id}/explain",
    tags=["diagnosis"],
    responses={503: {"description": "too many diagnoses queued or running; retry after Retry-After seconds"}},
)
async def explain_job(job_id: JobIdPath, request: Request) -> Any:
    """Diagnosis: verdict, plain-language summary, findings with evidence and remediation (docs/diagnosis.md)."""
    # async, and the sidecar taken from app.state: nothing here may wait on the pool /healthz and /metrics use;
    # the diagnosis runs on its own bounded executor.
    validate_job_id(job_id)
    sidecar: Sidecar = request.app.state.sidecar
    try:
        return await sidecar.explain(job_id)
    except DiagnosisBusy as exc:
        return problem(
            503,
            "Diagnosis busy",
            str(exc),
            "diagnosis-busy",
            request.url.path,
            headers={"Retry-After": str(exc.retry_after)},
            retryAfterSeconds=exc.retry_after,
        )


@router.get("/queue", response_model=Queue, response_model_by_alias=True)
def get_queue(
    sidecar: SidecarDep,
    status: Annotated[
        str | None,
        Query(
            description="Aura's words: pending, processing, completed, failed, cancelled (comma-separated)",
            max_length=200,
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Queue:
    """Aura's queue: items with `jobId` and Aura's queue word in `status`, `count`, plus our stats."""
    wanted = _statuses(status, _QUEUE_WORDS)
    tracker = sidecar.tracker
    with tracker.lock:  # counts and page from the index: the same instant, and no pass over every job
        counts = tracker.index.counts()
        total = tracker.index.readable()
        page = _pairs(tracker.states(itertools.islice(tracker.index.newest(wanted), limit)))
    base = sidecar.settings.resolved_external_url
    jobs = safe_job_views(
        page, sidecar.clock.now(), "GET /api/queue", lambda state, record, at: queue_item(state, record, at, base)
    )
    stats = QueueStats(
        total=total,
        pending=counts[JobStatus.QUEUED],
        running=counts[JobStatus.RUNNING] + counts[JobStatus.PAUSED],
        completed=counts[JobStatus.COMPLETED],
        failed=counts[JobStatus.FAILED],
        canceled=counts[JobStatus.CANCELLED],
    )
    return Queue(jobs=jobs, count=len(jobs), filter_status=status or None, stats=stats)

"""How jobs look over HTTP: camelCase JSON, times as ISO-8601 UTC strings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .diagnosis.links import JobLinks
from .jobs.eta import eta_seconds, velocity
from .jobs.model import Artifact, JobRecord, JobStatus, StageRecord
from .jobs.stages import AURA_STAGES, stage_key
from .jobs.tracker import JobState
from .records.timestamps import format_iso

log = logging.getLogger(__name__)

V = TypeVar("V", bound=BaseModel)

# A job whose view cannot be built is logged at most once per this many seconds (per job).
BROKEN_VIEW_LOG_INTERVAL_S = 60.0


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ArtifactView(_Camel):
    """A file the job produced, as Aura's frontend reads it (`path` and `filePath` are the same)."""

    name: str
    path: str
    file_path: str
    type: str
    size_bytes: int | None
    created_at: str | None


class VerdictAt(_Camel):
    """One entry of a stall's verdict timeline: the verdict held from `at` on."""

    at: str
    code: str


class Job(_Camel):
    """One job, normalized from whichever format its writer used."""

    id: str
    node: str | None = Field(description="the render node whose sidecar tracks this job (--node)")
    status: JobStatus
    stage: str
    percent: float
    stalled: bool
    seconds_since_progress: float | None
    threshold_seconds: float | None
    threshold_kind: str | None
    threshold_source: str | None = Field(
        description="learned (from healthy runs in the history) or configured; None when the job cannot stall"
    )
    threshold_basis: str | None = Field(description="where the threshold's seconds came from, in one sentence")
    stalled_since: str | None
    verdict: str | None
    verdicts: list[VerdictAt] = Field(description="the current (or last) stall's verdict each time it changed")
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    last_progress_at: str | None
    output_path: str | None
    error_message: str | None
    error_code: str | None
    message: str | None
    stage_percent: float | None
    eta_seconds: float | None
    attempt: int
    priority: int | None
    format: str
    raw_status: str
    inconsistencies: list[str]
    parse_failures: int
    last_parse_error: str | None
    unreadable: bool
    # Aura's GET /api/jobs/{id} fields its frontend reads (AURA_API.md section 4).
    progress: int = Field(description="Aura's int percent (same as percent, rounded down)")
    progress_message: str | None = Field(description="the last log line, as Aura's `progressMessage`")
    artifacts: list[ArtifactView]
    correlation_id: str | None = Field(description="the job's correlation id (Aura's CorrelationId, else the id)")
    links: dict[str, str] | None = Field(
        None,
        description="absolute URLs from --external-url: job, explain, events, retry, cancel, board (the board "
        "opened on this job's panel); null in SSE events",
    )


class JobList(_Camel):
    jobs: list[Job]
    count: int = Field(description="jobs in this page")
    total: int = Field(description="jobs matching the filters")


class Step(_Camel):
    name: str
    status: str
    started_at: str | None = None
    completed_at: str | None = None


class Progress(_Camel):
    job_id: str
    status: str = Field(description="Aura's /progress word: running, completed, failed or idle")
    job_status: JobStatus = Field(description="our status word (queued, running, paused, ...)")
    progress: int = Field(description="Aura's int percent")
    current_stage: str = Field(description="Aura's name for stage")
    started_at: str | None
    completed_at: str | None
    correlation_id: str | None
    stage: str
    percent: float
    stage_percent: float | None
    message: str | None
    elapsed_seconds: float | None
    eta_seconds: float | None
    velocity_percent_per_second: float | None
    stalled: bool
    steps: list[Step]


class QueueStats(_Camel):
    total: int
    pending: int
    running: int
    completed: int
    failed: int
    canceled: int


class QueueItem(Job):
    """A job as Aura's queue lists it: Aura's queue fields and status word, plus everything a Job has."""

    status: str = Field(description="Aura's queue word: Pending, Processing, Paused, Completed, Failed, Cancelled")  # type: ignore[assignment]
    job_status: JobStatus = Field(description="our status word")
    job_id: str
    current_stage: str
    enqueued_at: str | None
    retry_count: int
    is_quick_demo: bool


class Queue(_Camel):
    jobs: list[QueueItem]
    count: int = Field(description="items in this page")
    filter_status: str | None = Field(description="the status filter as given")
    stats: QueueStats


# Aura's status words per route (AURA_API.md section 2).
AURA_PROGRESS_WORDS = {
    JobStatus.QUEUED: "idle",
    JobStatus.RUNNING: "running",
    JobStatus.PAUSED: "idle",
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "idle",
}
AURA_QUEUE_WORDS = {
    JobStatus.QUEUED: "Pending",
    JobStatus.RUNNING: "Processing",
    JobStatus.PAUSED: "Paused",  # Aura's queue has none; its JobQueue.tsx maps "paused" to paused
    JobStatus.COMPLETED: "Completed",
    JobStatus.FAILED: "Failed",
    JobStatus.CANCELLED: "Cancelled",
}
VIDEO_TYPES = ("video", "video/mp4")
SUBTITLE_TYPES = ("subtitle", "text/srt")


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else format_iso(epoch)


def artifacts_of(record: JobRecord) -> list[Artifact]:
    """The record's artifacts; a record that lists none but names its output gets that one video artifact."""
    if record.artifacts:
        return list(record.artifacts)
    if record.output_path:
        name = record.output_path.replace("\\", "/").rsplit("/", 1)[-1]
        return [Artifact(name=name, path=record.output_path, type="video")]
    return []


def artifact_view(artifact: Artifact) -> ArtifactView:
    return ArtifactView(
        name=artifact.name,
        path=artifact.path,
        file_path=artifact.path,
        type=artifact.type,
        size_bytes=artifact.size_bytes,
        created_at=_iso(artifact.created_at),
    )


def _aura_fields(state: JobState, record: JobRecord) -> dict[str, Any]:
    return {
        "progress": int(record.percent),
        "progress_message": record.logs_tail[-1] if record.logs_tail else record.message,
        "artifacts": [artifact_view(a) for a in artifacts_of(record)],
        "correlation_id": record.correlation_id or state.id,
    }


def eta_of(state: JobState, record: JobRecord) -> float | None:
    """Seconds left, or None when unknown: a finished job, or a stalled one (its last velocity is a lie)."""
    if record.status.terminal or state.stalled:
        return None
    return eta_seconds(state.samples, record.percent)


def job_view(state: JobState, record: JobRecord, now: float, base_url: str | None = None) -> Job:
    """The job; `base_url` (the sidecar's resolved --external-url) adds its absolute `links`."""
    return Job(**_job_fields(state, record, now, base_url))


def queue_item(state: JobState, record: JobRecord, now: float, base_url: str | None = None) -> QueueItem:
    """A job in Aura's queue shape: `jobId`, Aura's queue word in `status`, `currentStage`, `enqueuedAt`."""
    fields = _job_fields(state, record, now, base_url)
    fields.update(
        status=AURA_QUEUE_WORDS[record.status],
        job_status=record.status,
        job_id=state.id,
        current_stage=record.stage,
        enqueued_at=_iso(record.queued_at or record.created_at),
        retry_count=max(0, record.attempt - 1),
        is_quick_demo=False,
    )
    return QueueItem(**fields)


def _job_fields(state: JobState, record: JobRecord, now: float, base_url: str | None) -> dict[str, Any]:
    return dict(
        links=JobLinks(base_url, state.id).as_dict() if base_url else None,
        id=state.id,
        node=state.node,
        status=record.status,
        stage=record.stage,
        percent=record.percent,
        stalled=state.stalled,
        seconds_since_progress=None if record.status.terminal else state.seconds_since_progress(now),
        threshold_seconds=state.threshold,
        threshold_kind=state.threshold_kind.value if state.threshold_kind else None,
        threshold_source=state.threshold_source.value if state.threshold_source else None,
        threshold_basis=state.threshold_basis,
        stalled_since=_iso(state.stalled_since),
        verdict=state.verdict,
        verdicts=[VerdictAt(at=format_iso(at), code=code.value) for at, code in state.verdicts],
        created_at=_iso(record.created_at or record.queued_at),
        started_at=_iso(record.started_at),
        completed_at=_iso(record.completed_at),
        last_progress_at=_iso(state.last_progress_at),
        output_path=record.output_path,
        error_message=record.error_message,
        error_code=record.error_code,
        message=record.message,
        stage_percent=record.stage_percent,
        eta_seconds=eta_of(state, record),
        attempt=record.attempt,
        priority=record.priority,
        format=record.format.value,
        raw_status=record.raw_status,
        inconsistencies=list(record.inconsistencies),
        parse_failures=state.parse_failures,
        last_parse_error=state.last_parse_error,
        unreadable=state.unreadable_reported,
        **_aura_fields(state, record),
    )


class _BrokenViews:
    """Jobs whose view failed: counted, and logged once per job per interval so a list polled every
    second cannot flood the log."""

    def __init__(self) -> None:
        self.count = 0
        self._last_logged: dict[str, float] = {}
        self._lock = threading.Lock()

    def report(self, job_id: str, where: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.count += 1
            if now - self._last_logged.get(job_id, -BROKEN_VIEW_LOG_INTERVAL_S) < BROKEN_VIEW_LOG_INTERVAL_S:
                return
            if len(self._last_logged) > 10_000:
                self._last_logged.clear()
            self._last_logged[job_id] = now
        log.warning(
            "job %s left out of %s: its view could not be built (a bug or a record we do not handle); "
            "the other jobs are served. Run `aura-monitor explain %s` and report this traceback",
            job_id,
            where,
            job_id,
            exc_info=True,
        )


BROKEN_VIEWS = _BrokenViews()


def safe_job_views(
    pairs: Iterable[tuple[JobState, JobRecord]],
    now: float,
    where: str,
    view: Callable[[JobState, JobRecord, float], V],
) -> list[V]:
    """The view of each job, leaving out (and logging) any one that fails, so one job never breaks a list."""
    views: list[V] = []
    for state, record in pairs:
        try:
            views.append(view(state, record, now))
        except Exception:  # one bad job must not take the whole list, queue or snapshot down
            BROKEN_VIEWS.report(state.id, where)
    return views


def steps_of(record: JobRecord) -> list[Step]:
    """Per-stage status: the native record's own list, else inferred from Aura's percent ranges."""
    if record.stages:
        return [_native_step(s) for s in record.stages]
    current = stage_key(record.stage)
    steps = []
    for stage in AURA_STAGES:
        name, keys, end = stage.name, stage.keys, stage.weight.end
        if record.status is JobStatus.COMPLETED or (record.percent >= end and current not in keys):
            status = "completed"
        elif current in keys:
            status = {JobStatus.FAILED: "failed", JobStatus.CANCELLED: "cancelled"}.get(record.status, "running")
        else:
            status = "pending"
        steps.append(Step(name=name, status=status))
    return steps


def _native_step(stage: StageRecord) -> Step:
    return Step(
        name=stage.name,
        status=stage.status,
        started_at=_iso(stage.started_at),
        completed_at=_iso(stage.completed_at),
    )


def progress_view(state: JobState, record: JobRecord, now: float) -> Progress:
    start = record.started_at or record.created_at
    end = record.completed_at if record.status.terminal else now
    return Progress(
        job_id=state.id,
        status=AURA_PROGRESS_WORDS[record.status],
        job_status=record.status,
        progress=int(record.percent),
        current_stage=record.stage,
        started_at=_iso(record.started_at),
        completed_at=_iso(record.completed_at),
        correlation_id=record.correlation_id or state.id,
        stage=record.stage,
        percent=record.percent,
        stage_percent=record.stage_percent,
        message=record.message,
        elapsed_seconds=None if start is None or end is None else max(0.0, end - start),
        eta_seconds=eta_of(state, record),
        velocity_percent_per_second=velocity(state.samples),
        stalled=state.stalled,
        steps=steps_of(record),
    )


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, mode="json")

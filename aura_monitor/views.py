"""How jobs look over HTTP: camelCase JSON, times as ISO-8601 UTC strings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .jobs.eta import eta_seconds, velocity
from .jobs.model import JobRecord, JobStatus, StageRecord
from .jobs.stages import AURA_STAGES, stage_key
from .jobs.tracker import JobState
from .records.timestamps import format_iso

log = logging.getLogger(__name__)

# A job whose view cannot be built is logged at most once per this many seconds (per job).
BROKEN_VIEW_LOG_INTERVAL_S = 60.0


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Job(_Camel):
    """One job, normalized from whichever format its writer used."""

    id: str
    status: JobStatus
    stage: str
    percent: float
    stalled: bool
    seconds_since_progress: float | None
    threshold_seconds: float | None
    threshold_kind: str | None
    stalled_since: str | None
    verdict: str | None
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
    status: JobStatus
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


class Queue(_Camel):
    jobs: list[Job]
    stats: QueueStats


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else format_iso(epoch)


def job_view(state: JobState, record: JobRecord, now: float) -> Job:
    return Job(
        id=state.id,
        status=record.status,
        stage=record.stage,
        percent=record.percent,
        stalled=state.stalled,
        seconds_since_progress=None if record.status.terminal else state.seconds_since_progress(now),
        threshold_seconds=state.threshold,
        threshold_kind=state.threshold_kind.value if state.threshold_kind else None,
        stalled_since=_iso(state.stalled_since),
        verdict=state.verdict,
        created_at=_iso(record.created_at or record.queued_at),
        started_at=_iso(record.started_at),
        completed_at=_iso(record.completed_at),
        last_progress_at=_iso(state.last_progress_at),
        output_path=record.output_path,
        error_message=record.error_message,
        error_code=record.error_code,
        message=record.message,
        stage_percent=record.stage_percent,
        eta_seconds=None if record.status.terminal else eta_seconds(state.samples, record.percent),
        attempt=record.attempt,
        priority=record.priority,
        format=record.format.value,
        raw_status=record.raw_status,
        inconsistencies=list(record.inconsistencies),
        parse_failures=state.parse_failures,
        last_parse_error=state.last_parse_error,
        unreadable=state.unreadable_reported,
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


def safe_job_views(pairs: Iterable[tuple[JobState, JobRecord]], now: float, where: str) -> list[Job]:
    """The view of each job, leaving out (and logging) any one that fails, so one job never breaks a list."""
    views = []
    for state, record in pairs:
        try:
            views.append(job_view(state, record, now))
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
        status=record.status,
        stage=record.stage,
        percent=record.percent,
        stage_percent=record.stage_percent,
        message=record.message,
        elapsed_seconds=None if start is None or end is None else max(0.0, end - start),
        eta_seconds=None if record.status.terminal else eta_seconds(state.samples, record.percent),
        velocity_percent_per_second=velocity(state.samples),
        stalled=state.stalled,
        steps=steps_of(record),
    )


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, mode="json")

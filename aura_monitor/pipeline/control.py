"""Honouring control requests for jobs no render process is acting on (queued, orphaned, terminal).

A live render process honours its own cancel request (it stops ffmpeg and cleans up). Everything else
falls to the worker: a queued job is cancelled before it starts, a job whose process is gone is ended
or re-queued, a retry of a failed or cancelled job re-queues it as its next attempt. Only one writer
may own a record, so the record of a job with a live process is never written from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..clock import Clock
from ..exceptions import RecordError, ReporterError
from ..jobs.model import JobRecord, JobStatus
from ..records import read_record
from ..reporter import ControlAction, ControlRequest, JobReporter, StageStatus, acknowledge, read_request
from .queue import claim_job, process_alive
from .runner import reusable_artifacts
from .workspace import JobWorkspace


class Decision(StrEnum):
    """What became of a request."""

    CANCELLED = "cancelled"
    REQUEUED = "requeued"
    IGNORED = "ignored"  # nothing to do (already terminal, already queued, not retryable)
    LEFT_TO_PROCESS = "left-to-process"  # the live render process will honour it
    DEFERRED = "deferred"  # could not act now (claim busy); try again next time


@dataclass(frozen=True, slots=True)
class Handled:
    job_id: str
    action: ControlAction
    decision: Decision
    detail: str


def pending_requests(workspace: JobWorkspace) -> list[ControlRequest]:
    return [request for action in ControlAction if (request := read_request(workspace.job_dir, action)) is not None]


def honour(workspace: JobWorkspace, request: ControlRequest, *, clock: Clock, owner_pid: int) -> Handled:
    """Act on one request for a job that may have no live process; see the module docstring."""
    try:
        record = read_record(str(workspace.record))
    except RecordError as exc:
        return Handled(workspace.job_id, request.action, Decision.DEFERRED, f"record unreadable: {exc}")
    if request.action is ControlAction.CANCEL:
        return _cancel(workspace, request, record, clock=clock, owner_pid=owner_pid)
    return _retry(workspace, request, record, clock=clock)


def _has_live_process(record: JobRecord) -> bool:
    return record.status in (JobStatus.RUNNING, JobStatus.PAUSED) and process_alive(record.worker_pid)


def _cancel(
    workspace: JobWorkspace, request: ControlRequest, record: JobRecord, *, clock: Clock, owner_pid: int
) -> Handled:
    job_id, action = workspace.job_id, request.action
    if record.status.terminal:
        acknowledge(request)
        return Handled(job_id, action, Decision.IGNORED, f"job already {record.status.value}")
    if _has_live_process(record):
        return Handled(job_id, action, Decision.LEFT_TO_PROCESS, f"render process {record.worker_pid} will stop")
    if record.status is JobStatus.QUEUED:
        claim = claim_job(workspace, owner_pid=owner_pid, clock=clock)
        if claim is None:
            return Handled(job_id, action, Decision.DEFERRED, "a worker is starting the job")
        try:
            end_cancelled(workspace, clock=clock, message="cancelled while queued")
        finally:
            claim.release()
    else:
        end_cancelled(workspace, clock=clock, message="cancelled; the process running it was already gone")
    acknowledge(request)
    return Handled(job_id, action, Decision.CANCELLED, "record ended cancelled")


def end_cancelled(workspace: JobWorkspace, *, clock: Clock, message: str) -> None:
    """Write the terminal `cancelled` for a job whose process is gone, after removing its leftovers."""
    reporter = JobReporter.load(workspace.jobs_dir, workspace.job_id, clock=clock)
    kept = [path for stage in _completed(reporter) for path in reporter.stage_artifacts(stage)]
    removed = workspace.remove_temporary_files(keep=kept)
    if removed:
        reporter.log(f"removed {len(removed)} temporary files: {', '.join(path.name for path in removed)}")
    reporter.cancel(message)


def _completed(reporter: JobReporter) -> list[str]:
    stages = reporter.snapshot().get("stages") or []
    return [
        str(stage["name"])
        for stage in stages
        if isinstance(stage, dict) and stage.get("status") == StageStatus.COMPLETED.value
    ]


def _retry(workspace: JobWorkspace, request: ControlRequest, record: JobRecord, *, clock: Clock) -> Handled:
    job_id, action = workspace.job_id, request.action
    orphaned = record.status in (JobStatus.RUNNING, JobStatus.PAUSED) and not process_alive(record.worker_pid)
    if record.status in (JobStatus.FAILED, JobStatus.CANCELLED) or orphaned:
        try:
            reporter = JobReporter.load(workspace.jobs_dir, job_id, clock=clock)
        except (ReporterError, RecordError) as exc:
            return Handled(job_id, action, Decision.DEFERRED, str(exc))
        reason = "retry requested" if not orphaned else "retry requested; the process running it was gone"
        resume = next((stage.name for stage in record.stages if reusable_artifacts(reporter, stage.name) is None), None)
        reporter.requeue(reason)
        acknowledge(request)
        return Handled(job_id, action, Decision.REQUEUED, f"attempt {reporter.attempt}, resuming at {resume}")
    if _has_live_process(record):
        return Handled(job_id, action, Decision.LEFT_TO_PROCESS, "job is running; retry applies once it ends")
    acknowledge(request)
    return Handled(job_id, action, Decision.IGNORED, f"job is {record.status.value}: nothing to retry")

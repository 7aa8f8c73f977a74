"""From the tracker's transitions to SSE events: which event each change becomes, and what it carries."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..diagnosis.links import JobLinks
from ..jobs.eta import eta_seconds
from ..jobs.model import JobRecord, JobStatus
from ..jobs.recent import Recent
from ..jobs.stages import stage_key
from ..jobs.tracker import JobState
from ..jobs.transitions import Transition, TransitionKind
from ..jobs.verdicts import Verdict
from ..records.timestamps import format_iso
from ..views import BROKEN_VIEWS, SUBTITLE_TYPES, VIDEO_TYPES, artifacts_of, dump, job_view, steps_of
from .model import EventName

Spec = tuple[EventName, str, dict[str, Any]]
Lookup = Callable[[str], JobState | None]

_TERMINAL_EVENTS = {
    JobStatus.COMPLETED: EventName.JOB_COMPLETED,
    JobStatus.FAILED: EventName.JOB_FAILED,
    JobStatus.CANCELLED: EventName.JOB_CANCELLED,
}
_WARNINGS = {
    TransitionKind.INCONSISTENT: (Verdict.STATUS_INCONSISTENT.value, "warning"),
    TransitionKind.UNREADABLE: (Verdict.RECORD_UNREADABLE.value, "warning"),
    TransitionKind.READABLE: ("record_readable", "info"),
    TransitionKind.REMOVED: ("job_removed", "warning"),
}
# Aura's `phase` words for a stage (its step-status and step-progress carry them; its store reads them).
_PHASES = {
    "queued": "plan",
    "plan": "plan",
    "brief": "plan",
    "script": "plan",
    "tts": "tts",
    "images": "visuals",
    "render": "render",
    "finalize": "render",
    "complete": "complete",
}
# Aura's enum names (its /events job-status word), for clients that compare against them.
_ENUM_NAMES = {
    JobStatus.QUEUED: "Queued",
    JobStatus.RUNNING: "Running",
    JobStatus.PAUSED: "Paused",
    JobStatus.COMPLETED: "Done",
    JobStatus.FAILED: "Failed",
    JobStatus.CANCELLED: "Canceled",
}
# Aura's job-failed carries the last 10 log lines.
FAILED_LOG_LINES = 10


def phase_of(stage: str) -> str:
    """Aura's phase for a stage name (plan, tts, visuals, compose, render, complete)."""
    return _PHASES.get(stage_key(stage), "render")


@dataclass(frozen=True, slots=True)
class Linking:
    """What events need to name a job's URLs: the resolved --external-url, and whether POSTs need the token."""

    base_url: str | None = None
    token_required: bool = False

    def of(self, job_id: str) -> JobLinks | None:
        return JobLinks(self.base_url, job_id, self.token_required) if self.base_url else None


NO_LINKS = Linking()


def events_for(batch: Sequence[Transition], lookup: Lookup, linking: Linking = NO_LINKS) -> list[Spec]:
    """The events of one batch, in order; terminal events go last so a stream that ends on them misses nothing."""
    regular: list[Spec] = []
    terminal: list[Spec] = []
    for t in batch:
        try:
            _translate(t, lookup, linking, regular, terminal)
        except Exception:  # one job's broken event must not cost the other jobs theirs
            BROKEN_VIEWS.report(t.job_id, f"the {t.kind.value} event")
    return regular + terminal


def _translate(t: Transition, lookup: Lookup, linking: Linking, regular: list[Spec], terminal: list[Spec]) -> None:
    state = lookup(t.job_id)
    record = state.record if state is not None else None
    if t.kind in _WARNINGS:
        code, severity = _WARNINGS[t.kind]
        regular.append((EventName.WARNING, t.job_id, _warning(t, record, code, severity)))
        return
    if state is None or record is None:
        return
    spec = _regular(t, state, record, linking)
    if spec is not None:
        regular.append(spec)
    if t.kind is TransitionKind.STALLED:
        regular.append((EventName.WARNING, t.job_id, _stall_warning(t, state, record)))
    if _ends_job(t):
        terminal.append(terminal_event(state, record, t.at, linking))


def _ends_job(t: Transition) -> bool:
    new = t.new_status
    if new is None or t.kind not in (TransitionKind.DISCOVERED, TransitionKind.STATUS):
        return False
    return new.terminal and (t.old_status is None or not t.old_status.terminal)


def _core(t: Transition, record: JobRecord | None) -> dict[str, Any]:
    core: dict[str, Any] = {"jobId": t.job_id, "at": format_iso(t.at), "seq": t.seq}
    if record is not None:
        core.update(status=record.status.value, stage=record.stage, percent=record.percent, attempt=record.attempt)
    return core


def _regular(t: Transition, state: JobState, record: JobRecord, linking: Linking) -> Spec | None:
    data = _core(t, record)
    kind = t.kind
    if kind in (TransitionKind.DISCOVERED, TransitionKind.STATUS):
        data.update(
            status=t.new,
            previousStatus=t.old,
            reason=t.reason,
            discovered=kind is TransitionKind.DISCOVERED,
            job=dump(job_view(state, record, t.at, linking.base_url)),
            statusName=_ENUM_NAMES[record.status],
            correlationId=record.correlation_id or t.job_id,
        )
        return EventName.JOB_STATUS, t.job_id, data
    if kind is TransitionKind.STAGE:
        data.update(
            step=t.new,
            previousStep=t.old,
            previousStepSeconds=t.elapsed,
            steps=[dump(step) for step in steps_of(record)],
            phase=phase_of(record.stage),
            correlationId=record.correlation_id or t.job_id,
        )
        return EventName.STEP_STATUS, t.job_id, data
    if kind is TransitionKind.PROGRESS:
        data.update(
            percent=_number(t.new, record.percent),
            previousPercent=_number(t.old, None),
            stagePercent=record.stage_percent,
            message=record.message,
            etaSeconds=None if record.status.terminal else eta_seconds(state.samples, record.percent),
        )
        data.update(_aura_progress(t, record, data))
        return EventName.STEP_PROGRESS, t.job_id, data
    if kind is TransitionKind.STALLED or (kind is TransitionKind.VERDICT and state.stalled):
        data.update(
            verdict=t.new,
            previousVerdict=t.old if kind is TransitionKind.VERDICT else None,
            refined=kind is TransitionKind.VERDICT,
            reason=t.reason,
            secondsSinceProgress=state.seconds_since_progress(t.at),
            thresholdSeconds=state.threshold,
            thresholdKind=state.threshold_kind.value if state.threshold_kind else None,
            thresholdSource=state.threshold_source.value if state.threshold_source else None,
            thresholdBasis=state.threshold_basis,
            stalledSince=format_iso(state.stalled_since) if state.stalled_since is not None else None,
        )
        return EventName.JOB_STALLED, t.job_id, data
    if kind is TransitionKind.RECOVERED:
        data.update(previousVerdict=t.old, reason=t.reason, stalledSeconds=t.elapsed)
        return EventName.JOB_RECOVERED, t.job_id, data
    return None


def _aura_progress(t: Transition, record: JobRecord, ours: dict[str, Any]) -> dict[str, Any]:
    """Aura's step-progress fields in both spellings: its server sends PascalCase (ProgressEventDto), its
    store and hooks read camelCase (`step`, `progressPct`, ...), so each client finds the ones it reads."""
    start = record.started_at or record.created_at
    elapsed = None if start is None else max(0.0, t.at - start)
    remaining = ours["etaSeconds"]
    correlation = record.correlation_id or t.job_id
    phase = phase_of(record.stage)
    camel = {
        "step": record.stage,
        "progressPct": ours["percent"],
        "phase": phase,
        "substageDetail": None,
        "currentItem": None,
        "totalItems": None,
        "elapsedTime": elapsed,
        "estimatedTimeRemaining": remaining,
        "elapsedSeconds": elapsed,
        "estimatedRemainingSeconds": remaining,
        "correlationId": correlation,
    }
    pascal = {
        "JobId": t.job_id,
        "Stage": record.stage,
        "Percent": ours["percent"],
        "EtaSeconds": remaining,
        "Message": record.message,
        "Warnings": [],
        "CorrelationId": correlation,
        "SubstageDetail": None,
        "CurrentItem": None,
        "TotalItems": None,
        "Timestamp": format_iso(t.at),
        "Phase": phase,
        "ElapsedSeconds": elapsed,
        "EstimatedRemainingSeconds": remaining,
    }
    return camel | pascal


def _number(text: str | None, default: float | None) -> float | None:
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default


def _stall_warning(t: Transition, state: JobState, record: JobRecord) -> dict[str, Any]:
    """Aura's stall `warning` (its hooks read `stallDurationSeconds`, `percent` and `step`), next to our
    job-stalled: same moment, so an Aura client learns of the stall the way it expects to."""
    data = _warning(t, record, "job_stalled", "warning")
    data.update(
        message=f"No progress for {state.seconds_since_progress(t.at) or 0:.0f}s at {record.percent:g}% "
        f"({record.stage}): {t.reason}",
        stallDurationSeconds=state.seconds_since_progress(t.at),
        thresholdSeconds=state.threshold,
        verdict=t.new,
    )
    return data


def _warning(t: Transition, record: JobRecord | None, code: str, severity: str) -> dict[str, Any]:
    data = _core(t, record)
    data.update(code=code, severity=severity, message=t.reason, step=record.stage if record else None)
    return data


def terminal_event(state: JobState, record: JobRecord, at: float, linking: Linking = NO_LINKS) -> Spec:
    """The one event that tells a stream its job ended, from the job's record (with `links` when a base is known)."""
    name = _TERMINAL_EVENTS[record.status]
    data: dict[str, Any] = {
        "jobId": state.id,
        "at": format_iso(at),
        "status": record.status.value,
        "stage": record.stage,
        "percent": record.percent,
        "attempt": record.attempt,
        "completedAt": format_iso(record.completed_at) if record.completed_at is not None else None,
    }
    data["correlationId"] = record.correlation_id or state.id
    links = linking.of(state.id)
    if links is not None:
        data["links"] = links.as_dict()
    if name is EventName.JOB_COMPLETED:
        data.update(_completed(record))
    elif name is EventName.JOB_FAILED:
        failure = failure_of(state.id, record, links)
        data.update(
            errorMessage=failure["message"],
            errors=[failure],
            failureDetails={"message": failure["message"], "errorCode": record.error_code, "stage": failure["stage"]},
            logs=list(record.logs_tail[-FAILED_LOG_LINES:]),
        )
    else:
        data.update(message=record.error_message or record.message or "Job was cancelled by user")
    return name, state.id, data


def _completed(record: JobRecord) -> dict[str, Any]:
    """Aura's job-completed payload: `outputPath` (else the video artifact's, else ""), `artifacts[]` (its
    store maps over it, so always a list) and `output{videoPath, subtitlePath, sizeBytes}`."""
    artifacts = artifacts_of(record)
    video = next((a for a in artifacts if a.type.lower() in VIDEO_TYPES), None)
    subtitle = next((a for a in artifacts if a.type.lower() in SUBTITLE_TYPES), None)
    output_path = record.output_path or (video.path if video else "")
    return {
        "outputPath": output_path,
        "artifacts": [
            {"name": a.name, "path": a.path, "filePath": a.path, "type": a.type, "sizeBytes": a.size_bytes}
            for a in artifacts
        ],
        # The size is the record's own claim: an event never stats a file (it runs on the watcher's thread).
        "output": {
            "videoPath": output_path or None,
            "subtitlePath": subtitle.path if subtitle else None,
            "sizeBytes": video.size_bytes if video else None,
        },
    }


def failure_of(job_id: str, record: JobRecord, links: JobLinks | None = None) -> dict[str, Any]:
    """`{code, message, remediation}` of a failed job: the writer's own suggestions, else where to look next.

    The generic steps name absolute URLs (--external-url) when `links` is given: a support engineer pastes
    them from a chat or a ticket, where a path relative to nothing opens nothing.
    """
    explain = links.url("explain") if links is not None else f"/api/jobs/{job_id}/explain"
    retry = links.post("retry") if links is not None else f"POST /api/jobs/{job_id}/retry"
    remediation = list(record.suggested_actions) or [
        f"Run `aura-monitor explain {job_id}` (or GET {explain}) for the evidence.",
        f"Fix the cause, then {retry} to run it again.",
    ]
    code = record.error_code or "unspecified"
    message = record.error_message or "the job failed without saying why"
    # Aura serializes JobStepError in PascalCase and its store reads `errors[0].message`: both spellings.
    return {
        "code": code,
        "message": message,
        "stage": record.failure_stage or record.stage,
        "remediation": remediation,
        "Code": code,
        "Message": message,
        "Remediation": " ".join(remediation),
    }


def frozen(state: JobState) -> JobState:
    """A private copy of a job's state, so views can be built outside the tracker lock."""
    return dataclasses.replace(state, samples=state.samples.copy(), transitions=Recent(0))


def job_snapshot(
    state: JobState, now: float, *, steps: bool = True, base_url: str | None = None
) -> dict[str, Any] | None:
    """The job as GET /api/jobs/{id} shows it (plus its steps); None while its record was never readable."""
    if state.record is None:
        return None
    try:
        view = dump(job_view(state, state.record, now, base_url))
        if steps:
            view["steps"] = [dump(step) for step in steps_of(state.record)]
    except Exception:  # left out of the snapshot, so `connected` still reaches the client with every other job
        BROKEN_VIEWS.report(state.id, "the SSE snapshot")
        return None
    return view

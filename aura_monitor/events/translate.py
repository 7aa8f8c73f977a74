"""From the tracker's transitions to SSE events: which event each change becomes, and what it carries."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ..jobs.eta import eta_seconds
from ..jobs.model import JobRecord, JobStatus
from ..jobs.tracker import JobState
from ..jobs.transitions import Transition, TransitionKind
from ..jobs.verdicts import Verdict
from ..records.timestamps import format_iso
from ..views import BROKEN_VIEWS, dump, job_view, steps_of
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


def events_for(batch: Sequence[Transition], lookup: Lookup) -> list[Spec]:
    """The events of one batch, in order; terminal events go last so a stream that ends on them misses nothing."""
    regular: list[Spec] = []
    terminal: list[Spec] = []
    for t in batch:
        try:
            _translate(t, lookup, regular, terminal)
        except Exception:  # one job's broken event must not cost the other jobs theirs
            BROKEN_VIEWS.report(t.job_id, f"the {t.kind.value} event")
    return regular + terminal


def _translate(t: Transition, lookup: Lookup, regular: list[Spec], terminal: list[Spec]) -> None:
    state = lookup(t.job_id)
    record = state.record if state is not None else None
    if t.kind in _WARNINGS:
        code, severity = _WARNINGS[t.kind]
        regular.append((EventName.WARNING, t.job_id, _warning(t, record, code, severity)))
        return
    if state is None or record is None:
        return
    spec = _regular(t, state, record)
    if spec is not None:
        regular.append(spec)
    if _ends_job(t):
        terminal.append(terminal_event(state, record, t.at))


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


def _regular(t: Transition, state: JobState, record: JobRecord) -> Spec | None:
    data = _core(t, record)
    kind = t.kind
    if kind in (TransitionKind.DISCOVERED, TransitionKind.STATUS):
        data.update(
            status=t.new,
            previousStatus=t.old,
            reason=t.reason,
            discovered=kind is TransitionKind.DISCOVERED,
            job=dump(job_view(state, record, t.at)),
        )
        return EventName.JOB_STATUS, t.job_id, data
    if kind is TransitionKind.STAGE:
        data.update(
            step=t.new,
            previousStep=t.old,
            previousStepSeconds=t.elapsed,
            steps=[dump(step) for step in steps_of(record)],
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
            stalledSince=format_iso(state.stalled_since) if state.stalled_since is not None else None,
        )
        return EventName.JOB_STALLED, t.job_id, data
    if kind is TransitionKind.RECOVERED:
        data.update(previousVerdict=t.old, reason=t.reason, stalledSeconds=t.elapsed)
        return EventName.JOB_RECOVERED, t.job_id, data
    return None


def _number(text: str | None, default: float | None) -> float | None:
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default


def _warning(t: Transition, record: JobRecord | None, code: str, severity: str) -> dict[str, Any]:
    data = _core(t, record)
    data.update(code=code, severity=severity, message=t.reason)
    return data


def terminal_event(state: JobState, record: JobRecord, at: float) -> Spec:
    """The one event that tells a stream its job ended, from the job's record."""
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
    if name is EventName.JOB_COMPLETED:
        data.update(outputPath=record.output_path)
    elif name is EventName.JOB_FAILED:
        data.update(errorMessage=record.error_message, errors=[failure_of(state.id, record)])
    else:
        data.update(message=record.error_message or record.message)
    return name, state.id, data


def failure_of(job_id: str, record: JobRecord) -> dict[str, Any]:
    """`{code, message, remediation}` of a failed job: the writer's own suggestions, else where to look next."""
    remediation = list(record.suggested_actions) or [
        f"Run `aura-monitor explain {job_id}` (or GET /api/jobs/{job_id}/explain) for the evidence.",
        f"Fix the cause, then POST /api/jobs/{job_id}/retry to run it again.",
    ]
    return {
        "code": record.error_code or "unspecified",
        "message": record.error_message or "the job failed without saying why",
        "stage": record.failure_stage or record.stage,
        "remediation": remediation,
    }


def frozen(state: JobState) -> JobState:
    """A private copy of a job's state, so views can be built outside the tracker lock."""
    return dataclasses.replace(state, samples=deque(state.samples, maxlen=state.samples.maxlen), transitions=deque())


def job_snapshot(state: JobState, now: float, *, steps: bool = True) -> dict[str, Any] | None:
    """The job as GET /api/jobs/{id} shows it (plus its steps); None while its record was never readable."""
    if state.record is None:
        return None
    try:
        view = dump(job_view(state, state.record, now))
        if steps:
            view["steps"] = [dump(step) for step in steps_of(state.record)]
    except Exception:  # left out of the snapshot, so `connected` still reaches the client with every other job
        BROKEN_VIEWS.report(state.id, "the SSE snapshot")
        return None
    return view

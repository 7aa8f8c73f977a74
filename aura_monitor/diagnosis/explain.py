"""explain(): the diagnosis body of GET /api/jobs/{id}/explain and `aura-monitor explain --json`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..exceptions import JobNotFound, RecordError
from ..jobs.model import validate_job_id
from ..jobs.stall import Thresholds
from ..jobs.tracker import Tracker
from ..jobs.verdicts import Verdict
from ..records import read_record
from ..records.layout import RECORD_NAME
from ..records.timestamps import format_iso
from .collect import CollectOptions, collect
from .findings import Finding
from .links import JobLinks
from .rules import RuleContext, diagnose
from .subject import Subject


@dataclass(frozen=True, slots=True)
class Diagnosis:
    subject: Subject
    findings: list[Finding]
    body: dict[str, Any]

    @property
    def verdict(self) -> Verdict:
        return self.findings[0].code


def options_from(settings: Settings) -> CollectOptions:
    return CollectOptions(
        jobs_dir=settings.jobs_dir,
        ffmpeg_log_dir=settings.resolved_ffmpeg_log_dir,
        read_root=tuple(settings.read_root),
    )


def run_diagnosis(
    subject: Subject,
    settings: Settings,
    thresholds: Thresholds,
    now: float,
    options: CollectOptions | None = None,
    sse_subscribers: int | None = None,
    retry_history: list[str] | None = None,
) -> Diagnosis:
    started = time.perf_counter()
    record = subject.record
    evidence = collect(
        subject, options or options_from(settings), active=record is not None and not record.status.terminal
    )
    evidence.sse_subscribers = sse_subscribers
    evidence.retry_history = retry_history or []
    links = JobLinks(settings.resolved_external_url, subject.job_id, token_required=bool(settings.token))
    ctx = RuleContext(
        subject, evidence, thresholds, now, int(settings.disk_floor_mb * 2**20), settings.unreadable_grace, links
    )
    findings = diagnose(ctx)
    verdict = findings[0]
    body: dict[str, Any] = {
        "jobId": subject.job_id,
        "status": record.status.value if record else None,
        "stage": record.stage if record else None,
        "percent": record.percent if record else None,
        "stalled": subject.stalled,
        "secondsSinceProgress": None if record is None or record.status.terminal else subject.since_progress(now),
        "thresholdSeconds": subject.threshold,
        "thresholdKind": subject.threshold_kind.value if subject.threshold_kind else None,
        "thresholdSource": subject.threshold_source,
        "thresholdBasis": subject.threshold_basis,
        "verdict": verdict.code.value,
        "severity": verdict.severity.value,
        "summary": verdict.summary,
        "findings": [f.as_dict() for f in findings],
        "notSeen": [{"source": f.source, "fact": f.fact} for f in evidence.unseen],
        "timeline": [
            {"at": format_iso(t.at), "kind": t.kind.value, "from": t.old, "to": t.new, "reason": t.reason}
            for t in subject.transitions
            if t.kind.value != "progress"
        ][-50:],
        # The verdict the sidecar held over the stall (what the board and the alert showed), oldest first.
        "verdicts": [{"at": format_iso(at), "code": code.value} for at, code in subject.verdicts],
        "logTail": [{"source": line.source, "text": line.text} for line in evidence.log_tail[-20:]],
        "format": record.format.value if record else None,
        "recordPath": subject.record_path,
        "observedBySidecar": subject.observed_by_sidecar,
        "sseSubscribers": sse_subscribers,
        "retryHistory": evidence.retry_history,
        "diagnosedAt": format_iso(now),
        "links": links.as_dict(),
        "durationMs": round((time.perf_counter() - started) * 1000, 1),
    }
    return Diagnosis(subject, findings, body)


def offline_subject(jobs_dir: Path, job_id: str, thresholds: Thresholds, now: float) -> Subject:
    """What the files alone say about a job (no sidecar history); raises JobNotFound with one clear line."""
    validate_job_id(job_id)
    if not os.access(jobs_dir, os.R_OK | os.X_OK) or not jobs_dir.is_dir():
        raise JobNotFound(f"cannot read jobs dir {jobs_dir}: it does not exist or is not readable")
    path = jobs_dir / job_id / RECORD_NAME
    try:
        mtime = path.stat().st_mtime
    except OSError:
        raise JobNotFound(f"no job {job_id!r} in {jobs_dir} (no {path})") from None
    try:
        record = read_record(str(path))
    except RecordError as exc:
        return Subject(
            job_id=job_id,
            record=None,
            record_path=str(path),
            record_mtime=mtime,
            parse_failures=1,
            last_parse_error=str(exc),
            unreadable_since=mtime,
        )
    tracker = Tracker(thresholds)
    tracker.apply(str(path), record, now, mtime)
    state = tracker.get(record.id)
    assert state is not None
    return Subject.from_state(state, observed=False)


def explain_offline(settings: Settings, job_id: str, now: float | None = None) -> Diagnosis:
    thresholds = Thresholds.from_settings(settings)
    moment = time.time() if now is None else now
    return run_diagnosis(offline_subject(settings.jobs_dir, job_id, thresholds, moment), settings, thresholds, moment)

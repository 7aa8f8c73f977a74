"""Aura Video Studio's on-disk job.json: PascalCase keys, integer statuses of two builds, .NET times."""

from __future__ import annotations

from ..exceptions import RecordError
from ..jobs.model import Artifact, JobRecord, JobStatus, ProgressPoint, RecordFormat
from .fields import Fields
from .timestamps import parse_log_time

LOG_TAIL = 20
HISTORY_TAIL = 20
# Aura writes one or two artifacts per job; a record listing thousands is not one we show in full.
MAX_ARTIFACTS = 50

# Builds from late Nov 2025 on inserted Paused=2 and shifted every later value by one.
_CURRENT = {
    0: JobStatus.QUEUED,
    1: JobStatus.RUNNING,
    2: JobStatus.PAUSED,
    3: JobStatus.COMPLETED,
    4: JobStatus.FAILED,
    5: JobStatus.CANCELLED,  # Skipped
    6: JobStatus.CANCELLED,
    7: JobStatus.COMPLETED,  # Succeeded
}
_OLD = {
    0: JobStatus.QUEUED,
    1: JobStatus.RUNNING,
    2: JobStatus.COMPLETED,
    3: JobStatus.FAILED,
    4: JobStatus.CANCELLED,  # Skipped
    5: JobStatus.CANCELLED,
    6: JobStatus.COMPLETED,  # Succeeded
}
OLD_NUMBERING = " (old numbering)"
# Appended to the raw status of a FailJobAsStalled record, whose CanceledUtc a reader could take for a cancel.
STALL_KILL = ", stall kill (CanceledUtc is the pipeline's echo)"
_CURRENT_NAMES = ["Queued", "Running", "Paused", "Done", "Failed", "Skipped", "Canceled", "Succeeded"]
_OLD_NAMES = ["Queued", "Running", "Done", "Failed", "Skipped", "Canceled", "Succeeded"]


def is_aura(data: dict[str, object]) -> bool:
    return "Id" in data and "Status" in data


def is_stall_kill(code: str | None, canceled: bool) -> bool:
    """Aura's FailJobAsStalled shape: Failed + E305-JOB_STALLED, then the cancelled pipeline's CanceledUtc and
    "Job was cancelled by user" applied on top (its Canceled status refused). A stall kill, not a user's cancel."""
    return canceled and bool(code) and str(code).upper().startswith("E305-JOB_STALLED")


def _status_from_timestamps(f: Fields, has_failure: bool, error_code: str | None) -> JobStatus | None:
    if f.time("CanceledUtc") is not None:
        return JobStatus.FAILED if is_stall_kill(error_code, canceled=True) else JobStatus.CANCELLED
    if has_failure:
        return JobStatus.FAILED
    if f.time("CompletedUtc") is not None:
        return JobStatus.COMPLETED
    return None


def _resolve_status(
    code: int, f: Fields, has_failure: bool, error_code: str | None
) -> tuple[JobStatus, str, list[str]]:
    """Pick the build numbering the timestamps agree with; flag what they contradict."""
    if code not in _CURRENT:
        raise RecordError(f"record.Status is {code}, not a known Aura status (0-7)")
    current, old = _CURRENT[code], _OLD.get(code)
    evidence = _status_from_timestamps(f, has_failure, error_code)
    notes: list[str] = []
    if old is not None and old == current and evidence == old and _OLD_NAMES[code] != _CURRENT_NAMES[code]:
        # Status 5 + CanceledUtc: an old build's Canceled (JobRunner never writes Skipped in any build).
        status, name = old, _OLD_NAMES[code] + OLD_NUMBERING
    elif old is None or old == current:
        status, name = current, _CURRENT_NAMES[code]
    elif evidence == old or (evidence is None and current.terminal and not old.terminal):
        status, name = old, _OLD_NAMES[code] + OLD_NUMBERING
    elif evidence == current or evidence is None:
        status, name = current, _CURRENT_NAMES[code]
        if evidence is None and current.terminal and old.terminal:
            notes.append(
                f"Status={code} means {_CURRENT_NAMES[code]} in current builds but {_OLD_NAMES[code]} "
                "in builds before Nov 2025, and no timestamp tells which"
            )
    else:
        status, name = current, _CURRENT_NAMES[code]
    if evidence is not None and evidence != status:
        stamp = {
            JobStatus.CANCELLED: "CanceledUtc is set",
            JobStatus.FAILED: "failure details are present",
            JobStatus.COMPLETED: "CompletedUtc is set",
        }[evidence]
        notes.append(f"Status={code} ({name}) contradicts the timestamps: {stamp}")
    return status, f"{name} ({code})", notes


def _last_progress(points: list[ProgressPoint]) -> float | None:
    """Time the percent or stage last changed: start of the final run of equal samples."""
    if not points:
        return None
    last = points[-1]
    changed_at = last.at
    for point in reversed(points[:-1]):
        if (round(point.percent, 3), point.stage) != (round(last.percent, 3), last.stage):
            break
        changed_at = point.at
    return changed_at


def _progress_points(f: Fields) -> list[ProgressPoint]:
    points: list[ProgressPoint] = []
    for i, raw in enumerate(f.items("ProgressHistory")):
        if not isinstance(raw, dict):
            continue
        p = Fields(raw, f"record.ProgressHistory[{i}]", f.notes)
        at = p.time("Timestamp")
        percent = p.percent("OverallPercent")
        if at is None or percent is None:
            continue
        points.append(ProgressPoint(at=at, percent=percent, stage=p.text("Stage") or ""))
    return points


def _mixed_record_notes(status: JobStatus, stage: str, percent: float, f: Fields, code: str | None) -> list[str]:
    notes = []
    done_shape = stage.lower() == "complete" and percent >= 100 and bool(f.text("OutputPath"))
    if status is JobStatus.FAILED and done_shape:
        notes.append("Status=Failed but Stage=Complete, Percent=100 and OutputPath is set (mixed record)")
    if status is JobStatus.CANCELLED and code and code.startswith("E305"):
        notes.append(f"Status=Canceled but ErrorCode={code} says the job was failed as stalled (mixed record)")
    if status is JobStatus.COMPLETED and percent < 100:
        notes.append(f"Status=Done but Percent={percent:g}")
    return notes


def parse_aura(data: dict[str, object]) -> JobRecord:
    f = Fields(data)
    job_id = f.text("Id")
    if not job_id:
        raise RecordError("record.Id is missing or empty")
    code = f.integer("Status")
    if code is None:
        raise RecordError("record.Status is missing")
    failure = f.obj("FailureDetails")
    error_code = failure.text("ErrorCode") if failure else None
    error_message = f.text("ErrorMessage") or (failure.text("Message") if failure else None)
    has_failure = bool(failure or f.text("ErrorMessage"))
    status, raw_status, notes = _resolve_status(code, f, has_failure, error_code)
    if failure and is_stall_kill(error_code, canceled=f.time("CanceledUtc") is not None):
        # "Job was cancelled by user" is the pipeline's echo of the kill; the stall monitor's message is the reason.
        error_message = failure.text("Message") or error_message
        if status is JobStatus.FAILED:
            raw_status += STALL_KILL

    percent_int = f.number("Percent")
    if percent_int is None:
        raise RecordError("record.Percent is missing")
    if not 0 <= percent_int <= 100:
        raise RecordError(f"record.Percent is {percent_int:g}, outside 0-100")
    stage = f.text("Stage") or ""
    notes += _mixed_record_notes(status, stage, percent_int, f, error_code)

    current = f.obj("CurrentProgress")
    points = _progress_points(f)
    logs = f.strings("Logs")
    log_times = [t for t in (parse_log_time(line) for line in logs[-LOG_TAIL:]) if t is not None]
    plan = f.obj("PlanSpec")

    # Read before the record is built: they add to f.notes what they ignore as nonsense.
    stage_percent = current.percent("StagePercent") if current else None
    expected = plan.seconds("TargetDuration") if plan else None
    artifacts, correlation_id = artifacts_of(f), correlation_id_of(f)
    completed_at = f.time("CompletedUtc") or f.time("CanceledUtc") or f.time("EndedUtc") or f.time("FinishedAt")
    return JobRecord(
        id=job_id,
        format=RecordFormat.AURA,
        status=status,
        stage=stage,
        percent=percent_int,
        raw_status=raw_status,
        stage_percent=stage_percent,
        message=current.text("Message") if current else None,
        created_at=f.time("CreatedUtc") or f.time("StartedAt"),
        queued_at=f.time("QueuedUtc"),
        started_at=f.time("StartedUtc"),
        completed_at=completed_at if status.terminal else None,
        updated_at=max(log_times[-1:] + [p.at for p in points[-1:]], default=None),
        last_progress_at=_last_progress(points),
        output_path=f.text("OutputPath"),
        error_message=error_message,
        error_code=error_code,
        failure_stage=failure.text("Stage") if failure else None,
        stderr_snippet=failure.text("StderrSnippet") if failure else None,
        suggested_actions=tuple(failure.strings("SuggestedActions")) if failure else (),
        expected_duration_s=expected,
        inconsistencies=(*notes, *f.notes),
        logs_tail=tuple(logs[-LOG_TAIL:]),
        artifacts=artifacts,
        correlation_id=correlation_id,
        history=tuple(points[-HISTORY_TAIL:]),
    )


def artifacts_of(f: Fields) -> tuple[Artifact, ...]:
    """`Artifacts[{Name, Path, Type, SizeBytes, CreatedAt}]`; an entry that is not one is skipped with a note."""
    try:
        items = f.items("Artifacts")
    except RecordError as exc:  # shown, never relied on: an odd list must not make the record unreadable
        f.notes.append(f"{exc}; artifacts left out")
        return ()
    found = []
    for i, item in enumerate(items[:MAX_ARTIFACTS]):
        try:
            entry = Fields(item, f"record.Artifacts[{i}]", f.notes)
            path = entry.text("Path")
            if not path:
                f.notes.append(f"record.Artifacts[{i}] has no Path; left out of artifacts")
                continue
            size = entry.integer("SizeBytes")
            found.append(
                Artifact(
                    name=entry.text("Name") or path.replace("\\", "/").rsplit("/", 1)[-1],
                    path=path,
                    type=entry.text("Type") or "",
                    size_bytes=size if size is not None and size >= 0 else None,
                    created_at=entry.time("CreatedAt"),
                )
            )
        except RecordError as exc:  # one odd artifact must not make the whole record unreadable
            f.notes.append(f"{exc}; that artifact is left out")
    return tuple(found)


def correlation_id_of(f: Fields) -> str | None:
    """Aura's `CorrelationId`, or None (with a note) when it is not a string."""
    try:
        return f.text("CorrelationId")
    except RecordError as exc:
        f.notes.append(f"{exc}; ignored")
        return None

"""The native job record as a writer holds it: mutable state that serializes to `aura-monitor/job@1`."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import psutil

from ..exceptions import RecordError
from ..jobs.model import JobStatus
from ..records.native import SCHEMA, parse_native, this_home
from ..records.timestamps import format_iso

# docs/job-record.md: the record carries the last 20 progress samples and the last 50 log lines.
HISTORY_LIMIT = 20
LOG_LIMIT = 50

_KNOWN_KEYS = frozenset(
    {
        "schema", "id", "revision", "status", "stage", "percent", "stagePercent", "message", "priority",
        "attempt", "createdAt", "queuedAt", "startedAt", "updatedAt", "heartbeatAt", "lastProgressAt",
        "completedAt", "worker", "encoder", "outputPath", "expectedDurationSeconds", "logPath",
        "traceparent", "error", "stages", "history", "logs", "request",
    }
)  # fmt: skip


class StageStatus(StrEnum):
    """Status of one stage in the record's `stages` list."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(slots=True)
class StageState:
    """One entry of `stages`: where a stage stands and the artifacts a retry may reuse."""

    name: str
    status: StageStatus = StageStatus.PENDING
    started_at: float | None = None
    completed_at: float | None = None
    artifacts: list[str] = field(default_factory=list)


@dataclass(slots=True)
class EncoderInfo:
    """The encoder child: its pid, its `-progress` file, its stderr log and the file it writes."""

    pid: int | None = None
    progress_path: str | None = None
    log_path: str | None = None
    output_path: str | None = None
    started_at: float | None = None  # when `pid` started: tells the sidecar a reused pid from this encoder


@dataclass(slots=True)
class JobError:
    """Why a job failed."""

    code: str
    message: str
    stage: str | None = None
    stderr_tail: str | None = None


@dataclass(slots=True)
class ProgressSample:
    """One entry of `history`."""

    at: float
    percent: float
    stage: str


def process_started_at(pid: int | None) -> float | None:
    """When process `pid` started (epoch seconds), as this process sees it; None if it cannot tell."""
    if pid is None:
        return None
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def _time(value: float | None) -> str | None:
    return format_iso(value) if value is not None else None


@dataclass(slots=True)
class NativeRecord:
    """Everything a native job.json holds; times are epoch seconds."""

    id: str
    status: JobStatus = JobStatus.QUEUED
    stage: str = "Queued"
    percent: float = 0.0
    revision: int = 0
    stage_percent: float | None = None
    message: str | None = None
    priority: int = 5
    attempt: int = 1
    created_at: float | None = None
    queued_at: float | None = None
    started_at: float | None = None
    updated_at: float | None = None
    heartbeat_at: float | None = None
    last_progress_at: float | None = None
    completed_at: float | None = None
    worker_pid: int | None = None
    worker_host: str | None = None
    worker_boot_id: str | None = None  # the machine and PID namespace the pids were read in (docs/job-record.md)
    worker_pid_namespace: str | None = None
    worker_started_at: float | None = None
    encoder: EncoderInfo | None = None
    output_path: str | None = None
    expected_duration_s: float | None = None
    log_path: str | None = None
    traceparent: str | None = None
    error: JobError | None = None
    stages: list[StageState] = field(default_factory=list)
    history: deque[ProgressSample] = field(default_factory=lambda: deque(maxlen=HISTORY_LIMIT))
    logs: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LIMIT))
    request: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def set_worker(self, pid: int, host: str | None = None) -> None:
        """The job runs in process `pid` of this machine and PID namespace: record where that pid is meaningful."""
        home = this_home()
        self.worker_pid = pid
        self.worker_host = host or home.host
        self.worker_boot_id, self.worker_pid_namespace = home.boot_id, home.pid_namespace
        self.worker_started_at = process_started_at(pid)

    def stage_state(self, name: str) -> StageState | None:
        return next((stage for stage in self.stages if stage.name == name), None)

    def to_json(self, revision: int | None = None) -> dict[str, Any]:
        """The JSON object of the record; `revision` overrides the stored one (the write in flight)."""
        document: dict[str, Any] = dict(self.extra)
        document.update(
            {
                "schema": SCHEMA,
                "id": self.id,
                "revision": self.revision if revision is None else revision,
                "status": self.status.value,
                "stage": self.stage,
                "percent": self.percent,
                "stagePercent": self.stage_percent,
                "message": self.message,
                "priority": self.priority,
                "attempt": self.attempt,
                "createdAt": _time(self.created_at),
                "queuedAt": _time(self.queued_at),
                "startedAt": _time(self.started_at),
                "updatedAt": _time(self.updated_at),
                "heartbeatAt": _time(self.heartbeat_at),
                "lastProgressAt": _time(self.last_progress_at),
                "completedAt": _time(self.completed_at),
                "worker": (
                    {
                        "pid": self.worker_pid,
                        "host": self.worker_host,
                        "bootId": self.worker_boot_id,
                        "pidNamespace": self.worker_pid_namespace,
                        "startedAt": _time(self.worker_started_at),
                    }
                    if self.worker_pid is not None
                    else None
                ),
                "encoder": (
                    {
                        "pid": self.encoder.pid,
                        "progressPath": self.encoder.progress_path,
                        "logPath": self.encoder.log_path,
                        "outputPath": self.encoder.output_path,
                        "startedAt": _time(self.encoder.started_at),
                    }
                    if self.encoder is not None
                    else None
                ),
                "outputPath": self.output_path,
                "expectedDurationSeconds": self.expected_duration_s,
                "logPath": self.log_path,
                "traceparent": self.traceparent,
                "error": (
                    {
                        "code": self.error.code,
                        "message": self.error.message,
                        "stage": self.error.stage,
                        "stderrTail": self.error.stderr_tail,
                    }
                    if self.error is not None
                    else None
                ),
                "stages": [
                    {
                        "name": stage.name,
                        "status": stage.status.value,
                        "startedAt": _time(stage.started_at),
                        "completedAt": _time(stage.completed_at),
                        "artifacts": list(stage.artifacts),
                    }
                    for stage in self.stages
                ],
                "history": [
                    {"at": format_iso(sample.at), "percent": sample.percent, "stage": sample.stage}
                    for sample in self.history
                ],
                "logs": list(self.logs),
                "request": self.request,
            }
        )
        return document

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NativeRecord:
        """Load a record another writer (or an earlier attempt) left; RecordError if it is not native."""
        parsed = parse_native(data)
        worker, encoder, error = _object(data, "worker"), _object(data, "encoder"), _object(data, "error")
        request = data.get("request")
        if request is not None and not isinstance(request, dict):
            raise RecordError("record.request is not an object")
        record = cls(
            id=parsed.id,
            status=parsed.status,
            stage=parsed.stage,
            percent=parsed.percent,
            revision=parsed.revision or 0,
            stage_percent=parsed.stage_percent,
            message=parsed.message,
            priority=parsed.priority if parsed.priority is not None else 5,
            attempt=parsed.attempt,
            created_at=parsed.created_at,
            queued_at=parsed.queued_at,
            started_at=parsed.started_at,
            updated_at=parsed.updated_at,
            heartbeat_at=parsed.heartbeat_at,
            last_progress_at=parsed.last_progress_at,
            completed_at=parsed.completed_at,
            worker_pid=parsed.worker_pid,
            worker_host=_text(worker, "host"),
            worker_boot_id=parsed.worker_home.boot_id if parsed.worker_home else None,
            worker_pid_namespace=parsed.worker_home.pid_namespace if parsed.worker_home else None,
            worker_started_at=parsed.worker_started_at,
            encoder=(
                EncoderInfo(
                    pid=parsed.encoder_pid,
                    progress_path=parsed.progress_file,
                    log_path=parsed.encoder_log,
                    output_path=_text(encoder, "outputPath"),
                    started_at=parsed.encoder_started_at,
                )
                if encoder is not None
                else None
            ),
            output_path=parsed.output_path,
            expected_duration_s=parsed.expected_duration_s,
            log_path=parsed.job_log,
            traceparent=parsed.traceparent,
            error=(
                JobError(
                    code=parsed.error_code or "",
                    message=parsed.error_message or "",
                    stage=parsed.failure_stage,
                    stderr_tail=parsed.stderr_snippet,
                )
                if error is not None
                else None
            ),
            stages=[
                StageState(
                    name=stage.name,
                    status=_stage_status(stage.status),
                    started_at=stage.started_at,
                    completed_at=stage.completed_at,
                    artifacts=list(stage.artifacts),
                )
                for stage in parsed.stages
            ],
            request=request,
            extra={key: value for key, value in data.items() if key not in _KNOWN_KEYS},
        )
        record.history.extend(ProgressSample(p.at, p.percent, p.stage) for p in parsed.history)
        logs = data.get("logs")
        record.logs.extend(line for line in (logs if isinstance(logs, list) else []) if isinstance(line, str))
        return record


def _object(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    return value if isinstance(value, dict) else None


def _text(data: dict[str, Any] | None, key: str) -> str | None:
    value = data.get(key) if data is not None else None
    return value if isinstance(value, str) else None


def _stage_status(raw: str) -> StageStatus:
    try:
        return StageStatus(raw)
    except ValueError:
        raise RecordError(f"record.stages status {raw!r} is not one of {[s.value for s in StageStatus]}") from None

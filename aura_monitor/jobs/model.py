"""The normalized job record every part of aura-monitor reads, whatever format the writer used."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from ..exceptions import InvalidJobId
from .stages import FINALIZATION_STAGES


class JobStatus(StrEnum):
    """Status values of the API, as Aura's own API names them."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class RecordFormat(StrEnum):
    """Who wrote a job.json: Aura Video Studio, or a pipeline using our reporter SDK."""

    AURA = "aura"
    NATIVE = "native"


_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def validate_job_id(job_id: str) -> str:
    """Return the id when it is safe to use as a directory name inside the jobs dir, else raise."""
    if not _JOB_ID.fullmatch(job_id) or ".." in job_id:
        raise InvalidJobId(
            f"invalid job id {job_id[:64]!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..'"
        )
    return job_id


@dataclass(frozen=True, slots=True)
class ProgressPoint:
    """One observed progress sample."""

    at: float
    percent: float
    stage: str


@dataclass(frozen=True, slots=True)
class StageRecord:
    """Status of one pipeline stage (native records only; Aura writes no step list)."""

    name: str
    status: str
    started_at: float | None = None
    completed_at: float | None = None
    artifacts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Artifact:
    """One file a job says it produced (Aura's `Artifacts[]`); the size is the writer's claim, never measured."""

    name: str
    path: str
    type: str
    size_bytes: int | None = None
    created_at: float | None = None


@dataclass(frozen=True, slots=True)
class ProcessHome:
    """Where a pid means something: the machine (boot id, host name) and the PID namespace it was read in."""

    host: str | None
    boot_id: str | None  # /proc/sys/kernel/random/boot_id: one per kernel boot, shared by its containers
    pid_namespace: str | None  # readlink /proc/self/ns/pid, e.g. "pid:[4026531836]"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job.json, normalized. Times are epoch seconds; None means the writer did not say."""

    id: str
    format: RecordFormat
    status: JobStatus
    stage: str
    percent: float
    raw_status: str
    stage_percent: float | None = None
    message: str | None = None
    created_at: float | None = None
    queued_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    updated_at: float | None = None
    heartbeat_at: float | None = None
    last_progress_at: float | None = None
    revision: int | None = None
    priority: int | None = None
    attempt: int = 1
    output_path: str | None = None
    error_message: str | None = None
    error_code: str | None = None
    failure_stage: str | None = None
    stderr_snippet: str | None = None
    suggested_actions: tuple[str, ...] = ()
    expected_duration_s: float | None = None
    worker_pid: int | None = None
    encoder_pid: int | None = None
    worker_home: ProcessHome | None = None  # where worker_pid and encoder_pid were read (native records only)
    worker_started_at: float | None = None  # when those processes started: a pid held by another is reused
    encoder_started_at: float | None = None
    progress_file: str | None = None
    encoder_log: str | None = None
    encoder_output: str | None = None  # the file the encoder writes (the record's outputPath may be the final one)
    job_log: str | None = None
    traceparent: str | None = None
    inconsistencies: tuple[str, ...] = ()
    logs_tail: tuple[str, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    correlation_id: str | None = None
    history: tuple[ProgressPoint, ...] = ()
    stages: tuple[StageRecord, ...] = field(default=())

    @property
    def finalizing(self) -> bool:
        return self.stage.strip().lower() in FINALIZATION_STAGES

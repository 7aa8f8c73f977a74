"""What the recorder hands the writer: one small immutable operation per fact worth keeping."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..jobs.model import JobStatus
from ..jobs.verdicts import Verdict


@dataclass(frozen=True, slots=True)
class RunSeen:
    """A run (job, attempt, node) was seen or changed status; `output_path` is checked by the writer.

    `status` is a JobStatus, or "retried" for an attempt a retry replaced before it reached a terminal status.
    """

    job_id: str
    attempt: int
    node: str
    status: JobStatus | str
    created_at: float | None
    started_at: float | None
    ended_at: float | None
    output_path: str | None
    at: float


@dataclass(frozen=True, slots=True)
class StageDone:
    """One stage of one run ended (the next stage began, or the run ended)."""

    job_id: str
    attempt: int
    node: str
    stage: str
    started_at: float
    ended_at: float
    progress_updates: int
    max_gap_s: float | None
    typical_gap_s: float | None
    expected_media_s: float | None


@dataclass(frozen=True, slots=True)
class IncidentOpened:
    """A stall was flagged: opens an incident, or continues the one still open for this job on this node."""

    job_id: str
    node: str
    attempt: int
    stage: str
    at: float
    verdict: Verdict
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IncidentVerdict:
    """The open incident's verdict changed (a diagnosis refined it)."""

    job_id: str
    node: str
    at: float
    verdict: Verdict
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IncidentClosed:
    """The open incident ended with `resolution` (recovered, completed, failed, cancelled, retried)."""

    job_id: str
    node: str
    at: float
    resolution: str


Op = RunSeen | StageDone | IncidentOpened | IncidentVerdict | IncidentClosed

"""Transition records: the one account of every change that SSE, metrics, spans and diagnosis read."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .model import JobStatus
from .verdicts import Verdict


class TransitionKind(StrEnum):
    DISCOVERED = "discovered"
    STATUS = "status"
    STAGE = "stage"
    PROGRESS = "progress"
    STALLED = "stalled"
    RECOVERED = "recovered"
    VERDICT = "verdict"
    INCONSISTENT = "inconsistent"
    UNREADABLE = "unreadable"
    READABLE = "readable"
    REMOVED = "removed"


# What `old` and `new` hold: a JobStatus for STATUS, a Verdict for STALLED, RECOVERED and VERDICT, the stage
# name for STAGE, None otherwise. They are the enums themselves (StrEnum: they still read as their words).
Value = JobStatus | Verdict | str


@dataclass(frozen=True, slots=True)
class Transition:
    """Job `job_id` went from `old` to `new` for `reason` at `at`; `elapsed` is the time spent in `old`."""

    seq: int
    job_id: str
    kind: TransitionKind
    old: Value | None
    new: Value | None
    reason: str
    at: float
    elapsed: float | None = None

    @property
    def old_status(self) -> JobStatus | None:
        return self.old if isinstance(self.old, JobStatus) else None

    @property
    def new_status(self) -> JobStatus | None:
        return self.new if isinstance(self.new, JobStatus) else None

    @property
    def verdict(self) -> Verdict | None:
        """The verdict a STALLED or VERDICT transition carries (the one a RECOVERED one leaves)."""
        return self.new if isinstance(self.new, Verdict) else None

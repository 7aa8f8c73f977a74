"""Transition records: the one account of every change that SSE, metrics, spans and diagnosis read."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


@dataclass(frozen=True, slots=True)
class Transition:
    """Job `job_id` went from `old` to `new` for `reason` at `at`; `elapsed` is the time spent in `old`."""

    seq: int
    job_id: str
    kind: TransitionKind
    old: str | None
    new: str | None
    reason: str
    at: float
    elapsed: float | None = None

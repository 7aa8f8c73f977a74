"""Stage-aware stall thresholds and the deadline heap that flags stalls the moment they pass."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import StrEnum

from ..config import Settings
from .model import JobStatus
from .stages import FINALIZATION_STAGES, stage_key


class ThresholdKind(StrEnum):
    """Which rule picked a job's threshold (shown to users and used as a metric label)."""

    DEFAULT = "default"
    FINALIZING = "finalizing"
    QUEUED = "queued"
    STAGE = "stage"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Stall thresholds in seconds; `stages` overrides by lower-case stage name or canonical stage key."""

    default: float = 45.0
    finalizing: float = 180.0
    finalizing_percent: float = 90.0
    queued: float = 600.0
    stages: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            default=settings.stall_threshold,
            finalizing=settings.finalizing_threshold,
            finalizing_percent=settings.finalizing_percent,
            queued=settings.queued_threshold,
            stages=dict(settings.stage_thresholds),
        )

    def for_job(self, status: JobStatus, stage: str, percent: float) -> tuple[float, ThresholdKind] | None:
        """Seconds without progress after which a job is stalled; None when it cannot stall."""
        if status is JobStatus.QUEUED:
            return self.queued, ThresholdKind.QUEUED
        # Aura's Pause only flips the Status field: the pipeline keeps running and writes Running back on its
        # next update, so a Paused record that stops changing is as stuck as a Running one (AURA_FORMAT.md).
        if status not in (JobStatus.RUNNING, JobStatus.PAUSED):
            return None
        name = stage.strip().lower()
        for key in (name, stage_key(stage)):
            if key in self.stages:
                return self.stages[key], ThresholdKind.STAGE
        if name in FINALIZATION_STAGES or percent >= self.finalizing_percent:
            return self.finalizing, ThresholdKind.FINALIZING
        return self.default, ThresholdKind.DEFAULT


def stalls_after(last_progress_at: float, threshold: float) -> float:
    """The instant a job with no further progress becomes stalled (strictly after this moment)."""
    return last_progress_at + threshold


def is_stalled(last_progress_at: float, threshold: float, now: float) -> bool:
    return now > stalls_after(last_progress_at, threshold)


class DeadlineHeap:
    """Pending stall deadlines; re-arming a job invalidates its older entries lazily."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._generation: dict[str, int] = {}
        self._counter = 0

    def arm(self, job_id: str, deadline: float) -> None:
        self._counter += 1
        self._generation[job_id] = self._counter
        heapq.heappush(self._heap, (deadline, self._counter, job_id))
        if len(self._heap) > 4 * len(self._generation) + 64:
            self._compact()

    def disarm(self, job_id: str) -> None:
        self._generation.pop(job_id, None)

    def next_deadline(self) -> float | None:
        while self._heap:
            deadline, generation, job_id = self._heap[0]
            if self._generation.get(job_id) == generation:
                return deadline
            heapq.heappop(self._heap)
        return None

    def pop_due(self, now: float) -> list[str]:
        """Jobs whose deadline is strictly before `now`; each is disarmed."""
        due = []
        while self._heap and self._heap[0][0] < now:
            _, generation, job_id = heapq.heappop(self._heap)
            if self._generation.get(job_id) == generation:
                del self._generation[job_id]
                due.append(job_id)
        return due

    def __len__(self) -> int:
        return len(self._generation)

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if self._generation.get(entry[2]) == entry[1]]
        heapq.heapify(self._heap)

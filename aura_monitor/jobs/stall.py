"""Stage-aware stall thresholds and the deadline heap that flags stalls the moment they pass."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import StrEnum

from ..config import Settings
from .learned import EMPTY, LearnedTable
from .model import JobStatus
from .stages import FINALIZATION_STAGES, stage_key


class ThresholdKind(StrEnum):
    """Which rule picked a job's threshold (shown to users and used as a metric label)."""

    DEFAULT = "default"
    FINALIZING = "finalizing"
    QUEUED = "queued"
    STAGE = "stage"


class ThresholdSource(StrEnum):
    """Where a job's threshold came from: the fleet's own history or the configuration (DESIGN 2.7)."""

    LEARNED = "learned"
    CONFIGURED = "configured"


@dataclass(frozen=True, slots=True)
class Picked:
    """The threshold that applies to a job now, the rule that chose it, and where its seconds came from."""

    seconds: float
    kind: ThresholdKind
    source: ThresholdSource
    basis: str


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Stall thresholds in seconds; `stages` overrides by lower-case stage name or canonical stage key."""

    default: float = 45.0
    finalizing: float = 180.0
    finalizing_percent: float = 90.0
    queued: float = 600.0
    stages: dict[str, float] = field(default_factory=dict)
    # Learned per-stage thresholds (jobs/learned.py), swapped in whole by Tracker.set_thresholds.
    learned: LearnedTable = EMPTY

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
        """Seconds without progress after which a job is stalled (configured rules only); None when it cannot."""
        picked = self.configured_pick(status, stage, percent)
        return None if picked is None else (picked.seconds, picked.kind)

    def configured_for_stage(self, key: str) -> float:
        """The configured threshold of a running stage by canonical key (the learned ceiling's base)."""
        picked = self.configured_pick(JobStatus.RUNNING, key, 0.0)
        return picked.seconds if picked is not None else self.default

    def pick(self, status: JobStatus, stage: str, percent: float, media_s: float | None = None) -> Picked | None:
        """The threshold that applies now: a learned one for the stage when there is one, else the configured.

        The queued rule is never learned. While finalizing (a finalization stage, or percent >= the
        finalizing percent) the configured finalizing threshold applies unless the stage itself is learned
        *and* is a finalization stage: a Render at 92% keeps its finalizing allowance (faststart's silent
        pass), a learned Finalize stage uses what healthy Finalize runs showed."""
        configured = self.configured_pick(status, stage, percent)
        if configured is None or configured.kind is ThresholdKind.QUEUED:
            return configured
        key = stage_key(stage)
        learned = self.learned.get(key)
        if learned is None:
            return configured
        if configured.kind is ThresholdKind.FINALIZING and stage.strip().lower() not in FINALIZATION_STAGES:
            return configured
        seconds, basis = learned.for_media(media_s)
        return Picked(seconds, configured.kind, ThresholdSource.LEARNED, basis)

    def configured_pick(self, status: JobStatus, stage: str, percent: float) -> Picked | None:
        """The configured rules alone (--stall-threshold, --finalizing-threshold, --queued-threshold, per stage)."""
        if status is JobStatus.QUEUED:
            return Picked(self.queued, ThresholdKind.QUEUED, ThresholdSource.CONFIGURED, "configured queued threshold")
        # Aura's Pause only flips the Status field: the pipeline keeps running and writes Running back on its
        # next update, so a Paused record that stops changing is as stuck as a Running one (AURA_FORMAT.md).
        if status not in (JobStatus.RUNNING, JobStatus.PAUSED):
            return None
        name = stage.strip().lower()
        for key in (name, stage_key(stage)):
            if key in self.stages:
                return Picked(
                    self.stages[key], ThresholdKind.STAGE, ThresholdSource.CONFIGURED, f"configured for stage {key}"
                )
        if name in FINALIZATION_STAGES or percent >= self.finalizing_percent:
            return Picked(
                self.finalizing, ThresholdKind.FINALIZING, ThresholdSource.CONFIGURED, "configured finalizing threshold"
            )
        return Picked(self.default, ThresholdKind.DEFAULT, ThresholdSource.CONFIGURED, "configured default threshold")


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

"""The job being diagnosed, as the tracker (online) or the files alone (offline) know it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..jobs.model import JobRecord
from ..jobs.stall import ThresholdKind
from ..jobs.tracker import JobState
from ..jobs.transitions import Transition
from ..jobs.verdicts import Verdict


@dataclass(slots=True)
class Subject:
    job_id: str
    record: JobRecord | None
    record_path: str
    record_mtime: float | None = None
    last_progress_at: float | None = None
    stalled: bool = False
    stalled_since: float | None = None
    threshold: float | None = None
    threshold_kind: ThresholdKind | None = None
    threshold_source: str | None = None
    threshold_basis: str | None = None
    parse_failures: int = 0
    last_parse_error: str | None = None
    unreadable_since: float | None = None
    transitions: list[Transition] = field(default_factory=list)
    verdicts: list[tuple[float, Verdict]] = field(default_factory=list)  # the held verdict's timeline
    observed_by_sidecar: bool = False

    @classmethod
    def from_state(cls, state: JobState, observed: bool) -> Subject:
        return cls(
            job_id=state.id,
            record=state.record,
            record_path=state.path,
            record_mtime=state.file_mtime,
            last_progress_at=state.last_progress_at,
            stalled=state.stalled,
            stalled_since=state.stalled_since,
            threshold=state.threshold,
            threshold_kind=state.threshold_kind,
            threshold_source=state.threshold_source.value if state.threshold_source else None,
            threshold_basis=state.threshold_basis,
            parse_failures=state.parse_failures,
            last_parse_error=state.last_parse_error,
            unreadable_since=state.unreadable_since,
            transitions=list(state.transitions),
            verdicts=list(state.verdicts),
            observed_by_sidecar=observed,
        )

    def since_progress(self, now: float) -> float | None:
        return None if self.last_progress_at is None else max(0.0, now - self.last_progress_at)

"""The tracker listener: turns transitions into history operations and only enqueues them (never waits)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..jobs.model import JobRecord, JobStatus
from ..jobs.recent import Recent
from ..jobs.stages import stage_key
from ..jobs.tracker import JobState, Tracker
from ..jobs.transitions import Transition, TransitionKind
from .ops import IncidentClosed, IncidentOpened, IncidentVerdict, Op, RunSeen, StageDone
from .store import TERMINAL_RESOLUTION, Resolution

GAPS_KEPT = 256  # the typical gap is the median of a stage's last GAPS_KEPT gaps: bounded memory per job
# A Recent list, not a deque: a deque costs ~620 bytes empty, and every tracked job has a run (most of them
# finished, with no gap at all): 60 MB at 100,000 jobs.


@dataclass(slots=True)
class _Run:
    """What the recorder accumulates for the current stage of one job's current attempt."""

    attempt: int
    stage: str
    stage_start: float
    last_progress: float
    updates: int = 0
    max_gap: float | None = None
    gaps: Recent[float] = field(default_factory=lambda: Recent(GAPS_KEPT))
    incident_attempt: int | None = None  # the attempt of the stall open now, None when none is
    expected_media_s: float | None = None  # the last expected media duration a record of this attempt gave
    last_status: JobStatus = JobStatus.RUNNING  # this attempt's status as last seen


class HistoryRecorder:
    """Subscribed last to the tracker (sidecar.py); `put` must not block (a bounded queue's put_nowait)."""

    def __init__(
        self, tracker: Tracker, node: str, put: Callable[[Op], None], count_incident: Callable[[str, str], None]
    ) -> None:
        self.tracker = tracker
        self.node = node
        self.put = put
        self.count_incident = count_incident
        self._runs: dict[str, _Run] = {}

    def observe(self, batch: Sequence[Transition]) -> None:
        for transition in batch:
            state = self.tracker.get(transition.job_id)
            record = state.record if state is not None else None
            if transition.kind is TransitionKind.REMOVED or record is None:
                self._runs.pop(transition.job_id, None)
                continue
            self._one(transition, state, record)  # type: ignore[arg-type]

    def _one(self, t: Transition, state: JobState, record: JobRecord) -> None:
        run = self._runs.get(t.job_id)
        if run is None or t.kind is TransitionKind.DISCOVERED:
            run = self._runs[t.job_id] = _Run(record.attempt, stage_key(record.stage), t.at, t.at)
            run.expected_media_s, run.last_status = record.expected_duration_s, record.status
            self._run_seen(record, t.at)
            return
        if record.attempt != run.attempt:  # a retry started a new attempt: the old one's stall ends here
            self._end_stage(t.job_id, run, t.at)
            if not run.last_status.terminal:  # replaced before it ended: its row says so
                self.put(RunSeen(t.job_id, run.attempt, self.node, "retried", None, None, t.at, None, t.at))
            if run.incident_attempt is not None:
                self.put(IncidentClosed(t.job_id, self.node, t.at, Resolution.RETRIED.value))
            run = self._runs[t.job_id] = _Run(record.attempt, stage_key(record.stage), t.at, t.at)
            self._run_seen(record, t.at)
        if record.expected_duration_s is not None:
            run.expected_media_s = record.expected_duration_s
        run.last_status = record.status
        kind = t.kind
        if kind is TransitionKind.STATUS:
            self._run_seen(record, t.at)
            if record.status.terminal:
                self._end_stage(t.job_id, run, t.at)
        elif kind is TransitionKind.STAGE:
            self._progress(run, t.at)
            self._end_stage(t.job_id, run, t.at)
            run.stage, run.stage_start, run.updates, run.max_gap = stage_key(record.stage), t.at, 0, None
            run.gaps.clear()
        elif kind is TransitionKind.PROGRESS:
            self._progress(run, t.at)
        elif kind is TransitionKind.STALLED and t.verdict is not None:
            run.incident_attempt = run.attempt
            stage = stage_key(record.stage)
            self.count_incident(str(t.verdict), stage)
            at = state.stalled_since if state.stalled_since is not None else t.at
            self.put(IncidentOpened(t.job_id, self.node, run.attempt, stage, at, t.verdict, _evidence(t, record)))
        elif kind is TransitionKind.VERDICT and t.verdict is not None:
            self.put(IncidentVerdict(t.job_id, self.node, t.at, t.verdict, _evidence(t, record)))
        elif kind is TransitionKind.RECOVERED:
            run.incident_attempt = None
            self.put(IncidentClosed(t.job_id, self.node, t.at, resolution_for(record.status).value))

    def _progress(self, run: _Run, at: float) -> None:
        gap = at - run.last_progress
        run.updates += 1
        run.last_progress = at
        if gap > 0:
            run.gaps.append(gap)
            run.max_gap = gap if run.max_gap is None else max(run.max_gap, gap)

    def _end_stage(self, job_id: str, run: _Run, at: float) -> None:
        if at <= run.stage_start and run.updates == 0:
            return
        typical = statistics.median(run.gaps) if run.gaps else None
        self.put(
            StageDone(
                job_id, run.attempt, self.node, run.stage, run.stage_start, at, run.updates, run.max_gap, typical,
                run.expected_media_s,
            )
        )  # fmt: skip

    def _run_seen(self, record: JobRecord, at: float) -> None:
        ended = record.completed_at if record.status.terminal else None
        if record.status.terminal and ended is None:
            ended = at
        self.put(
            RunSeen(
                record.id, record.attempt, self.node, record.status, record.created_at, record.started_at, ended,
                record.output_path, at,
            )
        )  # fmt: skip


def resolution_for(status: JobStatus) -> Resolution:
    """How a stall ended, from the job's status when it ended: a terminal status, back in the queue, or going on."""
    if status in TERMINAL_RESOLUTION:
        return TERMINAL_RESOLUTION[status]
    return Resolution.RETRIED if status is JobStatus.QUEUED else Resolution.RECOVERED


def _evidence(t: Transition, record: JobRecord) -> dict[str, Any]:
    """What the job showed when the verdict was given: enough to read an incident without the job's files."""
    return {
        "summary": t.reason,
        "stage": record.stage,
        "percent": record.percent,
        "message": record.message,
        "status": str(record.status),
        "errorMessage": record.error_message,
        "lastProgressAt": record.last_progress_at,
        "expectedMediaSeconds": record.expected_duration_s,
    }

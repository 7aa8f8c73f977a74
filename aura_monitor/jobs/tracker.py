"""Live state of every job: applies records, keeps history, and turns each change into a Transition."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .index import JobIndex
from .model import JobRecord, JobStatus, ProgressPoint
from .recent import Recent
from .settle import VerdictHold
from .stall import DeadlineHeap, ThresholdKind, Thresholds, ThresholdSource, stalls_after
from .transitions import Transition, TransitionKind, Value
from .verdicts import Verdict

log = logging.getLogger(__name__)

SAMPLES = 20
TRANSITIONS_KEPT = 100
VERDICTS_KEPT = 50  # the verdict timeline of the current (or last) stall
# A listener that keeps failing is logged at most once per this many seconds (it is counted every time).
LISTENER_LOG_INTERVAL_S = 60.0

Listener = Callable[[Sequence[Transition]], None]


@dataclass(slots=True)
class JobState:
    """What the sidecar knows of one job; mutated only by the Tracker, under its lock."""

    id: str
    path: str
    first_seen: float
    record: JobRecord | None = None
    last_change_at: float | None = None
    last_progress_at: float | None = None
    status_since: float | None = None
    stage_since: float | None = None
    threshold: float | None = None
    threshold_kind: ThresholdKind | None = None
    threshold_source: ThresholdSource | None = None
    threshold_basis: str | None = None  # one sentence: where the threshold's seconds came from
    stalled: bool = False
    stalled_since: float | None = None
    verdict: Verdict | None = None
    # False while `verdict` is the stall's placeholder: metrics publish no verdict before a diagnosis.
    diagnosed: bool = False
    hold: VerdictHold = field(default_factory=VerdictHold)
    # (wall-clock time, verdict) each time the current (or last) stall's verdict changed, first the placeholder
    verdicts: Recent[tuple[float, Verdict]] = field(default_factory=lambda: Recent(VERDICTS_KEPT))
    file_mtime: float | None = None
    parse_failures: int = 0
    last_parse_error: str | None = None
    unreadable_since: float | None = None
    unreadable_reported: bool = False
    # The same instants on the monotonic clock, which alone times stalls (None: the tracker has no
    # monotonic clock and times them on the wall clock, as unit tests that pass times by hand do).
    progress_mono: float | None = None
    stalled_mono: float | None = None
    unreadable_mono: float | None = None
    monotonic: Callable[[], float] | None = None
    node: str | None = None  # the render node this job runs on (the tracker's, the same for every job)
    # Bounded lists, not deques: a deque costs ~620 bytes empty, and most jobs hold one or two items (recent.py).
    samples: Recent[ProgressPoint] = field(default_factory=lambda: Recent(SAMPLES))
    transitions: Recent[Transition] = field(default_factory=lambda: Recent(TRANSITIONS_KEPT))

    def seconds_since_progress(self, now: float) -> float | None:
        """Seconds without progress: monotonic when the tracker has that clock (a wall-clock step changes
        nothing), else `now` minus the wall-clock stamp."""
        if self.monotonic is not None and self.progress_mono is not None:
            return max(0.0, self.monotonic() - self.progress_mono)
        return None if self.last_progress_at is None else max(0.0, now - self.last_progress_at)


def default_verdict(status: JobStatus) -> Verdict:
    """Stall reason before (or without) a diagnosis."""
    return Verdict.QUEUED_TOO_LONG if status is JobStatus.QUEUED else Verdict.NO_PROGRESS


class Tracker:
    """Thread-safe job table. Writers: the ingest thread and the stall timer; readers: everything else."""

    def __init__(
        self,
        thresholds: Thresholds,
        unreadable_grace: float = 10.0,
        monotonic: Callable[[], float] | None = None,
        node: str | None = None,
    ) -> None:
        """`monotonic` times every deadline (the sidecar passes its clock's); without it the `at` and `now`
        passed in are used, so tests can drive the tracker by hand. `node` names the render node on each job."""
        self.thresholds = thresholds
        self.unreadable_grace = unreadable_grace
        self._monotonic = monotonic
        self.node = node
        self.lock = threading.RLock()
        self._jobs: dict[str, JobState] = {}
        self.index = JobIndex()  # by status, recency, stalled, finished: read under `lock` (jobs/index.py)
        self._stalls = DeadlineHeap()
        self._unreadable = DeadlineHeap()
        self._seq = itertools.count(1)
        self._listeners: list[Listener] = []
        self._deadline_listeners: list[Callable[[float], None]] = []
        self.listener_failures = 0  # read by metrics and tests
        self._listener_logged: dict[str, float] = {}

    # -- observers -----------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Call `listener` with every batch of transitions, in order, under the tracker lock."""
        self._listeners.append(listener)

    def on_deadline(self, callback: Callable[[float], None]) -> None:
        """Call `callback(deadline)` whenever a stall or unreadable deadline is armed (under the lock)."""
        self._deadline_listeners.append(callback)

    # -- reads ---------------------------------------------------------------------------------
    def get(self, job_id: str) -> JobState | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[JobState]:
        with self.lock:
            return list(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    def states(self, ids: Iterable[str]) -> list[JobState]:
        """The states of `ids` (an index read, taken under the lock), skipping any job gone meanwhile."""
        with self.lock:
            jobs = self._jobs
            return [state for job_id in ids if (state := jobs.get(job_id)) is not None]

    def mono(self, at: float) -> float:
        """The monotonic instant matching wall-clock `at` (just observed), the instant deadlines are on."""
        return self._monotonic() if self._monotonic is not None else at

    def next_deadline(self) -> float | None:
        """The earliest pending deadline, on the monotonic clock (see mono())."""
        with self.lock:
            deadlines = [d for d in (self._stalls.next_deadline(), self._unreadable.next_deadline()) if d]
            return min(deadlines, default=None)

    # -- writes --------------------------------------------------------------------------------
    def apply(self, path: str, record: JobRecord, at: float, mtime: float | None = None) -> list[Transition]:
        """Take a freshly parsed record of the job at `path`, observed at `at`."""
        with self.lock:
            m = self.mono(at)
            state = self._jobs.get(record.id)
            out: list[Transition] = []
            if state is None:
                state = JobState(id=record.id, path=path, first_seen=at, monotonic=self._monotonic, node=self.node)
                self._jobs[record.id] = state
            state.path, state.file_mtime = path, mtime
            if state.unreadable_since is not None:
                if state.unreadable_reported:
                    out.append(self._make(state, TransitionKind.READABLE, None, None, "record parses again", at))
                state.unreadable_since, state.unreadable_mono, state.unreadable_reported = None, None, False
                self._unreadable.disarm(state.id)
            if state.record is None:
                self._discover(state, record, at, m, mtime, out)
            else:
                self._update(state, record, at, m, out)
            self._rearm(state, at, m, out)
            self.index.sync(state)
            return self._emit(out)

    def record_failure(self, job_id: str, path: str, error: str, at: float) -> list[Transition]:
        """A read of this job's file failed; the last good state is kept."""
        with self.lock:
            state = self._jobs.get(job_id)
            if state is None:
                state = JobState(id=job_id, path=path, first_seen=at, monotonic=self._monotonic, node=self.node)
                self._jobs[job_id] = state
            state.parse_failures += 1
            state.last_parse_error = error
            if state.unreadable_since is None:
                m = self.mono(at)
                state.unreadable_since, state.unreadable_mono = at, m
                self._unreadable.arm(job_id, m + self.unreadable_grace)
                self._deadline_armed(m + self.unreadable_grace)
            self.index.sync(state)
            return []

    def remove(self, job_id: str, at: float) -> list[Transition]:
        with self.lock:
            state = self._jobs.pop(job_id, None)
            if state is None:
                return []
            self._stalls.disarm(job_id)
            self._unreadable.disarm(job_id)
            self.index.drop(job_id)
            return self._emit([self._make(state, TransitionKind.REMOVED, None, None, "job.json removed", at)])

    def set_verdict(self, job_id: str, verdict: Verdict | str, reason: str, at: float) -> list[Transition]:
        """Set a job's verdict outright; a code that is no Verdict raises ValueError."""
        verdict = Verdict(verdict)
        with self.lock:
            state = self._jobs.get(job_id)
            if state is None:
                return []
            state.hold.held, state.hold.diagnosed = verdict, True
            return self._set_verdict(state, verdict, reason, at)

    def propose_verdict(self, job_id: str, verdict: Verdict, strength: int, reason: str, at: float) -> list[Transition]:
        """A diagnosis of a stalled job proposes `verdict`: it is held only as settle.VerdictHold allows
        (at once when it refines the placeholder or is stronger, else once confirmed), so one diagnosis
        that misses the evidence cannot flip the verdict."""
        with self.lock:
            state = self._jobs.get(job_id)
            if state is None or not state.stalled:
                return []
            if not state.hold.propose(verdict, strength, at):
                state.diagnosed = True
                return []
            return self._set_verdict(state, verdict, reason, at)

    def _set_verdict(self, state: JobState, verdict: Verdict, reason: str, at: float) -> list[Transition]:
        state.diagnosed = True
        if state.verdict == verdict:
            return []
        out = [self._make(state, TransitionKind.VERDICT, state.verdict, verdict, reason, at)]
        state.verdict = verdict
        state.verdicts.append((at, verdict))
        return self._emit(out)

    def tick(self, now: float) -> list[Transition]:
        """Flag every job whose stall or unreadable deadline passed (on the monotonic clock); `now` is the
        wall-clock time the transitions carry."""
        with self.lock:
            m = self.mono(now)
            out: list[Transition] = []
            for job_id in self._stalls.pop_due(m):
                state = self._jobs.get(job_id)
                if state is None or state.record is None or state.stalled or state.progress_mono is None:
                    continue
                self._mark_stalled(state, now, m, out)
                self.index.sync(state)
            for job_id in self._unreadable.pop_due(m):
                state = self._jobs.get(job_id)
                if state is None or state.unreadable_mono is None:
                    continue
                state.unreadable_reported = True
                self.index.sync(state)
                reason = f"job.json unreadable for {m - state.unreadable_mono:.0f} s: {state.last_parse_error}"
                out.append(self._make(state, TransitionKind.UNREADABLE, None, None, reason, now))
            return self._emit(out)

    def set_thresholds(self, thresholds: Thresholds, at: float) -> list[Transition]:
        """Swap in new thresholds (a refreshed learned table) and re-arm every job by them now: a job already
        quieter than its new threshold is flagged at once, one with more room gets it."""
        with self.lock:
            self.thresholds = thresholds
            m = self.mono(at)
            out: list[Transition] = []
            # Only active jobs can stall: walking the index keeps a refresh cheap with 100,000 jobs tracked.
            for state in self.states(list(self.index.active())):
                if state.record is not None and state.progress_mono is not None and not state.stalled:
                    self._rearm(state, at, m, out)
                    self.index.sync(state)
            return self._emit(out)

    # -- internals -----------------------------------------------------------------------------
    def _discover(
        self, state: JobState, record: JobRecord, at: float, m: float, mtime: float | None, out: list[Transition]
    ) -> None:
        state.record = record
        known = record.last_progress_at
        if record.status is JobStatus.QUEUED:
            known = record.queued_at or record.created_at or known
        candidates = [t for t in (known, mtime) if t is not None]
        # The record's own stamp is best; never trust one from the future (clock skew, bad writer).
        state.last_progress_at = min(known if known is not None else min(candidates, default=at), at)
        # Carried onto the monotonic clock by its age now: the only moment the two clocks are compared.
        state.progress_mono = m - (at - state.last_progress_at)
        state.last_change_at = at
        state.status_since = state.stage_since = state.last_progress_at
        state.samples.extend(record.history)
        if not record.history:
            state.samples.append(ProgressPoint(state.last_progress_at, record.percent, record.stage))
        out.append(self._make(state, TransitionKind.DISCOVERED, None, record.status, "first seen", at))
        if record.inconsistencies:
            out.append(self._inconsistent(state, record, at))

    def _update(self, state: JobState, record: JobRecord, at: float, m: float, out: list[Transition]) -> None:
        old = state.record
        assert old is not None
        state.record = record
        state.last_change_at = at
        progressed = False
        if record.status is not old.status:
            out.append(
                self._make(
                    state,
                    TransitionKind.STATUS,
                    old.status,
                    record.status,
                    record.error_message or "record status changed",
                    at,
                    at - (state.status_since or at),
                )
            )
            state.status_since = at
            progressed = True
        if record.stage != old.stage:
            out.append(
                self._make(
                    state,
                    TransitionKind.STAGE,
                    old.stage,
                    record.stage,
                    "stage changed",
                    at,
                    at - (state.stage_since or at),
                )
            )
            state.stage_since = at
            progressed = True
        if record.percent != old.percent:
            out.append(
                self._make(
                    state,
                    TransitionKind.PROGRESS,
                    f"{old.percent:g}",
                    f"{record.percent:g}",
                    record.message or "progress",
                    at,
                )
            )
            progressed = True
        if progressed:
            state.last_progress_at, state.progress_mono = at, m
            state.samples.append(ProgressPoint(at, record.percent, record.stage))
        if record.inconsistencies and record.inconsistencies != old.inconsistencies:
            out.append(self._inconsistent(state, record, at))

    def _rearm(self, state: JobState, at: float, m: float, out: list[Transition]) -> None:
        record = state.record
        assert record is not None and state.progress_mono is not None
        chosen = self.thresholds.pick(record.status, record.stage, record.percent, record.expected_duration_s)
        picked = (chosen.seconds, chosen.kind) if chosen is not None else None
        state.threshold, state.threshold_kind = picked if picked else (None, None)
        state.threshold_source = chosen.source if chosen is not None else None
        state.threshold_basis = chosen.basis if chosen is not None else None
        progressed_since_stall = state.stalled_mono is not None and state.progress_mono > state.stalled_mono
        if state.stalled and (picked is None or progressed_since_stall):
            reason = "job reached a terminal state" if record.status.terminal else "progress resumed"
            out.append(
                self._make(
                    state,
                    TransitionKind.RECOVERED,
                    state.verdict,
                    None,
                    reason,
                    at,
                    m - (state.stalled_mono if state.stalled_mono is not None else m),
                )
            )
            state.stalled, state.stalled_since, state.verdict, state.diagnosed = False, None, None, False
            state.stalled_mono = None
        if picked is None:
            self._stalls.disarm(state.id)
        elif not state.stalled:
            deadline = stalls_after(state.progress_mono, picked[0])
            if m > deadline:
                self._mark_stalled(state, at, m, out)
            else:
                self._stalls.arm(state.id, deadline)
                self._deadline_armed(deadline)

    def _mark_stalled(self, state: JobState, now: float, m: float, out: list[Transition]) -> None:
        record = state.record
        assert record is not None and state.progress_mono is not None and state.threshold is not None
        quiet = m - state.progress_mono
        learned = f", learned: {state.threshold_basis}" if state.threshold_source is ThresholdSource.LEARNED else ""
        state.stalled = True
        state.stalled_mono = stalls_after(state.progress_mono, state.threshold)
        state.stalled_since = now - (m - state.stalled_mono)  # shown on the wall clock as it reads now
        state.verdict = default_verdict(record.status)
        state.hold.start(state.verdict)
        state.verdicts.clear()  # a new stall starts a new timeline
        state.verdicts.append((now, state.verdict))
        reason = (
            f"no progress for {quiet:.1f} s in stage {record.stage or '?'} at "
            f"{record.percent:g}% (threshold {state.threshold:g} s, {state.threshold_kind or '?'}{learned})"
        )
        out.append(self._make(state, TransitionKind.STALLED, None, state.verdict, reason, now, quiet))

    def _inconsistent(self, state: JobState, record: JobRecord, at: float) -> Transition:
        return self._make(state, TransitionKind.INCONSISTENT, None, None, "; ".join(record.inconsistencies), at)

    def _make(
        self,
        state: JobState,
        kind: TransitionKind,
        old: Value | None,
        new: Value | None,
        reason: str,
        at: float,
        elapsed: float | None = None,
    ) -> Transition:
        transition = Transition(next(self._seq), state.id, kind, old, new, reason, at, elapsed)
        state.transitions.append(transition)
        return transition

    def _emit(self, out: list[Transition]) -> list[Transition]:
        if out:
            for listener in self._listeners:
                try:
                    listener(out)
                except Exception:  # one failing observer (metrics, SSE, history) must not starve the others
                    self._listener_failed(listener)
        return out

    def _listener_failed(self, listener: Listener) -> None:
        self.listener_failures += 1
        name = getattr(listener, "__qualname__", None) or repr(listener)
        now = time.monotonic()
        if now - self._listener_logged.get(name, -LISTENER_LOG_INTERVAL_S) < LISTENER_LOG_INTERVAL_S:
            return
        self._listener_logged[name] = now
        log.error(
            "transition listener %s failed (%d listener failures so far); the other listeners still got the "
            "changes, but what this one feeds (metrics, events or history) may miss them: report this traceback",
            name,
            self.listener_failures,
            exc_info=True,
        )

    def _deadline_armed(self, deadline: float) -> None:
        for callback in self._deadline_listeners:
            callback(deadline)

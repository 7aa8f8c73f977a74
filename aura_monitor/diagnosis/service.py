"""Diagnoses each stall as it happens and re-diagnoses stalled jobs at a bounded rate, off the hot path."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

from ..clock import Clock
from ..config import Settings
from ..exceptions import JobNotFound
from ..stall import Thresholds
from ..tracker import Tracker
from ..transitions import Transition, TransitionKind
from .explain import Diagnosis, options_from, run_diagnosis
from .subject import Subject

log = logging.getLogger(__name__)

MAX_PER_CYCLE = 50  # re-diagnoses per interval, so thousands of stalled jobs cannot saturate a core


class DiagnosisService:
    """Runs explain() for stalled jobs on one worker thread and writes the verdict back to the tracker."""

    def __init__(
        self,
        tracker: Tracker,
        settings: Settings,
        thresholds: Thresholds,
        clock: Clock,
        subscribers: Callable[[str], int] | None = None,
        retry_history: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.tracker = tracker
        self.settings = settings
        self.thresholds = thresholds
        self.clock = clock
        self.options = options_from(settings)
        self.subscribers = subscribers
        self.retry_history = retry_history
        self.diagnoses = 0
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        tracker.subscribe(self._on_transitions)

    def _on_transitions(self, batch: Sequence[Transition]) -> None:
        for t in batch:
            if t.kind is TransitionKind.STALLED:
                self.request(t.job_id)

    def request(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._pending:
                return
            self._pending.add(job_id)
        self._queue.put(job_id)

    def explain(self, job_id: str) -> Diagnosis:
        """Diagnose now with the history the sidecar observed (used by the API)."""
        with self.tracker.lock:
            state = self.tracker.get(job_id)
            if state is None:
                raise JobNotFound(f"no job {job_id!r} in {self.settings.jobs_dir}")
            subject = Subject.from_state(state, observed=True)
        return run_diagnosis(
            subject,
            self.settings,
            self.thresholds,
            self.clock.now(),
            self.options,
            sse_subscribers=self.subscribers(job_id) if self.subscribers else None,
            retry_history=self.retry_history(job_id) if self.retry_history else None,
        )

    def start(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._work, name="aura-diagnosis", daemon=True),
            threading.Thread(target=self._rediagnose, name="aura-rediagnosis", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    def _work(self) -> None:
        while not self._stop.is_set():
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                self._pending.discard(job_id)
            state = self.tracker.get(job_id)
            if state is None or not state.stalled:
                continue
            try:
                diagnosis = self.explain(job_id)
            except JobNotFound:
                continue
            except Exception:  # a diagnosis bug must not stop the next ones
                log.exception("diagnosis of %s failed", job_id)
                continue
            self.diagnoses += 1
            current = self.tracker.get(job_id)
            if current is not None and current.stalled:
                self.tracker.set_verdict(job_id, diagnosis.verdict, diagnosis.findings[0].summary, self.clock.now())

    def _rediagnose(self) -> None:
        while not self._stop.wait(self.settings.rediagnose_interval):
            stalled = [s.id for s in self.tracker.jobs() if s.stalled]
            for job_id in stalled[:MAX_PER_CYCLE]:
                self.request(job_id)

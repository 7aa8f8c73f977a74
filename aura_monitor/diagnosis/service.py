"""Diagnoses each stall as it happens and re-diagnoses stalled jobs at a bounded rate, off the hot path.

Every diagnosis (explain or stall) goes through one DiagnosisRunner: its own small executor, one run per
job at a time, results reused while the job is unchanged for a few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import anyio
import anyio.to_thread
from prometheus_client import CollectorRegistry

from ..clock import Clock
from ..config import Settings
from ..exceptions import JobNotFound
from ..jobs.stall import Thresholds
from ..jobs.tracker import Tracker
from ..jobs.transitions import Transition, TransitionKind
from .explain import Diagnosis, options_from, run_diagnosis
from .runner import RETRY_AFTER_S, WAIT_S, DiagnosisBusy, DiagnosisRunner
from .subject import Subject

log = logging.getLogger(__name__)

MAX_PER_CYCLE = 50  # re-diagnoses per interval, so thousands of stalled jobs cannot saturate a core
STAT_THREADS = 4  # concurrent lstat batches for explain cache keys (off the event loop)
STALL_WAIT_S = 60.0  # the stall worker's patience for one diagnosis (a ffprobe deadline is 2 s)


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
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.tracker = tracker
        self.settings = settings
        self.thresholds = thresholds
        self.clock = clock
        self.options = options_from(settings)
        self.subscribers = subscribers
        self.retry_history = retry_history
        self.runner = DiagnosisRunner(self._diagnose, registry)
        self._stat_limiter: anyio.CapacityLimiter | None = None
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def observe(self, batch: Sequence[Transition]) -> None:
        for t in batch:
            if t.kind is TransitionKind.STALLED:
                self.request(t.job_id)

    def request(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._pending:
                return
            self._pending.add(job_id)
        self._queue.put(job_id)

    def _key(self, job_id: str) -> Hashable:
        """What a diagnosis of `job_id` depends on that the sidecar knows without I/O (the record revision)."""
        with self.tracker.lock:
            state = self.tracker.get(job_id)
            if state is None:
                raise JobNotFound(f"no job {job_id!r} in {self.settings.jobs_dir}")
            last = state.transitions[-1] if state.transitions else None
            revision = (state.file_mtime, id(state.record), state.stalled, state.parse_failures, id(last))
        return revision, self.subscribers(job_id) if self.subscribers else None

    def _files(self, job_id: str) -> Hashable:
        """lstat signatures of the files a diagnosis of `job_id` reads (metadata only, never content)."""
        state = self.tracker.get(job_id)
        record = state.record if state is not None else None
        paths = [str(self.options.ffmpeg_log_dir / f"{job_id}.log")]
        if record is not None:
            named = (
                record.output_path,
                record.encoder_output,
                record.progress_file,
                record.encoder_log,
                record.job_log,
            )
            paths += [p for p in named if p]
        signature: list[tuple[str, int | None, int | None, int | None]] = []
        for path in paths:
            try:
                st = os.lstat(path)
                signature.append((path, st.st_mtime_ns, st.st_size, st.st_ino))
            except (OSError, ValueError):
                signature.append((path, None, None, None))
        return tuple(signature)

    def submit(self, job_id: str, trigger: str = "explain", files: Hashable = None) -> Future[Diagnosis]:
        """The job's diagnosis, cached, shared or newly queued; JobNotFound, DiagnosisBusy when full.

        The cache key is the record revision plus `files` (the lstat signatures, taken here when not given).
        """
        key = self._key(job_id)
        return self.runner.submit(job_id, (key, self._files(job_id) if files is None else files), trigger)

    def explain(self, job_id: str, timeout: float = WAIT_S) -> Diagnosis:
        """Diagnose with the history the sidecar observed, waiting at most `timeout` (DiagnosisBusy after)."""
        try:
            return self.submit(job_id).result(timeout)
        except FutureTimeout:
            raise DiagnosisBusy(
                f"the diagnosis of {job_id!r} did not finish within {timeout:g} s (the sidecar is busy); it goes "
                f"on: retry in {RETRY_AFTER_S} s for its result"
            ) from None

    async def explain_async(self, job_id: str, timeout: float = WAIT_S) -> Diagnosis:
        """explain() for the event loop: no file I/O on the loop, and no thread of the sync routes' pool held."""
        self._key(job_id)  # JobNotFound before any work
        if self._stat_limiter is None:
            self._stat_limiter = anyio.CapacityLimiter(STAT_THREADS)
        try:
            async with asyncio.timeout(timeout):
                # The lstats run under a limiter of their own: a hung mount ties up at most STAT_THREADS.
                files = await anyio.to_thread.run_sync(self._files, job_id, limiter=self._stat_limiter)
                future = asyncio.wrap_future(self.submit(job_id, files=files))
                # shield: the run goes on (and fills the cache) when this caller gives up
                return await asyncio.shield(future)
        except TimeoutError:
            raise DiagnosisBusy(
                f"the diagnosis of {job_id!r} did not finish within {timeout:g} s (the sidecar is busy); it goes "
                f"on: retry in {RETRY_AFTER_S} s for its result"
            ) from None

    def _diagnose(self, job_id: str) -> Diagnosis:
        """One diagnosis, run by the runner's executor."""
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
        self.runner.shutdown()

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
                diagnosis = self.submit(job_id, "stall").result(STALL_WAIT_S)
            except (JobNotFound, DiagnosisBusy, FutureTimeout):
                continue  # gone, or the runner is full: the next re-diagnosis cycle asks again
            except Exception:  # a diagnosis bug must not stop the next ones
                log.exception("diagnosis of %s failed", job_id)
                continue
            current = self.tracker.get(job_id)
            if current is not None and current.stalled:
                top = diagnosis.findings[0]
                self.tracker.propose_verdict(job_id, top.code, top.strength, top.summary, self.clock.now())

    def _rediagnose(self) -> None:
        while not self._stop.wait(self.settings.rediagnose_interval):
            with self.tracker.lock:  # from the index: no pass over every job (most of them finished)
                stalled = self.tracker.index.newest_stalled()
            for job_id in stalled[:MAX_PER_CYCLE]:
                self.request(job_id)

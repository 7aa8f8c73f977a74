"""Bounded diagnosis runs: a small executor of their own, one in-flight run per job, a short result cache.

A diagnosis blocks (a 150 ms process sample, ffprobe up to its deadline), so it never runs on the
thread pool the sync routes (/healthz, /metrics) share; a burst of explains of one unchanged job costs
one diagnosis; beyond the backlog callers get DiagnosisBusy (a 503 with Retry-After), never a hang.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from ..exceptions import AuraMonitorError
from .explain import Diagnosis

# A diagnosis mostly sleeps (its 150 ms sample window) or waits on ffprobe (niced, and cached per unchanged
# file): 16 threads let a burst of 50 overlap its windows instead of queueing them 4 at a time, which is
# where a burst's seconds went (docs/diagnosis.md, "Explain under a burst").
WORKERS = 16
BACKLOG = 48  # runs admitted beyond the workers before callers are turned away
WAIT_S = 10.0  # the longest an explain caller waits for its diagnosis before a 503
CACHE_TTL_S = 3.0  # how long an unchanged job's diagnosis is reused
RETRY_AFTER_S = 2
_CACHE_MAX = 4096


class DiagnosisBusy(AuraMonitorError):
    """Too many diagnoses queued or running: answer 503 with Retry-After."""

    def __init__(self, message: str, retry_after: int = RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class _Cached:
    key: Hashable
    expires: float
    diagnosis: Diagnosis


class DiagnosisRunner:
    """Runs `diagnose(job_id)` on its own bounded executor, sharing in-flight runs and recent results."""

    def __init__(
        self,
        diagnose: Callable[[str], Diagnosis],
        registry: CollectorRegistry | None = None,
        workers: int = WORKERS,
        backlog: int = BACKLOG,
        ttl: float = CACHE_TTL_S,
    ) -> None:
        self._diagnose = diagnose
        self.capacity = workers + backlog
        self.ttl = ttl
        self._workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aura-diagnose")
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[Diagnosis]] = {}
        self._cache: dict[str, _Cached] = {}
        self.runs = 0
        self.diagnoses = Counter(
            "aura_diagnoses_total",
            "Diagnoses actually run (a cached or shared explain runs none), by trigger",
            ["trigger"],
            registry=registry,
        )
        self.requests = Counter(
            "aura_explain_requests_total",
            "Diagnosis requests by how they were answered: diagnosed, cached, shared (joined a running one), busy",
            ["result"],
            registry=registry,
        )
        for trigger in ("explain", "stall"):
            self.diagnoses.labels(trigger)
        for result in ("diagnosed", "cached", "shared", "busy"):
            self.requests.labels(result)

    def submit(self, job_id: str, key: Hashable, trigger: str = "explain") -> Future[Diagnosis]:
        """A future for `job_id`'s diagnosis: a cached one while `key` is unchanged, else a shared run.

        Never blocks; raises DiagnosisBusy when `capacity` runs are already queued or running.
        """
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(job_id)
            if cached is not None and cached.key == key and now < cached.expires:
                self.requests.labels("cached").inc()
                done: Future[Diagnosis] = Future()
                done.set_result(cached.diagnosis)
                return done
            running = self._inflight.get(job_id)
            if running is not None:
                self.requests.labels("shared").inc()
                return running
            if len(self._inflight) >= self.capacity:
                self.requests.labels("busy").inc()
                raise DiagnosisBusy(
                    f"{len(self._inflight)} diagnoses are already queued or running (the limit is "
                    f"{self.capacity}); retry in {RETRY_AFTER_S} s, or look at fewer jobs at once"
                )
            self.requests.labels("diagnosed").inc()
            future = self._executor.submit(self._run, job_id, key, trigger)
            self._inflight[job_id] = future
            return future

    def _run(self, job_id: str, key: Hashable, trigger: str) -> Diagnosis:
        try:
            diagnosis = self._diagnose(job_id)
            with self._lock:
                self.runs += 1
                if len(self._cache) >= _CACHE_MAX:
                    now = time.monotonic()
                    self._cache = {k: v for k, v in self._cache.items() if v.expires > now}
                self._cache[job_id] = _Cached(key, time.monotonic() + self.ttl, diagnosis)
            self.diagnoses.labels(trigger).inc()
            return diagnosis
        finally:
            with self._lock:
                self._inflight.pop(job_id, None)

    def busy(self) -> int:
        """Diagnoses queued or running now."""
        with self._lock:
            return len(self._inflight)

    def shutdown(self) -> None:
        """Drop queued runs (running ones end within their own deadlines); a later submit gets a new pool."""
        with self._lock:
            old, self._executor = self._executor, ThreadPoolExecutor(self._workers, thread_name_prefix="aura-diagnose")
            self._inflight.clear()
        old.shutdown(wait=False, cancel_futures=True)

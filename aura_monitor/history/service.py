"""The history's moving part: a bounded queue fed by the recorder and one writer thread that owns the database."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from ..clock import Clock
from ..config import Settings
from ..jobs.tracker import Tracker
from ..ratelog import RateLimitedLog
from .ops import Op
from .recorder import HistoryRecorder, resolution_for
from .store import HistoryStore, Resolution, StoreCorrupt, StoreUnavailable
from .url import open_store

log = logging.getLogger(__name__)

BATCH = 500  # operations written per transaction
BACKOFF_FIRST_S = 0.25
BACKOFF_CAP_S = 30.0
RETENTION_EVERY_S = 3600.0
LOSS_SHOWN_S = 3600.0  # /readyz says the history lost operations for this long after the last drop


class History:
    """Records runs, stages and incidents; watching, detection and the API never wait for its database."""

    def __init__(
        self,
        settings: Settings,
        tracker: Tracker,
        clock: Clock,
        registry: CollectorRegistry,
        *,
        scanned: Callable[[], bool],
        store: HistoryStore | None = None,
    ) -> None:
        self.settings = settings
        self.tracker = tracker
        self.clock = clock
        self.scanned = scanned  # true once the initial scan is done: only then are open incidents reconciled
        self.store = store or open_store(settings)
        self.node = settings.node
        self.retention = settings.history_retention
        self._queue: queue.Queue[Op] = queue.Queue(maxsize=settings.history_queue)
        self.write_errors = Counter(
            "aura_history_write_errors",
            "History writes that failed (database locked, corrupt, full)",
            registry=registry,
        )
        self.dropped = Counter(
            "aura_history_dropped", "History operations dropped because the writer's queue was full", registry=registry
        )
        self.incidents_total = Counter(
            "aura_incidents", "Incidents (stalls) opened, by first verdict and stage", ["verdict", "stage"],
            registry=registry,
        )  # fmt: skip
        Gauge("aura_history_queue", "History operations waiting for the writer", registry=registry).set_function(
            self._queue.qsize
        )
        self.recorder = HistoryRecorder(tracker, self.node, self._put, self._count_incident)
        self._log = RateLimitedLog(log, burst=3, interval=60.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None  # the last failure while the database is unavailable, else None
        self.lost = 0  # operations dropped since the sidecar started (said in /readyz for LOSS_SHOWN_S)
        self._last_drop = 0.0
        self.reconciles = 0  # passes over the incidents left open (the first once the initial scan is read)
        self._next_reconcile = 0.0
        self.written = 0

    # -- the hot side (tracker lock held) --------------------------------------------------------
    def observe(self, batch: Any) -> None:
        self.recorder.observe(batch)

    def _put(self, op: Op) -> None:
        try:
            self._queue.put_nowait(op)
        except queue.Full:
            self.dropped.inc()
            self.lost += 1
            self._last_drop = time.monotonic()

    def _count_incident(self, verdict: str, stage: str) -> None:
        self.incidents_total.labels(verdict, stage).inc()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="aura-history", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.store.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def degraded_reasons(self) -> list[str]:
        """Why the history is not being kept right now, for /readyz (degraded, still 200)."""
        reasons = []
        if self.error is not None:
            reasons.append(
                f"history database unavailable ({self.error}); watching and detection go on, writes are retried"
                f" with backoff: {self._queue.qsize()} waiting, {self.lost} dropped so far"
            )
        elif self.lost and time.monotonic() - self._last_drop < LOSS_SHOWN_S:
            reasons.append(
                f"history lost {self.lost} operations while its queue was full (the database was slow or down);"
                " those runs, stages or verdicts are missing from /api/incidents and /api/stats (said for an hour"
                " after the last loss; aura_history_dropped_total keeps the count)"
            )
        if self._thread is not None and not self._thread.is_alive():
            reasons.append("history writer thread died; restart the sidecar and report the log above")
        return reasons

    # -- the writer thread -------------------------------------------------------------------------
    def _run(self) -> None:
        pending: list[Op] = []
        backoff = BACKOFF_FIRST_S
        next_prune = 0.0
        while not self._stop.is_set():
            if not pending:
                pending = self._take()
            try:
                if time.monotonic() >= self._next_reconcile and self.scanned():
                    self._reconcile()
                if pending:
                    self.store.apply(pending)
                    self.written += len(pending)
                    pending = []
                if time.monotonic() >= next_prune:
                    self._prune()
                    next_prune = time.monotonic() + RETENTION_EVERY_S
            except StoreUnavailable as exc:
                self._failed(exc)
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, BACKOFF_CAP_S)
                continue
            if self.error is not None:
                log.warning("history database %s is writable again; %d operations were dropped meanwhile",
                            self.store.description, self.lost)  # fmt: skip
                self.error = None
            backoff = BACKOFF_FIRST_S
        self._flush(pending)

    def _flush(self, pending: list[Op]) -> None:
        """At shutdown: one last try for what is still queued (a clean stop loses nothing when the DB is fine)."""
        while batch := self._take(wait=False):
            pending.extend(batch)
        if not pending:
            return
        try:
            self.store.apply(pending)
            self.written += len(pending)
        except StoreUnavailable as exc:
            log.warning("history: %d operations not written at shutdown: %s", len(pending), exc)

    def _take(self, wait: bool = True) -> list[Op]:
        try:
            ops = [self._queue.get(timeout=0.2) if wait else self._queue.get_nowait()]
        except queue.Empty:
            return []
        while len(ops) < BATCH:
            try:
                ops.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return ops

    def _failed(self, exc: StoreUnavailable) -> None:
        self.write_errors.inc()
        self.error = str(exc)
        if isinstance(exc, StoreCorrupt):
            aside = self.store.move_aside()
            log.error(
                "%s; moved it aside to %s and starting a fresh history (the old incidents are in that file)",
                exc, aside or "(could not rename it: remove it by hand)",
            )  # fmt: skip
            return
        if self._log.allow("history-write"):
            log.warning("%s; watching and detection go on, history writes are queued and retried (%s)", exc,
                        self.store.outage_hint)  # fmt: skip

    def _reconcile(self) -> None:
        """Open incidents from before a restart: those whose job is still stalled go on, the others end now."""
        now = self.clock.now()
        for incident in self.store.open_incidents(self.node):
            state = self.tracker.get(incident["jobId"])
            record = state.record if state is not None else None
            if state is None or record is None:
                continue  # the job's record is gone: nothing says how it ended, so the incident stays open
            if record.attempt != incident["attempt"]:
                resolution = Resolution.RETRIED
            elif state.stalled and not record.status.terminal:
                continue  # still stalled: the STALLED transition of the scan continues it
            else:
                resolution = resolution_for(record.status)
            self.store.close_incident(incident["id"], now, resolution)
            log.info("incident %s of job %s ended while the sidecar was down: %s", incident["id"], incident["jobId"],
                     resolution.value)  # fmt: skip
        self.reconciles += 1
        # Again after two rescans (a job the first pass did not know yet is read by then), then hourly: an
        # incident open in the file whose job is known and not stalled is always one whose end was missed.
        later = 2 * self.settings.rescan_interval if self.reconciles == 1 else RETENTION_EVERY_S
        self._next_reconcile = time.monotonic() + later

    def _prune(self) -> None:
        removed = self.store.prune(self.clock.now() - self.retention)
        if removed:
            log.info("history retention: removed %d rows older than %.0f days", removed, self.retention / 86400)

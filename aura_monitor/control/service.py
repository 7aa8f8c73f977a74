"""Retry and cancel: state checks, the retry policy, persisted history, delivery, and the retries counter."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from ..clock import Clock
from ..config import Settings
from ..exceptions import BackoffActive, ControlError, JobNotFound, NotCancellable, NotRetryable, ReporterError
from ..jobs.model import JobRecord, JobStatus, RecordFormat, validate_job_id
from ..jobs.tracker import Tracker
from ..records.requests import ControlAction
from ..records.timestamps import format_iso
from .channel import Channel, ControlUnavailable, RequestFileChannel, UpstreamChannel
from .policy import RetryPolicy, decide_retry
from .store import RetryEntry, RetryStore

RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class Accepted:
    """A delivered retry or cancel: the 202 body."""

    job_id: str
    action: ControlAction
    request_id: str | None
    channel: str
    requested_at: float
    detail: str
    attempt: int | None = None
    retries_remaining: int | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "jobId": self.job_id,
            "action": self.action.value,
            "status": "accepted",
            "requestId": self.request_id,
            "channel": self.channel,
            "requestedAt": format_iso(self.requested_at),
            "detail": self.detail,
        }
        if self.action is ControlAction.RETRY:
            body.update(attempt=self.attempt, retriesRemaining=self.retries_remaining)
        return body


class ControlService:
    """One lock per job around check, policy, history and delivery: concurrent retries accept exactly one."""

    def __init__(
        self,
        tracker: Tracker,
        settings: Settings,
        clock: Clock,
        registry: CollectorRegistry,
        upstream: Channel | None = None,
    ) -> None:
        self.tracker = tracker
        self.clock = clock
        self.policy = RetryPolicy.from_settings(settings)
        jobs_dir = settings.jobs_dir.absolute()
        self.store = RetryStore(jobs_dir, settings.state_dir)
        self.files = RequestFileChannel(jobs_dir, clock)
        if upstream is None and settings.upstream:
            upstream = UpstreamChannel(settings.upstream, settings.upstream_timeout)
        self.upstream = upstream
        self.retries = Counter(
            "aura_job_retries_total", "Retry requests answered, by result", ["result"], registry=registry
        )
        for result in ("accepted", "refused"):
            self.retries.labels(result)
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def _lock(self, job_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(job_id, threading.Lock())

    def _record(self, job_id: str) -> JobRecord:
        validate_job_id(job_id)
        state = self.tracker.get(job_id)
        record = state.record if state is not None else None
        if record is None:
            raise JobNotFound(f"no job {job_id!r} with a readable record")
        return record

    def _channel(self, record: JobRecord, action: ControlAction) -> Channel:
        if record.format is RecordFormat.NATIVE:
            return self.files
        if self.upstream is not None:
            return self.upstream
        refused = NotRetryable if action is ControlAction.RETRY else NotCancellable
        raise refused(
            f"job {record.id} is run by Aura Video Studio, which reads no request files: start the sidecar with "
            f"--upstream http://127.0.0.1:5005 (Aura's API) to forward {action.value} requests"
        )

    def retry(self, job_id: str) -> Accepted:
        """Ask for a new attempt of a failed or cancelled job, within the retry policy."""
        with self._lock(job_id):
            record = self._record(job_id)
            try:
                with self.store.locked(job_id):
                    accepted = self._retry(job_id, record)
            except (ControlError, JobNotFound):
                self.retries.labels("refused").inc()
                raise
            self.retries.labels("accepted").inc()
            return accepted

    def _retry(self, job_id: str, record: JobRecord) -> Accepted:
        if record.status not in RETRYABLE:
            raise NotRetryable(f"job {job_id} is {record.status.value}: only failed or cancelled jobs can be retried")
        channel = self._channel(record, ControlAction.RETRY)
        now = self.clock.now()
        history = self.store.load(job_id)
        decision = decide_retry([entry.at for entry in history], now, self.policy)
        if not decision.allowed:
            raise BackoffActive(
                f"retry of job {job_id} refused: {decision.reason}", decision.retry_after, decision.retries_remaining
            )
        # Recorded before delivery, and taken back if delivery fails: a crash in between errs on the
        # side of a longer backoff, never of an extra retry.
        entry = RetryEntry(now, uuid.uuid4().hex, record.attempt + 1, channel.name)
        self._save(job_id, [*history, entry])
        try:
            receipt = channel.send(job_id, ControlAction.RETRY)
        except BaseException:
            self._save(job_id, history)
            raise
        return Accepted(
            job_id=job_id,
            action=ControlAction.RETRY,
            request_id=receipt.request_id or entry.request_id,
            channel=receipt.channel,
            requested_at=now,
            detail=receipt.detail,
            attempt=entry.attempt,
            retries_remaining=decision.retries_remaining,
        )

    def _save(self, job_id: str, entries: list[RetryEntry]) -> None:
        try:
            self.store.save(job_id, entries)
        except (ReporterError, OSError) as exc:
            raise ControlUnavailable(f"cannot record the retry of job {job_id}: {exc}") from None

    def cancel(self, job_id: str) -> Accepted:
        """Ask whoever runs a job that has not ended to stop it."""
        with self._lock(job_id):
            record = self._record(job_id)
            if record.status.terminal:
                raise NotCancellable(f"job {job_id} already ended {record.status.value}")
            channel = self._channel(record, ControlAction.CANCEL)
            now = self.clock.now()
            receipt = channel.send(job_id, ControlAction.CANCEL)
            return Accepted(job_id, ControlAction.CANCEL, receipt.request_id, receipt.channel, now, receipt.detail)

    def history(self, job_id: str) -> list[str]:
        """Accepted retries of a job, one line each (evidence for the diagnosis)."""
        return [entry.describe() for entry in self.store.load(job_id)]

"""JobReporter: the one writer of a native job.json, with coalesced progress and atomic writes."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..exceptions import InvalidJobId, RecordError, ReporterError
from ..jobs.model import JobStatus, validate_job_id
from ..jobs.stages import COMPLETE_STAGE, PIPELINE_STAGES, QUEUED_STAGE
from ..records import read_file
from ..records.atomic import describe_os_error, write_atomically
from ..records.layout import RECORD_NAME
from ..records.timestamps import format_iso
from .record import EncoderInfo, JobError, NativeRecord, ProgressSample, StageState, StageStatus, process_started_at

JOB_LOG_NAME = "job.log"
DEFAULT_WRITE_INTERVAL = 0.2


class JobReporter:
    """Writes one job's record: every change lands on disk atomically, progress at most every interval.

    A status or stage change is written at once; percent, stage percent, message and log lines are
    coalesced so a hot progress loop costs a dictionary update, and are flushed by the next write,
    `heartbeat()`, `flush()` or a terminal state (which is also fsynced).
    """

    def __init__(
        self,
        record: NativeRecord,
        job_dir: Path,
        *,
        clock: Clock,
        write_interval: float = DEFAULT_WRITE_INTERVAL,
    ) -> None:
        self._record = record
        self._job_dir = job_dir
        self._clock = clock
        self._write_interval = write_interval
        self._lock = threading.RLock()
        self._dirty = False
        self._last_write = float("-inf")

    @classmethod
    def create(
        cls,
        jobs_dir: Path,
        job_id: str,
        *,
        clock: Clock,
        priority: int = 5,
        request: Mapping[str, Any] | None = None,
        expected_duration_s: float | None = None,
        stages: Sequence[str] = PIPELINE_STAGES,
        write_interval: float = DEFAULT_WRITE_INTERVAL,
    ) -> JobReporter:
        """Create `<jobs dir>/<job id>/` and write the job's first record, `queued`."""
        validate_job_id(job_id)
        jobs_dir = jobs_dir.absolute()
        job_dir = jobs_dir / job_id
        try:
            jobs_dir.mkdir(parents=True, exist_ok=True)
            job_dir.mkdir()
        except FileExistsError:
            raise ReporterError(f"job {job_id} already exists in {jobs_dir}") from None
        except OSError as exc:
            raise ReporterError(f"cannot create the job directory {job_dir}: {describe_os_error(exc)}") from exc
        now = clock.now()
        record = NativeRecord(
            id=job_id,
            status=JobStatus.QUEUED,
            stage=QUEUED_STAGE,
            percent=0.0,
            priority=priority,
            created_at=now,
            queued_at=now,
            last_progress_at=now,
            expected_duration_s=expected_duration_s,
            log_path=str(job_dir / JOB_LOG_NAME),
            stages=[StageState(name) for name in stages],
            request=dict(request) if request is not None else None,
        )
        reporter = cls(record, job_dir, clock=clock, write_interval=write_interval)
        reporter._write()
        return reporter

    @classmethod
    def load(
        cls, jobs_dir: Path, job_id: str, *, clock: Clock, write_interval: float = DEFAULT_WRITE_INTERVAL
    ) -> JobReporter:
        """Take over the record an earlier writer left (a worker resuming or a retry re-queueing it)."""
        validate_job_id(job_id)
        job_dir = jobs_dir.absolute() / job_id
        path = job_dir / RECORD_NAME
        try:
            data, _ = read_file(str(path))
        except FileNotFoundError:
            raise ReporterError(f"no record for job {job_id}: {path} does not exist") from None
        except OSError as exc:
            raise ReporterError(f"cannot read {path}: {describe_os_error(exc)}") from exc
        except RecordError as exc:  # over the size limit
            raise ReporterError(f"cannot take over {path}: {exc}") from None
        try:
            decoded = json.loads(data)
        except ValueError as exc:
            raise ReporterError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(decoded, dict):
            raise ReporterError(f"{path} holds a JSON {type(decoded).__name__}, not a record")
        try:
            record = NativeRecord.from_json(decoded)
        except RecordError as exc:
            raise ReporterError(f"{path} is not a native record this reporter can continue: {exc}") from None
        if record.id != job_id:
            raise InvalidJobId(f"{path} belongs to job {record.id!r}, not {job_id!r}")
        return cls(record, job_dir, clock=clock, write_interval=write_interval)

    # -- reading -------------------------------------------------------------------------------------

    @property
    def job_id(self) -> str:
        return self._record.id

    @property
    def job_dir(self) -> Path:
        return self._job_dir

    @property
    def record_path(self) -> Path:
        return self._job_dir / RECORD_NAME

    @property
    def log_path(self) -> Path:
        return Path(self._record.log_path) if self._record.log_path else self._job_dir / JOB_LOG_NAME

    @property
    def status(self) -> JobStatus:
        return self._record.status

    @property
    def stage(self) -> str:
        return self._record.stage

    @property
    def percent(self) -> float:
        return self._record.percent

    @property
    def attempt(self) -> int:
        return self._record.attempt

    @property
    def revision(self) -> int:
        return self._record.revision

    @property
    def last_write_at(self) -> float:
        """Clock time of the last successful write (-inf before the first)."""
        return self._last_write

    @property
    def traceparent(self) -> str | None:
        return self._record.traceparent

    @property
    def request(self) -> dict[str, Any]:
        return dict(self._record.request or {})

    @property
    def expected_duration_s(self) -> float | None:
        return self._record.expected_duration_s

    def stage_status(self, name: str) -> StageStatus | None:
        stage = self._record.stage_state(name)
        return stage.status if stage else None

    def stage_artifacts(self, name: str) -> list[Path]:
        stage = self._record.stage_state(name)
        return [Path(artifact) for artifact in stage.artifacts] if stage else []

    def snapshot(self) -> dict[str, Any]:
        """The record as it would be written now (a copy)."""
        with self._lock:
            return self._record.to_json()

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self, *, worker_pid: int | None = None, host: str | None = None, traceparent: str | None = None) -> None:
        """The job is running in this process (or `worker_pid`)."""
        with self._lock:
            record = self._record
            now = self._clock.now()
            record.status = JobStatus.RUNNING
            record.started_at = now
            record.completed_at = None
            record.error = None
            record.set_worker(worker_pid if worker_pid is not None else os.getpid(), host)
            if traceparent is not None:
                record.traceparent = traceparent
            self._write()

    def update(
        self,
        *,
        percent: float | None = None,
        stage: str | None = None,
        stage_percent: float | None = None,
        message: str | None = None,
    ) -> None:
        """Report progress; written now when the stage changes, else at most once per write interval."""
        with self._lock:
            record = self._record
            bounded = round(min(100.0, max(0.0, percent)), 2) if percent is not None else None
            stage_changed = stage is not None and stage != record.stage
            progressed = stage_changed or (bounded is not None and bounded != record.percent)
            if stage is not None:
                record.stage = stage
            if bounded is not None:
                record.percent = bounded
            if stage_percent is not None:
                record.stage_percent = round(min(100.0, max(0.0, stage_percent)), 2)
            if message is not None:
                record.message = message
            self._dirty = True
            now = self._clock.now()
            if progressed:
                self._note_progress(now)
            if stage_changed or now - self._last_write >= self._write_interval:
                self._write()

    def heartbeat(self) -> None:
        """Prove the writer is alive (moves heartbeatAt, never lastProgressAt) and flush pending changes."""
        with self._lock:
            self._write()

    def flush(self) -> None:
        """Write coalesced changes that are not on disk yet."""
        with self._lock:
            if self._dirty:
                self._write()

    def log(self, message: str) -> None:
        """Append a line to the job log file and to the record's last-50 `logs`."""
        with self._lock:
            line = f"[{format_iso(self._clock.now())}] {message}"
            self._record.logs.append(line)
            try:
                with open(self.log_path, "a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
            except OSError as exc:
                raise ReporterError(f"cannot append to the job log {self.log_path}: {describe_os_error(exc)}") from exc
            self._dirty = True
            if self._clock.now() - self._last_write >= self._write_interval:
                self._write()

    # -- stages, encoder, output ---------------------------------------------------------------------

    def begin_stage(self, name: str, *, percent: float, message: str | None = None) -> None:
        """Mark a stage running and make it the current one."""
        with self._lock:
            state = self._stage(name)
            state.status = StageStatus.RUNNING
            state.started_at = self._clock.now()
            state.completed_at = None
            state.artifacts = []
            self.update(stage=name, percent=percent, stage_percent=0.0, message=message or f"{name} started")
            self.flush()

    def end_stage(self, name: str, status: StageStatus, artifacts: Iterable[str | Path] = ()) -> None:
        """Record how a stage ended and the artifacts a retry may reuse."""
        with self._lock:
            state = self._stage(name)
            state.status = status
            state.completed_at = self._clock.now() if status is not StageStatus.PENDING else None
            state.artifacts = [str(artifact) for artifact in artifacts]
            if status is StageStatus.COMPLETED:
                self._record.stage_percent = 100.0
            self._write()

    def skip_stage(self, name: str, reason: str) -> None:
        """Keep an earlier attempt's completed stage (its artifacts are reused) and say so in the log."""
        with self._lock:
            self.log(f"{name}: {reason}")
            self._write()

    def set_encoder(
        self,
        pid: int | None,
        *,
        progress_path: str | Path | None = None,
        log_path: str | Path | None = None,
        output_path: str | Path | None = None,
    ) -> None:
        """Point the record at the encoder child now running."""
        with self._lock:
            self._record.encoder = EncoderInfo(
                pid=pid,
                progress_path=str(progress_path) if progress_path else None,
                log_path=str(log_path) if log_path else None,
                output_path=str(output_path) if output_path else None,
                started_at=process_started_at(pid),
            )
            self._write()

    def set_output(self, path: str | Path) -> None:
        with self._lock:
            self._record.output_path = str(path)
            self._write()

    def set_extra(self, key: str, value: Any) -> None:
        """Add a writer-specific key (readers ignore unknown keys); written with the next write."""
        with self._lock:
            self._record.extra[key] = value
            self._dirty = True

    # -- terminal states and retry -------------------------------------------------------------------

    def complete(self, output_path: str | Path | None = None, message: str = "completed") -> None:
        """The job succeeded: status completed, percent 100, stage Complete; fsynced."""
        with self._lock:
            record = self._record
            if output_path is not None:
                record.output_path = str(output_path)
            record.status = JobStatus.COMPLETED
            record.percent = 100.0
            record.stage_percent = 100.0
            record.message = message
            self._end(stage=COMPLETE_STAGE)

    def fail(self, code: str, message: str, *, stage: str | None = None, stderr_tail: str | None = None) -> None:
        """The job failed: status failed with an error; fsynced."""
        with self._lock:
            record = self._record
            record.status = JobStatus.FAILED
            record.error = JobError(
                code=code, message=message[:500], stage=stage or record.stage, stderr_tail=stderr_tail
            )
            record.message = message[:200]
            self._end(stage=None)

    def cancel(self, message: str = "cancelled on request") -> None:
        """The job was cancelled: status cancelled; fsynced."""
        with self._lock:
            self._record.status = JobStatus.CANCELLED
            self._record.message = message
            self._end(stage=None)

    def requeue(self, reason: str = "retry requested") -> None:
        """Queue the job again as its next attempt, keeping completed stages and their artifacts."""
        with self._lock:
            record = self._record
            now = self._clock.now()
            record.attempt += 1
            record.status = JobStatus.QUEUED
            record.queued_at = now
            record.started_at = None
            record.completed_at = None
            record.error = None
            record.encoder = None
            record.message = f"{reason} (attempt {record.attempt})"
            record.stage = QUEUED_STAGE
            record.stage_percent = None
            self._note_progress(now)
            for state in record.stages:
                if state.status is not StageStatus.COMPLETED:
                    state.status = StageStatus.PENDING
                    state.started_at = None
                    state.completed_at = None
                    state.artifacts = []
            record.logs.append(f"[{format_iso(now)}] {record.message}")
            self._write(durable=True)

    def _end(self, stage: str | None) -> None:
        record = self._record
        now = self._clock.now()
        record.completed_at = now
        if stage is not None and stage != record.stage:
            record.stage = stage
            self._note_progress(now)
        elif record.status is JobStatus.COMPLETED:
            self._note_progress(now)
        self._write(durable=True)

    # -- internals -----------------------------------------------------------------------------------

    def _stage(self, name: str) -> StageState:
        state = self._record.stage_state(name)
        if state is None:
            state = StageState(name)
            self._record.stages.append(state)
        return state

    def _note_progress(self, now: float) -> None:
        record = self._record
        record.last_progress_at = now
        record.history.append(ProgressSample(at=now, percent=record.percent, stage=record.stage))

    def _write(self, *, durable: bool = False) -> None:
        record = self._record
        now = self._clock.now()
        record.updated_at = now
        record.heartbeat_at = now
        data = json.dumps(record.to_json(revision=record.revision + 1), separators=(",", ":")).encode()
        write_atomically(self.record_path, data, durable=durable)
        record.revision += 1
        self._dirty = False
        self._last_write = now

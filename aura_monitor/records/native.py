"""The native job record written by the reporter SDK (docs/job-record.md), schema `aura-monitor/job@1`."""

from __future__ import annotations

import os
import socket

from ..exceptions import RecordError
from ..jobs.model import JobRecord, JobStatus, ProcessHome, ProgressPoint, RecordFormat, StageRecord
from .fields import Fields

SCHEMA = "aura-monitor/job@1"
SUPPORTED_SCHEMAS = frozenset({SCHEMA})
LOG_TAIL = 20
HISTORY_TAIL = 20


def _read_link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:  # not Linux, or /proc not mounted
        return None


def _read_line(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.readline().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def this_home() -> ProcessHome:
    """The home of this process's pids (read each time: a forked child may live in a new PID namespace)."""
    return ProcessHome(
        host=socket.gethostname(),
        boot_id=_read_line("/proc/sys/kernel/random/boot_id"),
        pid_namespace=_read_link("/proc/self/ns/pid"),
    )


def is_native(data: dict[str, object]) -> bool:
    return "schema" in data


def _stages(f: Fields) -> tuple[StageRecord, ...]:
    stages = []
    for i, raw in enumerate(f.items("stages")):
        s = Fields(raw, f"record.stages[{i}]", f.notes)
        name = s.text("name")
        if not name:
            raise RecordError(f"record.stages[{i}].name is missing")
        stages.append(
            StageRecord(
                name=name,
                status=s.text("status") or "pending",
                started_at=s.time("startedAt"),
                completed_at=s.time("completedAt"),
                artifacts=tuple(s.strings("artifacts")),
            )
        )
    return tuple(stages)


def _history(f: Fields) -> tuple[ProgressPoint, ...]:
    points = []
    for i, raw in enumerate(f.items("history")[-HISTORY_TAIL:]):
        p = Fields(raw, f"record.history[{i}]", f.notes)
        at, percent = p.time("at"), p.percent("percent")
        if at is not None and percent is not None:
            points.append(ProgressPoint(at=at, percent=percent, stage=p.text("stage") or ""))
    return tuple(points)


def parse_native(data: dict[str, object]) -> JobRecord:
    f = Fields(data)
    schema = f.text("schema")
    if schema not in SUPPORTED_SCHEMAS:
        raise RecordError(f"record.schema is {schema!r}; this aura-monitor reads {sorted(SUPPORTED_SCHEMAS)}")
    job_id = f.text("id")
    if not job_id:
        raise RecordError("record.id is missing or empty")
    raw_status = f.text("status")
    try:
        status = JobStatus(raw_status or "")
    except ValueError:
        raise RecordError(f"record.status is {raw_status!r}, expected one of {[s.value for s in JobStatus]}") from None
    percent = f.number("percent")
    if percent is None or not 0 <= percent <= 100:
        raise RecordError(f"record.percent is {percent!r}, expected a number from 0 to 100")
    worker = f.obj("worker")
    encoder = f.obj("encoder")
    error = f.obj("error")
    notes = []
    if status is JobStatus.COMPLETED and percent < 100:
        notes.append(f"status=completed but percent={percent:g}")
    if status is JobStatus.FAILED and error is None:
        notes.append("status=failed but no error is recorded")
    # Read before the record is built: they add to f.notes what they ignore as nonsense.
    worker_pid = worker.pid("pid") if worker else None
    encoder_pid = encoder.pid("pid") if encoder else None
    home = (
        ProcessHome(host=worker.text("host"), boot_id=worker.text("bootId"), pid_namespace=worker.text("pidNamespace"))
        if worker
        else None
    )
    stage_percent = f.percent("stagePercent")
    expected = f.number("expectedDurationSeconds")
    if expected is not None and expected < 0:
        f.notes.append(f"record.expectedDurationSeconds is {expected:g}, a negative duration; ignored")
        expected = None
    history, stages = _history(f), _stages(f)
    return JobRecord(
        id=job_id,
        format=RecordFormat.NATIVE,
        status=status,
        stage=f.text("stage") or "",
        percent=percent,
        raw_status=raw_status or "",
        stage_percent=stage_percent,
        message=f.text("message"),
        created_at=f.time("createdAt"),
        queued_at=f.time("queuedAt"),
        started_at=f.time("startedAt"),
        completed_at=f.time("completedAt"),
        updated_at=f.time("updatedAt"),
        heartbeat_at=f.time("heartbeatAt"),
        last_progress_at=f.time("lastProgressAt"),
        revision=f.integer("revision"),
        priority=f.integer("priority"),
        attempt=f.integer("attempt") or 1,
        output_path=f.text("outputPath"),
        error_message=error.text("message") if error else None,
        error_code=error.text("code") if error else None,
        failure_stage=error.text("stage") if error else None,
        stderr_snippet=error.text("stderrTail") if error else None,
        expected_duration_s=expected,
        worker_pid=worker_pid,
        encoder_pid=encoder_pid,
        worker_home=home,
        worker_started_at=worker.time("startedAt") if worker else None,
        encoder_started_at=encoder.time("startedAt") if encoder else None,
        progress_file=encoder.text("progressPath") if encoder else None,
        encoder_log=encoder.text("logPath") if encoder else None,
        encoder_output=encoder.text("outputPath") if encoder else None,
        job_log=f.text("logPath"),
        traceparent=f.text("traceparent"),
        inconsistencies=(*notes, *f.notes),
        logs_tail=tuple(f.strings("logs")[-LOG_TAIL:]),
        history=history,
        stages=stages,
    )

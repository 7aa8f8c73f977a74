"""The queue is the jobs dir: queued native records, by priority then age; an O_EXCL file claims one."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..clock import Clock
from ..exceptions import RecordError
from ..jobs.model import JobRecord, JobStatus, RecordFormat
from ..records import read_record
from ..records.timestamps import format_iso
from ..reporter import RECORD_NAME
from .workspace import JobWorkspace

DEFAULT_PRIORITY = 5
# A claim file left empty by a process that died between create and write is stale after this long.
EMPTY_CLAIM_GRACE_S = 10.0


@dataclass(frozen=True, slots=True, order=True)
class QueuedJob:
    """A queued job's place in line: lower priority number first, then older first."""

    priority: int
    created_at: float
    job_id: str


def native_records(jobs_dir: Path) -> list[JobRecord]:
    """Every readable native record in the jobs dir (half-written or foreign ones are skipped)."""
    try:
        job_dirs = sorted(path for path in jobs_dir.iterdir() if path.is_dir())
    except FileNotFoundError:
        return []
    records = []
    for job_dir in job_dirs:
        try:
            record = read_record(str(job_dir / RECORD_NAME))
        except RecordError:
            continue
        if record.format is RecordFormat.NATIVE and record.id == job_dir.name:
            records.append(record)
    return records


def queued_jobs(records: list[JobRecord]) -> list[QueuedJob]:
    """The queued jobs among `records`, in the order a worker takes them."""
    return sorted(
        QueuedJob(
            priority=record.priority if record.priority is not None else DEFAULT_PRIORITY,
            created_at=record.created_at or record.queued_at or 0.0,
            job_id=record.id,
        )
        for record in records
        if record.status is JobStatus.QUEUED
    )


def process_alive(pid: int | None) -> bool:
    """Whether `pid` names a live (not zombie) process on this host."""
    if pid is None or pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


@dataclass(frozen=True, slots=True)
class Claim:
    """Proof that this process may run a job: the claim file holds our token."""

    path: Path
    token: str

    def held(self) -> bool:
        return claim_token(self.path) == self.token

    def release(self) -> None:
        if self.held():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def claim_token(path: Path) -> str | None:
    holder = _holder(path)
    token = holder.get("token") if holder else None
    return token if isinstance(token, str) else None


def _holder(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_bytes() or b"null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def claim_job(workspace: JobWorkspace, *, owner_pid: int, clock: Clock) -> Claim | None:
    """Create the job's claim file with O_EXCL; None when another live process holds it."""
    path = workspace.claim
    token = secrets.token_hex(16)
    body = {"token": token, "pid": owner_pid, "host": socket.gethostname(), "claimedAt": format_iso(clock.now())}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            if not _break_if_stale(path, clock):
                return None
            continue
        except FileNotFoundError:
            return None  # the job directory is gone
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(body, fh)
        return Claim(path, token)
    return None


def _stale(holder: dict[str, object] | None, path: Path, clock: Clock) -> bool:
    if holder is None:
        try:
            return clock.now() - path.stat().st_mtime > EMPTY_CLAIM_GRACE_S
        except FileNotFoundError:
            return True
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname():
        return False  # another host's process: nothing here can tell whether it lives
    return not process_alive(pid if isinstance(pid, int) else None)


def _break_if_stale(path: Path, clock: Clock) -> bool:
    """Remove a claim whose owner died; True when the caller may try to claim again."""
    holder = _holder(path)
    if not _stale(holder, path, clock):
        return False
    # Move it aside first and check we moved the stale one, not a fresh claim made meanwhile.
    aside = path.with_name(f"{path.name}.{secrets.token_hex(4)}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True
    if _holder(aside) != holder:
        with contextlib.suppress(OSError):
            os.link(aside, path)  # put the fresh claim back (fails only if yet another one exists)
        with contextlib.suppress(OSError):
            aside.unlink()
        return False
    with contextlib.suppress(OSError):
        aside.unlink()
    return True

"""Retry history on disk, one small JSON file per job, so backoff and limits survive sidecar restarts."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..records.timestamps import format_iso, parse_iso
from ..reporter.atomic import write_atomically
from .channel import ControlUnavailable

log = logging.getLogger(__name__)

SCHEMA = "aura-monitor/retries@1"
KEPT = 100  # entries kept per job; the policy only ever looks at the last few


@dataclass(frozen=True, slots=True)
class RetryEntry:
    """One accepted retry: when, the request's id, the attempt it asked for, and how it was delivered."""

    at: float
    request_id: str
    attempt: int | None
    channel: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": format_iso(self.at),
            "requestId": self.request_id,
            "attempt": self.attempt,
            "channel": self.channel,
        }

    @classmethod
    def from_json(cls, raw: Any) -> RetryEntry | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("at"), str):
            return None
        try:
            at = parse_iso(raw["at"])
        except ValueError:
            return None
        attempt = raw.get("attempt")
        return cls(
            at=at,
            request_id=str(raw.get("requestId") or ""),
            attempt=attempt if isinstance(attempt, int) else None,
            channel=str(raw.get("channel") or ""),
        )

    def describe(self) -> str:
        attempt = f" (attempt {self.attempt})" if self.attempt is not None else ""
        return f"{format_iso(self.at)} retry accepted via {self.channel}{attempt}"


class RetryStore:
    """`<jobs dir>/<id>/monitor/retries.json`, or `<state dir>/<id>/retries.json` when a state dir is set."""

    def __init__(self, jobs_dir: Path, state_dir: Path | None = None) -> None:
        self.jobs_dir = jobs_dir
        self.state_dir = state_dir

    def path_of(self, job_id: str) -> Path:
        if self.state_dir is not None:
            return self.state_dir / job_id / "retries.json"
        return self.jobs_dir / job_id / "monitor" / "retries.json"

    @contextmanager
    def locked(self, job_id: str) -> Iterator[None]:
        """Hold the job's retry lock across processes (two sidecars on one jobs dir accept one retry).

        An flock on `retries.lock` beside the history: released by the kernel if the holder dies.
        """
        folder = self.path_of(job_id).parent
        try:
            # Under the jobs dir, never recreate a job dir that is gone.
            folder.mkdir(parents=self.state_dir is not None, exist_ok=True)
            fd = os.open(folder / "retries.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ControlUnavailable(f"cannot lock the retry history of job {job_id} in {folder}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def load(self, job_id: str) -> list[RetryEntry]:
        """The job's accepted retries, oldest first; none when the file is absent."""
        path = self.path_of(job_id)
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            # Written atomically by us, so this is outside interference: say so, do not guess.
            log.warning("retry history %s is unreadable (%s); treating it as empty", path, exc)
            return []
        items = raw.get("retries") if isinstance(raw, dict) else None
        entries = [entry for item in items or [] if (entry := RetryEntry.from_json(item)) is not None]
        return sorted(entries, key=lambda e: e.at)

    def save(self, job_id: str, entries: list[RetryEntry]) -> None:
        """Persist the job's accepted retries atomically (raises ReporterError when the disk refuses)."""
        path = self.path_of(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"schema": SCHEMA, "jobId": job_id, "retries": [e.to_json() for e in entries[-KEPT:]]}
        write_atomically(path, json.dumps(body, indent=2).encode(), durable=True)

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

from ..exceptions import UnsafePath
from ..records.timestamps import format_iso, parse_iso
from .channel import ControlUnavailable
from .nofollow import open_file, opened_dir, replace_file

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
    def _folder(self, job_id: str, *, create: bool = True) -> Iterator[int]:
        """The history's dir, opened without following a link at any level below the jobs or state dir."""
        if self.state_dir is not None:
            if create:
                self.state_dir.mkdir(parents=True, exist_ok=True)  # the operator's dir: may be a link
            with opened_dir(self.state_dir, [(job_id, create)]) as fd:
                yield fd
        else:
            # Under the jobs dir, never recreate a job dir that is gone.
            with opened_dir(self.jobs_dir, [(job_id, False), ("monitor", create)]) as fd:
                yield fd

    @contextmanager
    def locked(self, job_id: str) -> Iterator[None]:
        """Hold the job's retry lock across processes (two sidecars on one jobs dir accept one retry).

        An flock on `retries.lock` beside the history: released by the kernel if the holder dies.
        """
        shown = self.path_of(job_id).with_name("retries.lock")
        try:
            with self._folder(job_id) as folder:
                fd = open_file(folder, "retries.lock", shown, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise ControlUnavailable(f"cannot lock the retry history of job {job_id} at {shown}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def load(self, job_id: str) -> list[RetryEntry]:
        """The job's accepted retries, oldest first; none when the file is absent (or a link: save refuses)."""
        path = self.path_of(job_id)
        try:
            with self._folder(job_id, create=False) as folder:
                fd = open_file(folder, "retries.json", path, os.O_RDONLY | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as fh:
                raw = json.loads(fh.read(1024 * 1024))
        except FileNotFoundError:
            return []
        except UnsafePath as exc:
            log.warning("%s; treating the retry history as empty", exc)
            return []
        except (OSError, ValueError) as exc:
            # Written atomically by us, so this is outside interference: say so, do not guess.
            log.warning("retry history %s is unreadable (%s); treating it as empty", path, exc)
            return []
        items = raw.get("retries") if isinstance(raw, dict) else None
        entries = [entry for item in items or [] if (entry := RetryEntry.from_json(item)) is not None]
        return sorted(entries, key=lambda e: e.at)

    def save(self, job_id: str, entries: list[RetryEntry]) -> None:
        """Persist the job's accepted retries atomically (OSError when the disk refuses, UnsafePath on a link)."""
        body = {"schema": SCHEMA, "jobId": job_id, "retries": [e.to_json() for e in entries[-KEPT:]]}
        with self._folder(job_id) as folder:
            replace_file(
                folder, "retries.json", json.dumps(body, indent=2).encode(), self.path_of(job_id), durable=True
            )

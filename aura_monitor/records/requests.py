"""Control requests: `<job dir>/requests/<action>.json` files the sidecar writes and a worker honours."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ..clock import Clock
from .atomic import write_atomically
from .layout import REQUESTS_DIR
from .timestamps import format_iso, parse_iso


class ControlAction(StrEnum):
    """What the sidecar may ask a native worker to do."""

    CANCEL = "cancel"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """One pending request; a file that cannot be parsed still counts (its presence is the request)."""

    action: ControlAction
    path: Path
    request_id: str | None = None
    requested_at: float | None = None
    by: str | None = None


def request_path(job_dir: Path, action: ControlAction) -> Path:
    return job_dir / REQUESTS_DIR / f"{action.value}.json"


def request_body(action: ControlAction, request_id: str, now: float, by: str) -> bytes:
    """The bytes of a request file (docs/job-record.md), as every writer of one writes them."""
    return json.dumps(
        {"action": action.value, "requestId": request_id, "requestedAt": format_iso(now), "by": by}
    ).encode()


def write_request(job_dir: Path, action: ControlAction, *, clock: Clock, by: str = "aura-monitor") -> ControlRequest:
    """Ask for `action` on the job in `job_dir`, atomically (the pipeline's own writer; the sidecar's refuses links)."""
    path = request_path(job_dir, action)
    path.parent.mkdir(exist_ok=True)
    now = clock.now()
    request_id = uuid.uuid4().hex
    write_atomically(path, request_body(action, request_id, now, by))
    return ControlRequest(action=action, path=path, request_id=request_id, requested_at=now, by=by)


def read_request(job_dir: Path, action: ControlAction) -> ControlRequest | None:
    """The pending request for `action`, or None."""
    path = request_path(job_dir, action)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(64 * 1024)
    except FileNotFoundError:
        return None
    except OSError:
        return ControlRequest(action=action, path=path)
    try:
        body = json.loads(raw)
    except ValueError:
        return ControlRequest(action=action, path=path)
    if not isinstance(body, dict):
        return ControlRequest(action=action, path=path)
    requested_at: float | None
    try:
        requested_at = parse_iso(str(body["requestedAt"])) if body.get("requestedAt") else None
    except ValueError:
        requested_at = None
    request_id, by = body.get("requestId"), body.get("by")
    return ControlRequest(
        action=action,
        path=path,
        request_id=request_id if isinstance(request_id, str) else None,
        requested_at=requested_at,
        by=by if isinstance(by, str) else None,
    )


def acknowledge(request: ControlRequest) -> None:
    """Delete an honoured (or refused) request so it is not acted on twice."""
    with contextlib.suppress(FileNotFoundError):
        request.path.unlink()


def request_age(request: ControlRequest, clock: Clock) -> float:
    """Seconds since the request was made (by its own stamp, else the file's mtime)."""
    if request.requested_at is not None:
        return clock.now() - request.requested_at
    try:
        return clock.now() - os.stat(request.path).st_mtime
    except OSError:
        return 0.0


class CancelWatch:
    """Answers "was this job asked to stop?" cheaply: one stat at most every `interval` seconds."""

    def __init__(self, job_dir: Path, *, clock: Clock, interval: float = 0.1) -> None:
        self._path = request_path(job_dir, ControlAction.CANCEL)
        self._job_dir = job_dir
        self._clock = clock
        self._interval = interval
        self._checked_at = float("-inf")
        self._requested = False
        self._interrupted: str | None = None

    def interrupt(self, reason: str) -> None:
        """Stop the job for a reason of this process's own (a signal), not a request."""
        self._interrupted = reason

    @property
    def interruption(self) -> str | None:
        return self._interrupted

    def requested(self) -> bool:
        if self._requested:
            return True
        now = self._clock.now()
        if now - self._checked_at >= self._interval:
            self._checked_at = now
            self._requested = self._path.exists()
        return self._requested

    def pending(self) -> ControlRequest | None:
        return read_request(self._job_dir, ControlAction.CANCEL)

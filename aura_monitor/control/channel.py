"""How a retry or cancel reaches whoever runs the job: a request file, or the upstream Aura API."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from ..clock import Clock
from ..exceptions import ControlError, JobNotFound, NotCancellable, NotRetryable
from ..records.layout import REQUESTS_DIR
from ..records.requests import ControlAction, request_body
from .nofollow import opened_dir, replace_file


class ControlUnavailable(ControlError):
    """The request could not be delivered (upstream unreachable or failing, request file not writable)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivered request: by which channel, under which id, and what the other side said."""

    channel: str
    request_id: str | None
    detail: str


class Channel(Protocol):
    name: str

    def send(self, job_id: str, action: ControlAction) -> Receipt: ...


class RequestFileChannel:
    """Writes `<job dir>/requests/<action>.json` (docs/job-record.md), which the reference worker honours."""

    name = "request-file"

    def __init__(self, jobs_dir: Path, clock: Clock) -> None:
        self.jobs_dir = jobs_dir
        self.clock = clock

    def send(self, job_id: str, action: ControlAction) -> Receipt:
        request_id = uuid.uuid4().hex
        name = f"{action.value}.json"
        body = request_body(action, request_id, self.clock.now(), "aura-monitor sidecar")
        try:
            # Never through a link: the job dir and its requests dir are opened without following one.
            with opened_dir(self.jobs_dir, [(job_id, False), (REQUESTS_DIR, True)]) as folder:
                replace_file(folder, name, body, self.jobs_dir / job_id / REQUESTS_DIR / name)
        except OSError as exc:
            raise ControlUnavailable(f"cannot write the {action.value} request for job {job_id}: {exc}") from None
        return Receipt(self.name, request_id, f"wrote {self.jobs_dir / job_id / REQUESTS_DIR / name}")


def _upstream_detail(response: httpx.Response) -> str:
    """The human part of an Aura answer: problem `detail`/`title`, else a short text."""
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "message", "title", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])[:200]
    return response.reason_phrase


class UpstreamChannel:
    """Forwards to an unmodified Aura API: `POST {base}/api/jobs/{id}/retry|cancel`, answers mapped to ours."""

    name = "upstream"

    def __init__(self, base_url: str, timeout: float, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.transport = transport

    def send(self, job_id: str, action: ControlAction) -> Receipt:
        url = f"{self.base_url}/api/jobs/{job_id}/{action.value}"
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                response = client.post(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ControlUnavailable(f"upstream {self.base_url} is unreachable: {exc or type(exc).__name__}") from None
        detail = _upstream_detail(response)
        status = response.status_code
        if status in (200, 202):
            return Receipt(self.name, _request_id(response), f"upstream answered {status}: {detail}")
        if status == 404:
            raise JobNotFound(f"upstream {self.base_url} has no job {job_id!r}: {detail}")
        if status in (400, 409):
            refused = NotRetryable if action is ControlAction.RETRY else NotCancellable
            raise refused(f"upstream {self.base_url} refused to {action.value} job {job_id}: {detail}")
        raise ControlUnavailable(f"upstream {self.base_url} answered {status} to {action.value}: {detail}")


def _request_id(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        for key in ("correlationId", "requestId", "jobId"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return None

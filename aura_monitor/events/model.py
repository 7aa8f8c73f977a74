"""Server-Sent Events as aura-monitor sends them: names, ids, and the wire encoding."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class EventName(StrEnum):
    """The `event:` field of every frame (docs/api.md lists their payloads)."""

    CONNECTED = "connected"
    HEARTBEAT = "heartbeat"
    JOB_STATUS = "job-status"
    STEP_STATUS = "step-status"
    STEP_PROGRESS = "step-progress"
    JOB_STALLED = "job-stalled"
    JOB_RECOVERED = "job-recovered"
    WARNING = "warning"
    JOB_COMPLETED = "job-completed"
    JOB_FAILED = "job-failed"
    JOB_CANCELLED = "job-cancelled"
    JOB_PROGRESS = "job-progress"  # Aura's /progress/stream alias

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({EventName.JOB_COMPLETED, EventName.JOB_FAILED, EventName.JOB_CANCELLED})


@dataclass(frozen=True, slots=True)
class EventId:
    """`<boot>-<n>`: the sidecar instance that numbered the event, and its position in that instance's log."""

    boot: str
    n: int

    def __str__(self) -> str:
        return f"{self.boot}-{self.n}"

    @classmethod
    def parse(cls, raw: str | None) -> EventId | None:
        """The id a client sent back in Last-Event-ID, or None when it is absent or not one of ours."""
        if not raw:
            return None
        boot, sep, n = raw.strip().rpartition("-")
        # isdigit() alone accepts "²" or Arabic-Indic digits, which int() then refuses (a bare 500 once):
        # anything not ours is treated as unknown, and the client gets a resync as DESIGN 2.4 says.
        if not sep or not boot or not n.isascii() or not n.isdigit() or len(raw) > 64:
            return None
        return cls(boot, int(n))


@dataclass(frozen=True, slots=True)
class Event:
    """One published event: numbered once, encoded once, shared by every stream that sends it."""

    n: int
    name: EventName
    job_id: str | None
    data: dict[str, Any]
    frame: bytes
    batch: int = 0  # n of the first event made from the same record write (one Aura `job-progress`)

    @property
    def terminal(self) -> bool:
        return self.name.terminal


def encode(name: str, event_id: str, data: dict[str, Any], retry_ms: int | None = None) -> bytes:
    """One SSE frame; compact JSON never contains a newline, so `data:` is a single line."""
    head = f"retry: {retry_ms}\n" if retry_ms is not None else ""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"{head}id: {event_id}\nevent: {name}\ndata: {body}\n\n".encode()

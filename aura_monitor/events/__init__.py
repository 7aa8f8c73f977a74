"""Server-Sent Events: the tracker's transitions as numbered, replayable events fanned out to streams."""

from __future__ import annotations

from .broker import EventBroker, JobLog, Opening
from .lifecycle import running_uvicorn_server, watch_server_exit
from .model import Event, EventId, EventName, encode
from .stream import SSE_HEADERS, AuraProgress, EventStreamResponse
from .subscriber import Ending, StreamKind, Subscriber

__all__ = [
    "SSE_HEADERS",
    "AuraProgress",
    "Ending",
    "Event",
    "EventBroker",
    "EventId",
    "EventName",
    "EventStreamResponse",
    "JobLog",
    "Opening",
    "StreamKind",
    "Subscriber",
    "encode",
    "running_uvicorn_server",
    "watch_server_exit",
]

"""One connected stream's queue: bounded, coalescing progress, filled from any thread, drained on its event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from enum import StrEnum

from .model import Event, EventName


class StreamKind(StrEnum):
    """The `stream` label of aura_sse_clients."""

    JOB = "job"
    ALL = "all"


class Ending(StrEnum):
    """Why the server ends a stream that the client did not close."""

    SHUTDOWN = "shutdown"
    OVERFLOW = "overflow"  # the client read too slowly: it resumes from its Last-Event-ID


class Subscriber:
    """Progress events of a job replace the unsent one before them; others are never dropped but bounded."""

    def __init__(self, kind: StreamKind, job_id: str | None, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.kind = kind
        self.job_id = job_id
        self.limit = limit
        self.coalesced = 0
        self._loop = loop
        self._lock = threading.Lock()
        self._queue: OrderedDict[object, Event] = OrderedDict()
        self._strict = 0
        self._wake_pending = False
        self._ready = asyncio.Event()
        self._ended = asyncio.Event()
        self.ending: Ending | None = None

    def offer(self, events: Sequence[Event]) -> None:
        """Queue one write's events together (publisher thread, under the broker lock; never blocks)."""
        with self._lock:
            if self.ending is not None:
                return
            for event in events:
                key: object
                if event.name is EventName.STEP_PROGRESS:
                    key = (EventName.STEP_PROGRESS, event.job_id)
                    if self._queue.pop(key, None) is not None:
                        self.coalesced += 1
                elif self._strict >= self.limit:
                    self._queue.clear()
                    self._strict = 0
                    self.ending = Ending.OVERFLOW
                    break
                else:
                    key = event.n
                    self._strict += 1
                self._queue[key] = event
            wake = not self._wake_pending
            self._wake_pending = True
            ended = self.ending is not None
        if wake:
            self._call(self._ready.set)
        if ended:
            self._call(self._ended.set)

    def end(self, why: Ending) -> None:
        """Ask the stream to finish (it sends what it already took, then ends)."""
        with self._lock:
            if self.ending is None:
                self.ending = why
        self._call(self._ready.set)
        self._call(self._ended.set)

    def _call(self, callback: Callable[[], object]) -> None:
        # The loop is gone only after its server stopped; nobody is left to wake then.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback)

    def take(self) -> list[Event]:
        """Everything queued, oldest first (event loop thread)."""
        with self._lock:
            events = list(self._queue.values())
            self._queue.clear()
            self._strict = 0
            self._wake_pending = False
        self._ready.clear()
        return events

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def wait(self, timeout: float) -> None:
        """Until something was offered or the stream must end, at most `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), max(0.0, timeout))

    async def ended(self) -> Ending | None:
        await self._ended.wait()
        return self.ending

"""One SSE stream: `connected`, the replay, live events and heartbeats, as an ASGI response.

The subscription is opened inside the running response and closed in its `finally`, so a response that
never runs never registers, and every way out (end of job, client gone, shutdown, overflow) frees it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..clock import Clock
from ..records.timestamps import format_iso
from .broker import EventBroker, Opening
from .model import Event, EventName, encode

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# A stream that must end while its client is not reading is cut after this long (its send is blocked).
KILL_GRACE_S = 0.25

Render = Callable[[Sequence[Event], str], bytes | None]


def _as_is(group: Sequence[Event], event_id: str) -> bytes:
    return group[0].frame


def _groups(events: Sequence[Event], whole_writes: bool) -> Iterator[Sequence[Event]]:
    """One event at a time, or (Aura's stream) the events of one record write together."""
    if not whole_writes:
        yield from ([event] for event in events)
        return
    group: list[Event] = []
    for event in events:
        if group and event.batch != group[-1].batch:
            yield group
            group = []
        group.append(event)
    if group:
        yield group


class AuraProgress:
    """Aura's `/progress/stream`: every change as one `job-progress {percent, stage, status, message, outputPath}`,
    and at the end the job-progress carrying the final status, then Aura's terminal `job-completed` (whatever
    the outcome: its FinalExport settles only on that event, reading `status` completed, failed or cancelled)."""

    FIELDS = ("percent", "stage", "status", "message", "outputPath")

    def __init__(self, job: dict[str, Any] | None) -> None:
        job = job or {}
        self.current: dict[str, Any] = {key: job.get(key) for key in self.FIELDS}
        self.sent: dict[str, Any] = {}

    def first(self, event_id: str) -> bytes | None:
        """The job's current progress; None while its record has never parsed (the first event sends it)."""
        if self.current["status"] is None:
            return None
        self.sent = dict(self.current)
        return encode(EventName.JOB_PROGRESS, event_id, self.sent)

    def render(self, group: Sequence[Event], event_id: str) -> bytes | None:
        for event in group:
            if event.name in (EventName.WARNING, EventName.JOB_STALLED, EventName.JOB_RECOVERED):
                continue
            for key in self.FIELDS:
                if key in event.data:
                    self.current[key] = event.data[key]
            if event.name is EventName.JOB_FAILED:
                self.current["message"] = event.data.get("errorMessage") or self.current["message"]
        ending = next((e for e in group if e.terminal), None)
        frame = b""
        if self.current != self.sent:
            self.sent = dict(self.current)
            frame = encode(EventName.JOB_PROGRESS, event_id, self.sent)
        if ending is not None:
            frame += encode(EventName.JOB_COMPLETED, event_id, self._completed(ending))
        return frame or None

    def _completed(self, ending: Event) -> dict[str, Any]:
        data = dict(self.current)
        data["status"] = ending.data.get("status") or data.get("status")
        data["jobId"] = ending.job_id
        data["correlationId"] = ending.data.get("correlationId")
        if ending.name is EventName.JOB_FAILED:
            # Aura's payload has no errorMessage, so its FinalExport shows a generic failure; ours says why.
            data["errorMessage"] = ending.data.get("errorMessage")
        return data


class EventStreamResponse(Response):
    """`text/event-stream` for one job (`job_id`) or for all jobs (`job_id=None`)."""

    media_type = "text/event-stream"

    def __init__(
        self,
        broker: EventBroker,
        job_id: str | None,
        last_event_id: str | None,
        *,
        clock: Clock,
        heartbeat: float,
        retry_ms: int,
        aura_progress: bool = False,
        finished_limit: int | None = None,
        node: str | None = None,
    ) -> None:
        self.broker = broker
        self.node = node
        self.finished_limit = finished_limit
        self.job_id = job_id
        self.last_event_id = last_event_id
        self.clock = clock
        self.heartbeat = heartbeat
        self.retry_ms = retry_ms
        self.aura_progress = aura_progress
        self.status_code = 200
        self.background = None
        self.init_headers(SSE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        held: list[Opening] = []

        def open_stream() -> None:
            held.append(self.broker.open(self.job_id, self.last_event_id, loop, self.finished_limit))
            self.broker.snapshot(held[0])

        try:
            if self.job_id is None:
                await anyio.to_thread.run_sync(open_stream)  # snapshot of every job: keep it off the loop
            else:
                open_stream()
            opening = held[0]
            if opening.finished:
                # The client already has this job's terminal event: 204 tells EventSource not to reconnect.
                await send({"type": "http.response.start", "status": 204, "headers": self._no_content_headers()})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await self._stream(opening, receive, send)
        finally:
            if held:
                self.broker.close(held[0].subscriber)

    def _no_content_headers(self) -> list[tuple[bytes, bytes]]:
        return [(k.lower().encode(), v.encode()) for k, v in SSE_HEADERS.items()]

    async def _stream(self, opening: Opening, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async with anyio.create_task_group() as group:

            async def pump() -> None:
                async with contextlib.aclosing(self.frames(opening)) as frames:
                    async for chunk in frames:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                group.cancel_scope.cancel()

            async def client_gone() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            async def must_end() -> None:
                if opening.subscriber is None:
                    return
                await opening.subscriber.ended()
                await anyio.sleep(KILL_GRACE_S)
                group.cancel_scope.cancel()

            group.start_soon(pump)
            group.start_soon(client_gone)
            group.start_soon(must_end)

    async def frames(self, opening: Opening) -> AsyncGenerator[bytes, None]:
        """The stream's frames; per-job streams end after the job's terminal event."""
        per_job = opening.job_id is not None
        last = opening.first_id
        connected = encode(EventName.CONNECTED, last, self._connected(opening), self.retry_ms)
        render: Render = _as_is
        aura = None
        if self.aura_progress:
            aura = AuraProgress(opening.snapshot if isinstance(opening.snapshot, dict) else None)
            render = aura.render
        replay, opening.replay = opening.replay, []
        # Encoded: the snapshot (every job's view, on an all-jobs stream) is dropped before the frame goes
        # out, not kept for the stream's life nor while a slow client drains the frame (bench/idle_streams.py).
        opening.snapshot, opening.snapshot_states = None, []
        yield connected
        del connected
        if aura is not None and (opening_frame := aura.first(last)) is not None:
            yield opening_frame
        for chunk, event_id, ended in self._deliver(opening, replay, render):
            last = event_id
            if chunk is not None:
                yield chunk
            if ended:
                return
        del replay
        if per_job and opening.terminal is not None:
            for chunk, _, _ in self._deliver(opening, [opening.terminal], render):
                if chunk is not None:
                    yield chunk
            return
        subscriber = opening.subscriber
        if subscriber is None:
            return
        loop = asyncio.get_running_loop()
        beat = loop.time() + self.heartbeat
        while True:
            events = subscriber.take()
            # Everything queued since the last wake-up goes out as one write: a busy all-jobs stream takes
            # dozens of events at a time, and each send costs a trip through the ASGI stack and a syscall.
            chunks: list[bytes] = []
            ended = False
            for chunk, event_id, ended in self._deliver(opening, events, render):
                last = event_id
                if chunk is not None:
                    chunks.append(chunk)
                if ended:
                    break
            if chunks:
                yield b"".join(chunks)
            if ended:
                return
            if subscriber.ending is not None:
                return
            now = loop.time()
            if now >= beat:
                beat = now + self.heartbeat
                now_iso = format_iso(self.clock.now())
                # Timestamp/Status: Aura's HeartbeatEventDto spelling, for clients written against Aura.
                yield encode(
                    EventName.HEARTBEAT, last, {"serverTime": now_iso, "Timestamp": now_iso, "Status": "alive"}
                )
            elif not events:
                await subscriber.wait(beat - now)

    def _deliver(
        self, opening: Opening, events: Sequence[Event], render: Render
    ) -> Iterator[tuple[bytes | None, str, bool]]:
        """(frame or None, its id, whether it ends a per-job stream) for each event or write."""
        for group in _groups(events, self.aura_progress):
            event_id = f"{opening.boot}-{group[-1].n}"
            ended = opening.job_id is not None and any(e.terminal and e.job_id == opening.job_id for e in group)
            yield render(group, event_id), event_id, ended

    def _connected(self, opening: Opening) -> dict[str, Any]:
        data: dict[str, Any] = {
            "stream": opening.kind.value,
            "resync": opening.resync,
            "replayed": len(opening.replay),
            "serverTime": format_iso(self.clock.now()),
            "heartbeatSeconds": self.heartbeat,
        }
        if self.node is not None:
            data["node"] = self.node  # which render node this stream (and every job in it) is from
        if opening.job_id is not None:
            data.update(jobId=opening.job_id, job=opening.snapshot)
            # Aura's ConnectedEventDto spelling (its FinalExport only needs the event to arrive).
            data.update(JobId=opening.job_id, Message="Connected to job event stream", Timestamp=data["serverTime"])
        else:
            jobs = opening.snapshot if isinstance(opening.snapshot, list) else []
            # `complete: false` means finished jobs were left out; `omitted` counts them by status.
            data.update(
                jobs=jobs,
                count=len(jobs),
                total=sum(opening.counts.values()),
                counts=opening.counts,
                omitted=opening.omitted,
                complete=not opening.omitted,
            )
        return data

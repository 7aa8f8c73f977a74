"""A real uvicorn server on a port-0 socket in a thread, and a raw-socket SSE client that reads as it arrives.

httpx's in-process ASGI transport buffers whole bodies, so endless streams are tested over a real socket.
The client is a plain socket so a test can stop reading, cut it, or shape its buffers at will.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from aura_monitor.api.app import create_app
from aura_monitor.config import load_settings
from aura_monitor.sidecar import Sidecar
from tests.support import HANG_S, wait_for
from tests.support.live_stack import fresh_data_dir


class LiveServer:
    """`create_app(sidecar)` served by uvicorn on 127.0.0.1:<free port> in a background thread."""

    def __init__(self, sidecar: Sidecar, port: int = 0, *, graceful_shutdown_s: int = 1) -> None:
        self.sidecar = sidecar
        self.app = create_app(sidecar)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=graceful_shutdown_s,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.app.state.uvicorn_server = self.server  # no signal handlers in a thread: hand the server over
        self.thread = threading.Thread(target=self.server.run, name="live-uvicorn", daemon=True)
        self.port = 0

    def start(self) -> LiveServer:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=HANG_S, what="uvicorn to start")
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = HANG_S) -> float:
        """Ask the server to exit as a signal would; returns how long it took to stop."""
        began = time.monotonic()
        self.server.should_exit = True
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "uvicorn did not stop"
        return time.monotonic() - began


@contextmanager
def live_server(
    jobs_dir: Path, port: int = 0, *, graceful_shutdown_s: int = 1, **settings: Any
) -> Iterator[LiveServer]:
    """A started server around a new Sidecar on `jobs_dir`; stopped (and the sidecar with it) at the end.

    `graceful_shutdown_s` is how long uvicorn lets open responses finish on stop before cancelling them.
    """
    if "history" not in settings and "AURA_MONITOR_HISTORY" not in os.environ:  # a module-scoped server
        settings["history"] = f"sqlite:///{fresh_data_dir() / 'history.db'}"  # never a shared one (live_stack)
    sidecar = Sidecar(load_settings(jobs_dir=jobs_dir, **settings))
    server = LiveServer(sidecar, port, graceful_shutdown_s=graceful_shutdown_s).start()
    try:
        yield server
    finally:
        if server.thread.is_alive():
            server.stop()


@dataclass
class Received:
    """One event as the client parsed it, with its arrival time (wall clock and monotonic)."""

    name: str
    id: str | None
    data: Any
    wall: float
    mono: float
    retry: int | None = None


@dataclass
class _Response:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)


class SseClient:
    """GET an SSE route over a raw socket on its own thread; events pile up in `events` as they arrive."""

    def __init__(
        self,
        port: int,
        path: str,
        headers: dict[str, str] | None = None,
        *,
        rcvbuf: int | None = None,
        read: bool = True,
    ) -> None:
        self.port = port
        self.path = path
        self.events: list[Received] = []
        self.response = _Response()
        self.ended = threading.Event()  # the server finished the response (or closed the connection)
        self.finished = False  # the response's last chunk came: the server ended the stream, it was not cut off
        self.opened_at = 0.0
        self._lock = threading.Condition()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.opened_at = time.monotonic()
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.thread: threading.Thread | None = None
        if read:
            self.thread = threading.Thread(target=self._read, name=f"sse{path}", daemon=True)
            self.thread.start()

    # -- reading --------------------------------------------------------------------------------
    def _recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except OSError:
            return b""

    def _read(self) -> None:
        buffer = b""
        try:
            while b"\r\n\r\n" not in buffer:
                chunk = self._recv()
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            status_line, *header_lines = head.decode().split("\r\n")
            self.response.status = int(status_line.split()[1])
            self.response.headers = {
                k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)
            }
            if self.response.headers.get("transfer-encoding") != "chunked":
                return
            text = ""
            while True:
                while b"\r\n" not in buffer:
                    chunk = self._recv()
                    if not chunk:
                        return
                    buffer += chunk
                size_line, _, buffer = buffer.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(buffer) < size + 2:
                    chunk = self._recv()
                    if not chunk:
                        return
                    buffer += chunk
                if size == 0:
                    self.finished = True
                    return
                text += buffer[:size].decode()
                buffer = buffer[size + 2 :]
                *frames, text = text.split("\n\n")
                for frame in frames:
                    self._parse(frame)
        finally:
            with self._lock:
                self.ended.set()
                self._lock.notify_all()

    def _parse(self, frame: str) -> None:
        fields: dict[str, str] = {}
        for line in frame.split("\n"):
            key, _, value = line.partition(":")
            fields[key] = value[1:] if value.startswith(" ") else value
        event = Received(
            name=fields.get("event", "message"),
            id=fields.get("id"),
            data=json.loads(fields["data"]) if "data" in fields else None,
            wall=time.time(),
            mono=time.monotonic(),
            retry=int(fields["retry"]) if "retry" in fields else None,
        )
        with self._lock:
            self.events.append(event)
            self._lock.notify_all()

    # -- waiting --------------------------------------------------------------------------------
    def wait(self, predicate: Callable[[list[Received]], bool], timeout: float = HANG_S, what: str = "events") -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self.events):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = [e.name for e in self.events]
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}; got {names}")
                self._lock.wait(remaining)

    def wait_for_event(self, name: str, timeout: float = HANG_S, job_id: str | None = None) -> Received:
        def found(events: list[Received]) -> bool:
            return any(self._matches(e, name, job_id) for e in events)

        self.wait(found, timeout, f"{name} {job_id or ''}")
        return next(e for e in self.events if self._matches(e, name, job_id))

    @staticmethod
    def _matches(event: Received, name: str, job_id: str | None) -> bool:
        if event.name != name:
            return False
        return job_id is None or (isinstance(event.data, dict) and event.data.get("jobId") == job_id)

    def wait_ended(self, timeout: float = HANG_S) -> None:
        assert self.ended.wait(timeout), f"stream {self.path} did not end within {timeout} s"

    def names(self, *, heartbeats: bool = False) -> list[str]:
        with self._lock:
            return [e.name for e in self.events if heartbeats or e.name != "heartbeat"]

    @property
    def last_id(self) -> str | None:
        with self._lock:
            return self.events[-1].id if self.events else None

    def close(self) -> None:
        """Hang up (unblocks the reader thread)."""
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        if self.thread is not None:
            self.thread.join(5)

"""A remote TTS provider over HTTP: the client the TTS stage uses, and an overloaded provider to call.

The client POSTs `{"text", "voice"}` and expects `audio/wav` bytes back. Transient errors (429, 5xx,
timeouts, refused connections) are logged into the job log and retried with backoff, honouring
`Retry-After`. `OverloadedProvider` is a real HTTP server that only ever answers 429, 503 or too late:
what a rate-limited or failing provider does to a pipeline that retries without a budget.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

import httpx

from ..reporter import StageError

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 4.0


class SpeechProvider:
    """Client of a remote TTS endpoint."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        max_attempts: int | None = 5,
        log: Callable[[str], None],
        pause: Callable[[float], None],
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self._log = log
        self._pause = pause

    def synthesize(self, text: str, destination: Path, *, voice: str = "default") -> None:
        """Write the audio for `text` to `destination`, retrying transient errors.

        `max_attempts=None` retries for as long as the caller's `pause` lets it (it raises to stop).
        """
        with httpx.Client(timeout=self.timeout_s) as client:
            for attempt in itertools.count(1):
                retry_after: float | None = None
                try:
                    response = client.post(self.url, json={"text": text, "voice": voice})
                except httpx.TimeoutException:
                    problem = f"timed out after {self.timeout_s:g} s"
                except httpx.TransportError as exc:
                    problem = f"connection failed ({type(exc).__name__}: {exc})"
                else:
                    if response.status_code == 200 and response.content:
                        destination.write_bytes(response.content)
                        return
                    problem = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
                    if response.status_code not in TRANSIENT_STATUSES:
                        raise StageError(f"TTS provider refused the request: {problem}", code="E502-UPSTREAM_REFUSED")
                    retry_after = _retry_after(response.headers.get("retry-after"))
                if self.max_attempts is not None and attempt >= self.max_attempts:
                    self._log(f"TTS provider error: {problem} from {self.url} (attempt {attempt}, giving up)")
                    raise StageError(
                        f"TTS provider unavailable after {attempt} attempts: {problem}",
                        code="E502-UPSTREAM_UNAVAILABLE",
                    )
                delay = min(
                    BACKOFF_CAP_S, retry_after if retry_after is not None else BACKOFF_BASE_S * 2 ** (attempt - 1)
                )
                self._log(f"TTS provider error: {problem} from {self.url} (attempt {attempt}, retrying in {delay:g} s)")
                self._pause(delay)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff


class OverloadedProvider:
    """A TTS endpoint on 127.0.0.1 that answers 429, 503, or nothing before the client's timeout."""

    def __init__(self, *, stall_s: float = 5.0) -> None:
        self._answers = itertools.cycle(("429", "503", "stall"))
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.requests = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                with provider._lock:
                    answer = next(provider._answers)
                    provider.requests += 1
                if answer == "stall":
                    provider._closing.wait(stall_s)  # answer nothing: the client times out
                    return
                if answer == "429":
                    self._reply(429, {"Retry-After": "1"}, b'{"error": "rate limit exceeded"}')
                else:
                    self._reply(503, {}, b'{"error": "voice backend unavailable"}')

            def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the client logs what matters into the job log

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="overloaded-tts", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1/synthesize"

    def __enter__(self) -> OverloadedProvider:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

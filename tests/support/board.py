"""The board's test harness: a restartable real server, Debian's Chromium driven by Playwright, job scenes.

No browser is downloaded: Playwright drives /usr/bin/chromium (Debian package `chromium`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Playwright

from aura_monitor.api.app import create_app
from aura_monitor.config import load_settings
from aura_monitor.records.timestamps import format_iso
from aura_monitor.sidecar import Sidecar
from tests.support import HANG_S, wait_for, write_native
from tests.support.live_stack import stop_process

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "board"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> str:
    """Debian's Chromium; fails (never skips, CI included) naming the package to install."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: install the Debian package chromium (apt-get install chromium, or make "
            "system-deps); the board tests drive it with Playwright and never download a browser"
        )
    return CHROMIUM


def launch_chromium(playwright: Playwright) -> Browser:
    """Chromium with a fresh temporary profile (Playwright's launch creates and removes one)."""
    return playwright.chromium.launch(executable_path=require_chromium(), headless=True, args=CHROMIUM_ARGS)


class BoardServer:
    """`create_app(Sidecar)` under uvicorn in a thread; stop() and start() again on the same port = a restart."""

    def __init__(self, jobs_dir: Path, **settings: Any) -> None:
        self.jobs_dir = jobs_dir
        self.settings = settings
        self.port = 0
        self.sidecar: Sidecar | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> BoardServer:
        self.sidecar = Sidecar(load_settings(jobs_dir=self.jobs_dir, **self.settings))
        app = create_app(self.sidecar)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=1, lifespan="on"
        )
        server = uvicorn.Server(config)
        app.state.uvicorn_server = server  # no signal handlers in a thread: the app watches this one's exit flag
        self._server = server
        self._thread = threading.Thread(target=server.run, name="board-uvicorn", daemon=True)
        self._thread.start()
        wait_for(lambda: server.started or not self._thread_alive(), timeout=HANG_S, what="uvicorn to start")
        assert server.started, f"uvicorn did not start on port {self.port}"
        self.port = server.servers[0].sockets[0].getsockname()[1]
        return self

    def _thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(15)
        assert not self._thread.is_alive(), "uvicorn did not stop"
        self._server = None
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread_alive()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def tracked(self, job_id: str) -> bool:
        return self.sidecar is not None and self.sidecar.tracker.get(job_id) is not None


@dataclass
class PageProblems:
    """JavaScript errors and console errors of one page."""

    errors: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)

    def expect_http(self, *statuses: int) -> None:
        """Answers the test provokes on purpose (Chromium logs every 4xx fetch as a console error)."""
        self.expected_statuses.update(statuses)

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        text = message.text
        # A stopped server makes the stream fail by design (the restart test): that is the browser's own
        # network log line, not an error of the page's code.
        if re.search(r"net::ERR_(CONNECTION_REFUSED|EMPTY_RESPONSE|CONNECTION_RESET|INCOMPLETE_CHUNKED)", text):
            return
        if "Failed to load resource" in text and "api/events" in str(message.location.get("url", "")):
            return
        status = re.search(r"responded with a status of (\d+)", text)
        if status and int(status.group(1)) in self.expected_statuses:
            return
        self.errors.append(f"console.error: {text}")


def screenshot(page: Page, name: str) -> Path:
    """Save a screenshot under test-artifacts/board/ (kept by CI, ignored by git)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    with contextlib.suppress(Error):  # a crashed page still lets the test report its real failure
        page.screenshot(path=str(path))
    return path


@contextmanager
def worker_process(jobs_dir: Path, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`aura-monitor worker` (the reference pipeline) on `jobs_dir`, stopped with SIGTERM at the end."""
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "aura_monitor", "worker", "--jobs-dir", str(jobs_dir), "--poll-interval", "0.1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=jobs_dir.parent,
    )
    try:
        yield process
    finally:
        stop_process(process)
        log.close()


def enqueue(jobs_dir: Path, job_id: str, *args: str) -> str:
    """`aura-monitor enqueue` a job for the reference worker; returns its id."""
    done = subprocess.run(
        [sys.executable, "-m", "aura_monitor", "enqueue", "--jobs-dir", str(jobs_dir), "--id", job_id, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def require_ffmpeg() -> None:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is missing: install the Debian package ffmpeg (make system-deps)")


# -- scenes: job records as a real pipeline leaves them -------------------------------------------------

PROVIDER_ERRORS = [
    "TTS request 4/9: provider answered 429 Too Many Requests (retry in 8 s)",
    "TTS request 4/9: provider answered 503 Service Unavailable",
    "TTS request 4/9: timed out after 30 s",
    "TTS request 4/9: provider answered 429 Too Many Requests (retry in 16 s)",
]


def iso_ago(seconds: float, now: float | None = None) -> str:
    return format_iso((time.time() if now is None else now) - seconds)


def running_job(jobs_dir: Path, job_id: str, *, stage: str, percent: float, age: float, **fields: Any) -> Path:
    """A running native job that progressed just now (unless `lastProgressAt` says otherwise)."""
    now = time.time()
    doc: dict[str, Any] = {
        "status": "running",
        "stage": stage,
        "percent": percent,
        "createdAt": iso_ago(age + 5, now),
        "startedAt": iso_ago(age, now),
        "lastProgressAt": iso_ago(0, now),
        "heartbeatAt": iso_ago(0, now),
    }
    doc.update(fields)
    return write_native(jobs_dir, job_id, **doc)


def stuck_on_provider(jobs_dir: Path, job_id: str, *, stuck_for: float = 0.0, **fields: Any) -> Path:
    """A TTS stage retrying a failing provider: its log shows 429/503/timeouts and progress stopped."""
    now = time.time()
    doc: dict[str, Any] = {
        "message": "Narration 4 of 9: waiting for the TTS provider",
        "lastProgressAt": iso_ago(stuck_for, now),
        "logs": ["Script written (412 words)", "TTS request 1/9 done", "TTS request 3/9 done", *PROVIDER_ERRORS],
    }
    doc.update(fields)
    return running_job(jobs_dir, job_id, stage="TTS", percent=38.0, age=stuck_for + 300, **doc)


def finished_job(jobs_dir: Path, job_id: str, status: str, *, age: float, took: float, **fields: Any) -> Path:
    now = time.time()
    doc: dict[str, Any] = {
        "status": status,
        "createdAt": iso_ago(age + 5, now),
        "startedAt": iso_ago(age, now),
        "completedAt": iso_ago(age - took, now),
        "lastProgressAt": iso_ago(age - took, now),
    }
    doc.setdefault("stage", "Complete" if status == "completed" else "Render")
    doc.setdefault("percent", 100.0 if status == "completed" else 84.0)
    doc.update(fields)
    return write_native(jobs_dir, job_id, **doc)


def queued_job(jobs_dir: Path, job_id: str, *, age: float) -> Path:
    now = time.time()
    return write_native(
        jobs_dir,
        job_id,
        status="queued",
        stage="Queued",
        percent=0.0,
        createdAt=iso_ago(age, now),
        queuedAt=iso_ago(age, now),
    )


# -- in-page probes ---------------------------------------------------------------------------------------

# Collects the duration of every main-thread task over 50 ms from now on, in window.__long.
LONG_TASKS = """
window.__long = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__long.push(entry.duration);
}).observe({ type: "longtask", buffered: false });
"""

# Every visible text on the page whose contrast with its (composited) background is below WCAG AA:
# 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold). Returns {checked, failures}.
CONTRAST_FAILURES = """
() => {
  const parse = (css) => {
    const v = css.match(/[\\d.]+/g).map(Number);
    return { r: v[0], g: v[1], b: v[2], a: v.length > 3 ? v[3] : 1 };
  };
  const channel = (v) => {
    const s = v / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const over = (top, under) => ({
    r: top.r * top.a + under.r * (1 - top.a),
    g: top.g * top.a + under.g * (1 - top.a),
    b: top.b * top.a + under.b * (1 - top.a),
    a: 1,
  });
  const backgroundOf = (el) => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const bg = parse(getComputedStyle(node).backgroundColor);
      if (bg.a > 0) layers.push(bg);
      if (bg.a >= 1) break;
    }
    let color = { r: 255, g: 255, b: 255, a: 1 };
    if (layers.length && layers[layers.length - 1].a >= 1) color = layers.pop();
    for (const layer of layers.reverse()) color = over(layer, color);
    return color;
  };
  const failures = [];
  let checked = 0;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    const el = text.parentElement;
    if (!text.textContent.trim() || !el || !el.checkVisibility({ visibilityProperty: true })) continue;
    if (el.closest(".visually-hidden, option, :disabled")) continue;
    checked += 1;
    const style = getComputedStyle(el);
    const bg = backgroundOf(el);
    const fg = over(parse(style.color), bg);
    const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      const what = text.textContent.trim().slice(0, 40);
      failures.push(`${ratio.toFixed(2)}:1 ${el.tagName.toLowerCase()}.${el.className} "${what}"`);
    }
  }
  return { checked, failures };
}
"""

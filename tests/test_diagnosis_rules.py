"""Ranking by evidence, then severity: one real-process scenario per rule (docs/diagnosis.md, "Ranking")."""

from __future__ import annotations

import array
import fcntl
import os
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from aura_monitor.records.timestamps import format_iso
from tests.support import STARTUP_S, wait_for
from tests.support.aura_writer import net_time
from tests.support.diagnosis_scenarios import explain, native_running, verdict
from tests.support.media import start_encoder

# A TTS client as pipeline/provider.py is one: each attempt is answered 429, logged, then it sleeps 1 s.
RETRY_LOOP = """
import sys, time
from datetime import datetime, timezone
attempt = 0
while True:
    attempt += 1
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with open(sys.argv[1], "a") as log:
        log.write(f"[{stamp}] TTS provider error: HTTP 429 Too Many Requests (attempt {attempt}, retrying in 1 s)\\n")
    time.sleep(1.0)
"""
# A supervisor polling its encoder ten times a second, as the pipeline's render stage does.
POLLER = "import time\nwhile True:\n    sum(range(20000))\n    time.sleep(0.1)\n"
SLEEPER = "import time\ntime.sleep(600)\n"


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.communicate(timeout=10)


def python(spawn: list[subprocess.Popen[bytes]], code: str, *args: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    spawn.append(process)
    return process


def started_up(pid: int) -> bool:
    """Asleep with its start-up done: its CPU time stands still across a short look."""
    process = psutil.Process(pid)
    before = process.cpu_times()
    time.sleep(0.3)
    return process.status() == "sleeping" and process.cpu_times() == before


def test_a_worker_sleeping_between_retries_with_fresh_429s_is_upstream_errors_not_process_hung(
    root: Path, spawn: list[subprocess.Popen[bytes]]
) -> None:
    log = root / "jobs" / "retrying.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    worker = python(spawn, RETRY_LOOP, str(log))
    wait_for(lambda: log.is_file() and len(log.read_text().splitlines()) >= 3, timeout=STARTUP_S, what="three 429s")
    native_running(root, "retrying", 60, stage="TTS", percent=25.0, logPath=str(log), worker={"pid": worker.pid})

    verdicts = []
    for _ in range(6):  # across the loop's rhythm: most 150 ms windows fall in its sleep
        body = explain(root, "retrying")
        verdicts.append(verdict(body))
        assert "process_hung" not in [f["code"] for f in body["findings"]], body["findings"]
        time.sleep(0.4)

    assert verdicts == ["upstream_errors"] * 6
    assert body["findings"][0]["basis"] == "observed"
    assert psutil.Process(worker.pid).status() == "sleeping"


def test_stale_provider_errors_and_an_idle_worker_are_process_hung(
    root: Path, spawn: list[subprocess.Popen[bytes]]
) -> None:
    log = root / "jobs" / "gave-up.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    ten_min_ago = time.time() - 600
    log.write_text(
        "".join(f"[{format_iso(ten_min_ago + i)}] TTS provider error: HTTP 429 Too Many Requests\n" for i in range(4))
    )
    os.utime(log, (ten_min_ago + 4, ten_min_ago + 4))
    worker = python(spawn, SLEEPER)
    wait_for(lambda: started_up(worker.pid), what="the worker to be asleep")
    native_running(root, "gave-up", 600, stage="TTS", percent=25.0, logPath=str(log), worker={"pid": worker.pid})

    body = explain(root, "gave-up")

    codes = [f["code"] for f in body["findings"]]
    assert verdict(body) == "process_hung", body["findings"]
    assert codes.index("upstream_errors") > codes.index("process_hung")  # the errors are 10 min old
    assert body["findings"][codes.index("upstream_errors")]["basis"] == "inferred"


def test_a_sigstopped_ffmpeg_is_process_hung_even_while_its_worker_logs(
    root: Path, spawn: list[subprocess.Popen[bytes]]
) -> None:
    log = root / "jobs" / "stopped.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    worker = python(spawn, RETRY_LOOP.replace("TTS provider error: HTTP 429 Too Many Requests", "heartbeat"), str(log))
    encoder = start_encoder(root / "render", "stopped")
    try:
        os.kill(encoder.pid, signal.SIGSTOP)
        wait_for(lambda: psutil.Process(encoder.pid).status() == "stopped", what="ffmpeg stopped")
        native_running(
            root,
            "stopped",
            60,
            stage="Render",
            percent=85.0,
            outputPath=str(encoder.output),
            logPath=str(log),
            worker={"pid": worker.pid},
            encoder={"pid": encoder.pid, "progressPath": str(encoder.progress), "logPath": str(encoder.log)},
        )
        body = explain(root, "stopped")
    finally:
        encoder.stop()

    assert verdict(body) == "process_hung", body["findings"]
    assert body["findings"][0]["basis"] == "observed" and body["findings"][0]["confidence"] >= 0.9
    assert "is stopped (state T" in body["summary"]


def test_ffmpeg_blocked_on_an_unread_stderr_pipe_stays_process_hung_while_its_supervisor_polls(
    root: Path, spawn: list[subprocess.Popen[bytes]]
) -> None:
    out = root / "render" / "deadlock.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-y", "-v", "trace", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=15",
         "-t", "120", "-c:v", "libx264", "-preset", "ultrafast", str(out)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    spawn.append(ffmpeg)
    supervisor = python(spawn, POLLER)
    process = psutil.Process(ffmpeg.pid)
    seen: list[tuple[int, float, int]] = []

    def blocked_on_write() -> bool:
        # Blocked: the pipe full and the CPU time and output standing still across three polls (the encoder
        # threads finish the frames in flight after the main thread blocks).
        pending = array.array("i", [0])
        fcntl.ioctl(ffmpeg.stderr.fileno(), termios.FIONREAD, pending)  # type: ignore[union-attr]
        cpu = process.cpu_times()
        seen.append((pending[0], cpu.user + cpu.system, out.stat().st_size if out.exists() else -1))
        return pending[0] >= 60_000 and len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]

    wait_for(blocked_on_write, timeout=30, what="ffmpeg blocked writing stderr", interval=0.25)
    stuck_since = time.time() - 60
    os.utime(out, (stuck_since, stuck_since))
    native_running(
        root,
        "deadlock",
        60,
        stage="Render",
        percent=85.0,
        outputPath=str(out),
        worker={"pid": supervisor.pid},
        encoder={"pid": ffmpeg.pid},
        heartbeatAt=net_time(time.time()),
    )

    verdicts = []
    began = time.monotonic()
    while time.monotonic() - began < 7:  # past activity.RHYTHM_S, so the longer CPU span is judged too
        verdicts.append(verdict(explain(root, "deadlock")))
        time.sleep(0.5)

    assert set(verdicts) == {"process_hung"}, verdicts
    assert psutil.Process(supervisor.pid).cpu_times().user > 0  # the supervisor did work all along

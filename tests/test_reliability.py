"""Reliability targets of DESIGN section 4, each a test that fails if the target breaks (-m reliability)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aura_monitor.config import load_settings
from aura_monitor.jobs.transitions import Transition, TransitionKind
from aura_monitor.sidecar import Sidecar
from tests.support import STARTUP_S, sample, wait_for, write_native
from tests.support.aura_writer import RUNNING, AuraJob
from tests.support.live_stack import free_port, sidecar_argv

pytestmark = pytest.mark.reliability
ROOT = Path(__file__).resolve().parent.parent


def test_aura_style_writers_doing_100k_in_place_rewrites_across_1000_jobs(jobs_dir: Path) -> None:
    sidecar = Sidecar(load_settings(jobs_dir=jobs_dir))
    stages: dict[str, list[str]] = {}

    def note(batch: list[Transition]) -> None:
        for t in batch:
            if t.kind is TransitionKind.STAGE and t.new is not None:
                stages.setdefault(t.job_id, []).append(t.new)

    sidecar.tracker.subscribe(note)  # type: ignore[arg-type]
    sidecar.start()
    try:
        wait_for(lambda: sidecar.ready, what="ready")
        writers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.writers",
                    str(jobs_dir),
                    "--jobs",
                    "500",
                    "--rewrites",
                    "100",
                    "--prefix",
                    f"w{k}",
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            for k in range(2)
        ]
        finals = [json.loads(w.communicate(timeout=240)[0])["final_stage"] for w in writers]
        assert all(w.returncode == 0 for w in writers)

        def settled() -> bool:
            states = sidecar.tracker.jobs()
            return len(states) == 1000 and all(s.record and s.record.stage == finals[0] for s in states)

        wait_for(settled, timeout=60, what="every job at its last rewrite")
        for job_id, seen in stages.items():
            assert seen == sorted(seen), f"{job_id} went back in time: {seen[-5:]}"
            assert all(stage.startswith("Step-") for stage in seen)
        state = sidecar.tracker.get("w0-0000")
        assert state is not None and state.record is not None and state.record.percent == 100
        assert not any(s.unreadable_reported for s in sidecar.tracker.jobs())
        assert sidecar.watcher.observer_alive and sidecar.watcher.stats.handler_errors == 0
    finally:
        sidecar.stop()


def _serve(jobs_dir: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """The sidecar as a plain child (the tests kill -9 and SIGSTOP it), quiet, started like every other."""
    argv = sidecar_argv(jobs_dir, port, "--log-level", "warning", *extra)
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def server(jobs_dir: Path, port: int) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    # A periodic rescan far away: whatever recovers from the storm must be the overflow handling itself.
    process = _serve(jobs_dir, port, "--stall-threshold", "5", "--rescan-interval", "300")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url), timeout=STARTUP_S, what="sidecar subprocess ready")
        yield process, url
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()
            process.wait(timeout=10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _jobs(url: str) -> dict[str, dict[str, object]]:
    return {job["id"]: job for job in httpx.get(f"{url}/api/jobs?limit=1000", timeout=5).json()["jobs"]}


def test_an_inotify_overflow_storm_ends_in_the_correct_final_state(
    jobs_dir: Path, server: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, url = server
    for i in range(200):
        write_native(jobs_dir, f"storm-{i:03d}", revision=0, percent=0.0)
    wait_for(lambda: len(_jobs(url)) == 200, timeout=30, what="200 watched job dirs")
    os.kill(process.pid, signal.SIGSTOP)  # nobody reads the inotify queue: 60,000 events overflow it
    wait_for(lambda: Path(f"/proc/{process.pid}/stat").read_text().split()[2] == "T", what="sidecar stopped")
    for revision in range(1, 101):
        for i in range(200):
            write_native(jobs_dir, f"storm-{i:03d}", revision=revision, percent=float(revision))
    os.kill(process.pid, signal.SIGCONT)

    def right() -> bool:
        jobs = _jobs(url)
        return len(jobs) == 200 and all(job["percent"] == 100.0 for job in jobs.values())

    wait_for(right, timeout=60, what="all 200 jobs at their last write after the overflow")
    metrics = httpx.get(f"{url}/metrics").text
    assert sample(metrics, "aura_watcher_up") == 1
    assert sample(metrics, "aura_watcher_handler_errors_total") == 0


def test_kill_9_and_restart_rebuild_the_state_from_disk(jobs_dir: Path, port: int) -> None:
    now = time.time()
    quiet = AuraJob(jobs_dir, id="stalled-tts", status=RUNNING, created=now - 300, started=now - 290)
    quiet.progress(now - 60, "TTS", 40)
    quiet.write()
    write_native(jobs_dir, "moving", stage="Render", percent=81.0)
    write_native(jobs_dir, "done", status="completed", stage="Complete", percent=100.0)
    url = f"http://127.0.0.1:{port}"
    first = _serve(jobs_dir, port)
    try:
        wait_for(lambda: _ready(url) and len(_jobs(url)) == 3, timeout=STARTUP_S, what="first sidecar")
        assert _jobs(url)["stalled-tts"]["stalled"] is True
    finally:
        first.kill()
        first.wait(timeout=10)
    write_native(jobs_dir, "moving", stage="Render", percent=90.0, revision=2)  # changed while down
    write_native(jobs_dir, "late", stage="Script", percent=10.0)  # created while down
    second = _serve(jobs_dir, port)
    try:
        wait_for(lambda: _ready(url) and len(_jobs(url)) == 4, timeout=STARTUP_S, what="restarted sidecar")
        jobs = _jobs(url)
        assert jobs["moving"]["percent"] == 90.0 and jobs["late"]["percent"] == 10.0
        assert jobs["done"]["status"] == "completed"
        assert jobs["stalled-tts"]["stalled"] is True  # flagged at once, with its true duration
        assert float(jobs["stalled-tts"]["secondsSinceProgress"]) >= 60  # type: ignore[arg-type]
    finally:
        second.terminate()
        second.wait(timeout=10)


def test_kill_9_mid_run_loses_no_terminal_event_for_reconnecting_watchers(jobs_dir: Path, port: int) -> None:
    for job_id in ("ends-ok", "ends-failed", "keeps-going"):
        write_native(jobs_dir, job_id, stage="Render", percent=50.0)
    url = f"http://127.0.0.1:{port}"
    first = _serve(jobs_dir, port)
    watchers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        wait_for(lambda: _ready(url) and len(_jobs(url)) == 3, timeout=STARTUP_S, what="first sidecar")
        for job_id in ("ends-ok", "ends-failed"):
            watchers[job_id] = subprocess.Popen(
                [sys.executable, "-m", "aura_monitor", "watch", job_id, "--url", url],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        wait_for(
            lambda: (sample(httpx.get(f"{url}/metrics").text, "aura_sse_clients", stream="job") or 0) >= 2,
            timeout=STARTUP_S,
            what="both watchers connected",
        )
        first.kill()  # SIGKILL: no goodbye to the clients, no state saved
        first.wait(timeout=10)
        write_native(
            jobs_dir,
            "ends-ok",
            status="completed",
            stage="Complete",
            percent=100.0,
            revision=2,
            outputPath="/videos/ok.mp4",
        )
        write_native(
            jobs_dir,
            "ends-failed",
            status="failed",
            stage="Render",
            percent=55.0,
            revision=2,
            error={"code": "E304-FFMPEG_RUNTIME", "message": "ffmpeg exited with code 1"},
        )
        write_native(jobs_dir, "keeps-going", stage="Render", percent=70.0, revision=2)
        second = _serve(jobs_dir, port)
        try:
            assert watchers["ends-ok"].wait(timeout=60) == 0, "completed job: watch exits 0"
            assert watchers["ends-failed"].wait(timeout=60) == 1, "failed job: watch exits 1"
            jobs = _jobs(url)
            assert jobs["keeps-going"]["percent"] == 70.0 and jobs["ends-ok"]["status"] == "completed"
        finally:
            second.terminate()
            second.wait(timeout=10)
    finally:
        for watcher in watchers.values():
            if watcher.poll() is None:
                watcher.kill()
                watcher.wait()
        if first.poll() is None:
            first.kill()

"""Helpers for the reporter and pipeline tests: waiting with deadlines, reading records, inspecting processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, TypeVar

from aura_monitor.pipeline.ffmpeg import last_progress

T = TypeVar("T")


def record(job_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((job_dir / "job.json").read_bytes())
    return data


def render_encoder(job_dir: Path) -> dict[str, Any] | None:
    """The record's encoder once the Render stage's own ffmpeg runs (not the last stage's, still named)."""
    job = record(job_dir)
    encoder = job.get("encoder") or {}
    progress = encoder.get("progressPath") or ""
    if job["stage"] == "Render" and encoder.get("pid") and progress.endswith("render.progress"):
        return dict(encoder)
    return None


def process_state(pid: int) -> str | None:
    """The one-letter state in /proc/<pid>/stat (R, S, T, Z, ...), None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def wait_channel(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return ""


def out_time(progress_path: str | Path) -> float | None:
    sample = last_progress(Path(progress_path))
    return sample.out_time_s if sample is not None else None


def render_process(jobs_dir: Path, job_id: str, *extra: str) -> subprocess.Popen[bytes]:
    """`aura-monitor render JOB_ID` in its own session, as a worker starts it; output beside the jobs dir."""
    with open(jobs_dir.parent / f"{job_id}.render.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "aura_monitor", "render", job_id, "--jobs-dir", str(jobs_dir), *extra],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_session(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process started in its own session and everything it started (ffmpeg, even stopped)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)


def kill_pid(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

"""Aura jobs at the end of each lifecycle the compatibility suite covers, written by the Aura test double
(CRLF, `\\u002B` escapes, in place in 4 KiB chunks), and what Aura's clients read (AURA_API.md section 7)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.support import HANG_S, wait_for
from tests.support.aura_writer import CANCELED, DONE, FAILED, PAUSED, RUNNING, AuraJob, ffmpeg_log, net_time

# Logged with a `+` so the record holds `\u002B`, as Aura's System.Text.Json writes it.
PLUS_LINE = "Voice: 12 clips + 1 intro"
STALL_MESSAGE = "Job stalled at Rendering for 185s"
VIDEO_BYTES = 64 * 1024

# components/Jobs/JobQueue.tsx: the queue word lowercased, then mapped; anything else reads as queued.
JOB_QUEUE_TSX = {
    "pending": "queued",
    "processing": "running",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "canceled",
    "canceled": "canceled",
    "paused": "paused",
}


def running(jobs_dir: Path, job_id: str, *, percent: int = 40, stage: str = "Visuals") -> AuraJob:
    """A job mid-way, its progress written with Aura's two-write update."""
    now = time.time()
    job = AuraJob(jobs_dir, id=job_id, status=RUNNING, created=now - 60, started=now - 58)
    job.write_progress(now - 50, "Script", 15, "Script ready")
    job.write_progress(now - 30, "TTS", 30, PLUS_LINE)
    job.write_progress(now - 1, stage, percent, f"{stage} {percent}%")
    return job


def succeed(job: AuraJob, video: Path) -> None:
    """JobRunner's Done: Stage Complete, 100 %, OutputPath, one video artifact, the end times."""
    now = time.time()
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"\0" * VIDEO_BYTES)
    job.progress(now, "Complete", 100, "Video generation complete")
    job.status = DONE
    artifact = {"Name": video.name, "Path": str(video), "Type": "video", "SizeBytes": VIDEO_BYTES}
    subtitles = {"Name": "captions.srt", "Path": str(video.with_suffix(".srt")), "Type": "subtitle", "SizeBytes": 42}
    job.extra.update(
        OutputPath=str(video),
        Artifacts=[{**artifact, "CreatedAt": net_time(now)}, {**subtitles, "CreatedAt": net_time(now)}],
        CompletedUtc=net_time(now),
        EndedUtc=net_time(now),
        FinishedAt=net_time(now),
    )
    job.write()


def stall_kill(job: AuraJob) -> None:
    """FailJobAsStalled as it lands on disk: Failed + E305, with the cancelled pipeline's echo on top."""
    now = time.time()
    job.status = FAILED
    job.extra.update(
        ErrorMessage="Job was cancelled by user",
        CanceledUtc=net_time(now),
        EndedUtc=net_time(now),
        FinishedAt=net_time(now),
        FailureDetails={
            "Stage": job.stage,
            "Message": STALL_MESSAGE,
            "CorrelationId": job.id,
            "StderrSnippet": None,
            "InstallLogSnippet": None,
            "LogPath": None,
            "SuggestedActions": ["Retry the job", "Check the ffmpeg log"],
            "ErrorCode": "E305-JOB_STALLED",
            "FailedAt": net_time(now),
        },
    )
    job.write()


def fail_plainly(job: AuraJob) -> None:
    """A Failed record without FailureDetails (Aura's route then builds a fallback body)."""
    now = time.time()
    job.status = FAILED
    job.extra.update(ErrorMessage="TTS provider refused the request", EndedUtc=net_time(now), FinishedAt=net_time(now))
    job.write()


def cancel(job: AuraJob, *, status: int = CANCELED) -> None:
    """A user's cancel as the pipeline leaves it (status 6, or 5 in the old build's numbering)."""
    now = time.time()
    job.status = status
    job.extra.update(ErrorMessage="Job was cancelled by user", CanceledUtc=net_time(now), EndedUtc=net_time(now))
    job.write()


def pause(job: AuraJob) -> None:
    job.status = PAUSED
    job.write()


def exception_path(jobs_dir: Path, job_id: str, stderr: bytes) -> AuraJob:
    """E304's exception path: the record stays Running (the old snapshot), the ffmpeg log ends `Exit Code: 1`."""
    job = running(jobs_dir, job_id, percent=62, stage="Rendering")
    log = jobs_dir.parent / "Logs" / "ffmpeg" / f"{job_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(ffmpeg_log(job_id, stderr, 1, started=time.time() - 20, ended=time.time() - 1))
    return job


def job_body(base: str, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{base}/api/jobs/{job_id}", timeout=5).json()
    return body


def wait_status(base: str, job_id: str, status: str, timeout: float = HANG_S) -> dict[str, Any]:
    """GET /api/jobs/{id} until the sidecar shows `status` (it reads the record as it changes)."""
    seen: dict[str, Any] = {}

    def shown() -> bool:
        response = httpx.get(f"{base}/api/jobs/{job_id}", timeout=5)
        seen.update(response.json() if response.status_code == 200 else {})
        return response.status_code == 200 and seen.get("status") == status

    wait_for(shown, timeout=timeout, what=f"{job_id} to show {status}")
    return seen

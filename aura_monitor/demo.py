"""`aura-monitor demo`: the sidecar on a generated jobs dir of Aura-format records, one of them stalled."""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from .aura_writer import DONE, FAILED, QUEUED, RUNNING, AuraJob, net_time
from .config import load_settings
from .serve import configure_logging, run_server

_AURA_PATH = [("Script", 5, 25), ("TTS", 25, 55), ("Images", 55, 80), ("Rendering", 80, 95)]


def write_examples(jobs_dir: Path, now: float) -> AuraJob:
    """A set of records as Aura writes them; returns the healthy job the demo keeps moving."""
    stalled = AuraJob(jobs_dir, id="demo-tts-stalled", status=RUNNING, created=now - 400, started=now - 390)
    for i, pct in enumerate(range(25, 41, 5)):
        stalled.progress(now - 120 + i * 10, "TTS", pct, "Synthesizing narration")
    stalled.logs.append("[provider] HTTP 429 Too Many Requests; retrying")
    stalled.write()

    finishing = AuraJob(jobs_dir, id="demo-render-95", status=RUNNING, created=now - 300, started=now - 290)
    finishing.progress(now - 60, "Rendering", 95, "Encoding video")
    finishing.write()

    done = AuraJob(
        jobs_dir,
        id="demo-completed",
        status=DONE,
        created=now - 900,
        started=now - 890,
        percent=100,
        stage="Complete",
        extra={
            "CompletedUtc": net_time(now - 600),
            "EndedUtc": net_time(now - 600),
            "OutputPath": str(jobs_dir.parent / "videos" / "demo.mp4"),
        },
    )
    done.write()

    failed = AuraJob(
        jobs_dir,
        id="demo-failed",
        status=FAILED,
        created=now - 700,
        started=now - 690,
        percent=84,
        stage="Rendering",
        extra={
            "ErrorMessage": "FFmpeg exited with code 1",
            "FailureDetails": {
                "Stage": "Rendering",
                "ErrorCode": "E304-FFMPEG_RUNTIME",
                "Message": "FFmpeg exited with code 1",
                "StderrSnippet": "Conversion failed!",
            },
        },
    )
    failed.write()
    AuraJob(jobs_dir, id="demo-queued", status=QUEUED, created=now - 5).write()

    healthy = AuraJob(jobs_dir, id="demo-healthy", status=RUNNING, created=now, started=now)
    healthy.progress(now, "Script", 5, "Writing script")
    healthy.write()
    return healthy


def keep_moving(job: AuraJob, stop: threading.Event, step_s: float = 1.0) -> None:
    """Advance the healthy job through Aura's stages, rewriting its file in place like Aura does."""
    while not stop.wait(step_s):
        stage, _, end = next(((s, lo, hi) for s, lo, hi in _AURA_PATH if job.percent < hi), ("Rendering", 80, 95))
        if job.percent >= 95:
            job.status, job.stage, job.percent = DONE, "Complete", 100
            job.extra.update({"CompletedUtc": net_time(time.time()), "OutputPath": "/tmp/demo-healthy.mp4"})
            job.write()
            return
        job.progress(time.time(), stage, min(end, job.percent + 1), f"{stage} in progress")
        job.write()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=9465, help="port of the sidecar (default 9465)")
    parser.add_argument("--jobs-dir", type=Path, default=None, help="where to write the demo jobs (default: temp)")


def run(args: argparse.Namespace) -> int:
    base = Path(args.jobs_dir) if args.jobs_dir else Path(tempfile.mkdtemp(prefix="aura-demo-")) / "jobs"
    base.mkdir(parents=True, exist_ok=True)
    healthy = write_examples(base, time.time())
    stop = threading.Event()
    mover = threading.Thread(target=keep_moving, args=(healthy, stop), daemon=True)
    mover.start()
    settings = load_settings(jobs_dir=base, port=args.port)
    configure_logging("warning")
    print(
        f"demo jobs written to {base} (Aura's on-disk format); demo-tts-stalled is stalled, "
        "demo-render-95 is finalizing, demo-healthy moves every second"
    )
    try:
        run_server(settings)
    finally:
        stop.set()
    return 0

"""Real media and real encoder processes for diagnosis tests (ffmpeg from Debian)."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support import STARTUP_S, wait_for

FFMPEG = "ffmpeg"


def render(
    out: Path, seconds: float, *, faststart: bool = True, log: Path | None = None, progress: Path | None = None
) -> Path:
    """Render a small real MP4 (video + audio); stderr goes to `log` as Aura keeps it."""
    args = [
        FFMPEG,
        "-hide_banner",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x90:rate=15",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440",
        "-t",
        str(seconds),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
    ]
    if faststart:
        args += ["-movflags", "+faststart"]
    if progress:
        args += ["-progress", str(progress)]
    args.append(str(out))
    with open(log or os.devnull, "wb") as err:
        subprocess.run(args, stderr=err, stdout=subprocess.DEVNULL, check=True, timeout=60)
    return out


def truncate(path: Path, fraction: float) -> Path:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(int(size * fraction))
    return path


@dataclass
class LiveEncoder:
    """A real ffmpeg rendering in real time, writing its stderr log and -progress file as it goes."""

    process: subprocess.Popen[bytes]
    output: Path
    log: Path
    progress: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
        self.process.wait(timeout=10)


def start_encoder(folder: Path, name: str, seconds: int = 120) -> LiveEncoder:
    folder.mkdir(parents=True, exist_ok=True)
    output, log, progress = folder / f"{name}.mp4", folder / f"{name}.log", folder / f"{name}.progress"
    args = [
        FFMPEG,
        "-hide_banner",
        "-y",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x90:rate=15",
        "-t",
        str(seconds),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        # Write each packet as it is made, as a real-rate encoder's output grows: without it the mp4 muxer
        # holds ~256 KB (10 s of this tiny video), the output looks still, and a diagnosis can call the
        # encoder hung whenever its CPU sample (10 ms ticks, 0.15 s window) reads 0 (seen under load).
        "-flush_packets",
        "1",
        "-stats_period",
        "0.2",
        "-progress",
        str(progress),
        str(output),
    ]
    with open(log, "wb") as err:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    encoder = LiveEncoder(process, output, log, progress)
    wait_for(
        lambda: (
            progress.exists()
            and b"out_time_us=" in progress.read_bytes()
            and output.exists()
            and output.stat().st_size > 0
        ),
        timeout=STARTUP_S,
        what=f"{name} encoder running",
    )
    return encoder

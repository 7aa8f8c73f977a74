"""Where one job's files live: record, logs, requests, claim, stage work files, final output."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..jobs.model import validate_job_id
from ..reporter import JOB_LOG_NAME, RECORD_NAME


def default_output_dir(jobs_dir: Path) -> Path:
    """Finished videos go beside the jobs dir, as Aura writes them outside the job folder."""
    return jobs_dir.parent / "output"


@dataclass(frozen=True, slots=True)
class JobWorkspace:
    """The paths of one job; nothing outside `<jobs dir>/<job id>/` and the output dir is touched."""

    jobs_dir: Path
    job_id: str
    output_dir: Path

    @classmethod
    def of(cls, jobs_dir: Path, job_id: str, output_dir: Path | None = None) -> JobWorkspace:
        validate_job_id(job_id)
        jobs_dir = jobs_dir.absolute()  # records carry paths other processes must resolve alike
        return cls(jobs_dir, job_id, (output_dir or default_output_dir(jobs_dir)).absolute())

    @property
    def job_dir(self) -> Path:
        return self.jobs_dir / self.job_id

    @property
    def record(self) -> Path:
        return self.job_dir / RECORD_NAME

    @property
    def job_log(self) -> Path:
        return self.job_dir / JOB_LOG_NAME

    @property
    def work_dir(self) -> Path:
        return self.job_dir / "work"

    @property
    def logs_dir(self) -> Path:
        return self.job_dir / "logs"

    @property
    def claim(self) -> Path:
        return self.job_dir / "claim.lock"

    @property
    def process_log(self) -> Path:
        """Where a worker sends the render process's own stdout and stderr."""
        return self.logs_dir / "render-process.log"

    @property
    def output(self) -> Path:
        return self.output_dir / f"{self.job_id}.mp4"

    def work(self, name: str) -> Path:
        return self.work_dir / name

    @property
    def script(self) -> Path:
        return self.work("script.json")

    def caption(self, index: int) -> Path:
        return self.work(f"scene-{index + 1:02d}.txt")

    @property
    def narration(self) -> Path:
        return self.work("narration.wav")

    def voice(self, index: int) -> Path:
        return self.work(f"voice-{index + 1:02d}.wav")

    @property
    def timeline(self) -> Path:
        return self.work("timeline.json")

    def scene(self, index: int) -> Path:
        return self.work(f"scene-{index + 1:02d}.png")

    @property
    def render_output(self) -> Path:
        return self.work("render.mp4")

    @property
    def faststart_output(self) -> Path:
        return self.work("final.mp4")

    def encoder_log(self, stage: str) -> Path:
        return self.logs_dir / f"{stage.lower()}.ffmpeg.log"

    def encoder_progress(self, stage: str) -> Path:
        return self.logs_dir / f"{stage.lower()}.progress"

    def prepare(self) -> None:
        self.work_dir.mkdir(exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)

    def temporary_files(self, keep: Iterable[Path]) -> list[Path]:
        """Work files that belong to no completed stage: partial encodes and scratch files."""
        kept = {path.resolve() for path in keep}
        if not self.work_dir.is_dir():
            return []
        return sorted(path for path in self.work_dir.iterdir() if path.is_file() and path.resolve() not in kept)

    def remove_temporary_files(self, keep: Iterable[Path]) -> list[Path]:
        removed = []
        for path in self.temporary_files(keep):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
        return removed

"""What a stage works with: the job's request, files, reporter, encoder tools, clock and cancel watch."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..reporter import JobReporter, JobRun, PipelineMetrics, StageError, StageRun
from .faults import FaultPlan
from .ffmpeg import FfmpegTools
from .request import RenderRequest
from .workspace import JobWorkspace


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    """Timings of the runner; production defaults, tests shorten them."""

    stop_grace_s: float = 5.0
    heartbeat_interval_s: float = 1.0
    poll_interval_s: float = 0.1
    max_hang_s: float = 600.0


@dataclass(slots=True)
class StageContext:
    """Handed to each stage function; its helpers keep cancel checks and heartbeats in one place."""

    request: RenderRequest
    plan: FaultPlan
    workspace: JobWorkspace
    reporter: JobReporter
    stage: StageRun
    tools: FfmpegTools
    settings: RunnerSettings
    clock: Clock
    run: JobRun
    metrics: PipelineMetrics | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def check_cancelled(self) -> None:
        """Raise JobCancelled on a cancel request, StageError when this process was told to stop."""
        interruption = self.run.cancel.interruption if self.run.cancel is not None else None
        if interruption is not None:
            raise StageError(f"interrupted: {interruption}", code="E499-INTERRUPTED")
        self.run.check_cancelled()

    def keep_alive(self) -> None:
        """Heartbeat when nothing was written for a heartbeat interval."""
        if self.clock.now() - self.reporter.last_write_at >= self.settings.heartbeat_interval_s:
            self.reporter.heartbeat()

    def pause(self, seconds: float) -> None:
        """Wait `seconds` while staying cancellable and alive."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.check_cancelled()
            self.keep_alive()
            time.sleep(min(left, self.settings.poll_interval_s))

    def read_json(self, path: Path) -> dict[str, Any]:
        """An artifact an earlier stage (or attempt) wrote; a missing or broken one fails the stage."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StageError(f"{self.stage.name} cannot read {path.name}: {exc}", code="E500-ARTIFACT_MISSING") from exc
        if not isinstance(data, dict):
            raise StageError(f"{path.name} does not hold an object", code="E500-ARTIFACT_MISSING")
        return data

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")

"""The reference render pipeline: real ffmpeg stages reporting through the SDK, a worker, faults."""

from __future__ import annotations

from .context import RunnerSettings, StageContext
from .enqueue import enqueue_job
from .errors import JobAlreadyClaimed, JobNotRunnable, PipelineError
from .faults import FAULT_EFFECTS, Fault, FaultPlan
from .ffmpeg import FfmpegTools
from .request import RenderRequest
from .runner import run_job
from .worker import Worker, WorkerSettings
from .workspace import JobWorkspace, default_output_dir

__all__ = [
    "FAULT_EFFECTS",
    "Fault",
    "FaultPlan",
    "FfmpegTools",
    "JobAlreadyClaimed",
    "JobNotRunnable",
    "JobWorkspace",
    "PipelineError",
    "RenderRequest",
    "RunnerSettings",
    "StageContext",
    "Worker",
    "WorkerSettings",
    "default_output_dir",
    "enqueue_job",
    "run_job",
]

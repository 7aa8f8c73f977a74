"""The reporter SDK: what a Python render pipeline imports to be monitored and diagnosed precisely.

reporter = JobReporter.create(jobs_dir, "job-1", clock=SystemClock())
with JobRun(reporter, clock=clock, tracer_provider=provider, metrics=metrics) as run:
    with run.stage("Render") as stage:
        stage.progress(0.5)
    run.complete(output_path)
"""

from __future__ import annotations

from ..exceptions import JobCancelled
from ..jobs.stages import AURA_STAGE_RANGES, PIPELINE_STAGES, StageRange
from ..otel import context_from_traceparent, traceparent_of, tracer_provider_from_env
from ..records.atomic import write_atomically
from ..records.layout import RECORD_NAME, REQUESTS_DIR
from ..records.requests import (
    CancelWatch,
    ControlAction,
    ControlRequest,
    acknowledge,
    read_request,
    request_age,
    request_path,
    write_request,
)
from .metrics import Outcome, PipelineMetrics
from .record import EncoderInfo, JobError, NativeRecord, StageState, StageStatus
from .reporter import JOB_LOG_NAME, JobReporter
from .run import JobRun, StageError, StageRun

__all__ = [
    "AURA_STAGE_RANGES",
    "JOB_LOG_NAME",
    "PIPELINE_STAGES",
    "RECORD_NAME",
    "REQUESTS_DIR",
    "CancelWatch",
    "ControlAction",
    "ControlRequest",
    "EncoderInfo",
    "JobCancelled",
    "JobError",
    "JobReporter",
    "JobRun",
    "NativeRecord",
    "Outcome",
    "PipelineMetrics",
    "StageError",
    "StageRange",
    "StageRun",
    "StageState",
    "StageStatus",
    "acknowledge",
    "context_from_traceparent",
    "read_request",
    "request_age",
    "request_path",
    "traceparent_of",
    "tracer_provider_from_env",
    "write_atomically",
    "write_request",
]

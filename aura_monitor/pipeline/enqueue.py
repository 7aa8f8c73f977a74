"""Putting a job in the queue: a new job directory with a `queued` native record."""

from __future__ import annotations

import uuid
from pathlib import Path

from ..clock import Clock
from ..exceptions import ReporterError
from ..reporter import PIPELINE_STAGES, JobReporter
from .errors import PipelineError
from .queue import DEFAULT_PRIORITY
from .request import RenderRequest


def enqueue_job(
    jobs_dir: Path,
    request: RenderRequest,
    *,
    clock: Clock,
    priority: int = DEFAULT_PRIORITY,
    job_id: str | None = None,
) -> str:
    """Queue a render of `request`; returns the job id (a new lowercase GUID unless one is given)."""
    request.validated()
    job_id = job_id or str(uuid.uuid4())
    try:
        JobReporter.create(
            jobs_dir,
            job_id,
            clock=clock,
            priority=priority,
            request=request.to_json(),
            expected_duration_s=request.duration_s,
            stages=PIPELINE_STAGES,
        )
    except ReporterError as exc:
        raise PipelineError(f"cannot enqueue job {job_id}: {exc}") from None
    return job_id

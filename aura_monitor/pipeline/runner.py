"""Running one attempt of one queued job through the stages, resuming after the last completed one."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.trace import TracerProvider

from ..clock import Clock
from ..exceptions import ConfigError, JobCancelled, ReporterError
from ..jobs.model import JobStatus
from ..reporter import CancelWatch, JobReporter, JobRun, Outcome, PipelineMetrics, StageError, StageStatus
from .context import RunnerSettings, StageContext
from .errors import JobNotRunnable
from .ffmpeg import FfmpegTools
from .request import RenderRequest
from .stages import STAGES
from .workspace import JobWorkspace


def reusable_artifacts(reporter: JobReporter, stage: str) -> list[Path] | None:
    """The artifacts of a stage an earlier attempt completed, if every one of them is still there."""
    if reporter.stage_status(stage) is not StageStatus.COMPLETED:
        return None
    artifacts = reporter.stage_artifacts(stage)
    return artifacts if artifacts and all(path.is_file() for path in artifacts) else None


def run_job(
    workspace: JobWorkspace,
    *,
    clock: Clock,
    tools: FfmpegTools,
    settings: RunnerSettings | None = None,
    tracer_provider: TracerProvider | None = None,
    metrics: PipelineMetrics | None = None,
    cancel: CancelWatch | None = None,
) -> JobStatus:
    """Render a queued job in this process and return the status its record ends with.

    A failure or cancel is recorded (error, temporary files removed) and returned, not raised. With the
    crash-worker fault this process kills itself, as a crashing worker does; run such jobs in a child
    process (`aura-monitor render`).
    """
    settings = settings or RunnerSettings()
    reporter = JobReporter.load(workspace.jobs_dir, workspace.job_id, clock=clock)
    if reporter.status is not JobStatus.QUEUED:
        raise JobNotRunnable(f"job {workspace.job_id} is {reporter.status.value}; only a queued job can be rendered")
    workspace.prepare()
    cancel = cancel or CancelWatch(workspace.job_dir, clock=clock, interval=settings.poll_interval_s)
    kept: list[Path] = []
    try:
        with JobRun(reporter, clock=clock, tracer_provider=tracer_provider, metrics=metrics, cancel=cancel) as run:
            try:
                request = _request(reporter)
                for name, function in STAGES:
                    reused = reusable_artifacts(reporter, name)
                    if reused is not None:
                        reporter.skip_stage(name, f"completed by an earlier attempt; reusing {len(reused)} artifacts")
                        if metrics is not None:
                            metrics.observe_stage(name, Outcome.SKIPPED, None)
                        kept.extend(reused)
                        continue
                    with run.stage(name) as stage:
                        ctx = StageContext(
                            request=request,
                            plan=request.fault_plan,
                            workspace=workspace,
                            reporter=reporter,
                            stage=stage,
                            tools=tools,
                            settings=settings,
                            clock=clock,
                            run=run,
                            metrics=metrics,
                        )
                        ctx.check_cancelled()
                        for artifact in function(ctx):
                            stage.add_artifact(artifact)
                    kept.extend(stage.artifacts)
            except BaseException:
                # Before the terminal write, so whoever sees the job end also sees no leftovers.
                workspace.remove_temporary_files(keep=kept)
                raise
            if request.fault_plan.drops_completion:
                return reporter.status  # the terminal write is lost: the record stays running at 99 %
            run.complete(workspace.output)
    except JobCancelled:
        pass  # recorded by JobRun: status cancelled, request acknowledged
    except ReporterError:
        raise  # the record itself could not be written: the caller must hear about it
    except Exception:
        if not _recorded_failure(reporter):
            raise
        # otherwise JobRun recorded it: status failed, with the error
    return reporter.status


def _recorded_failure(reporter: JobReporter) -> bool:
    return reporter.status is JobStatus.FAILED


def _request(reporter: JobReporter) -> RenderRequest:
    try:
        return RenderRequest.from_json(reporter.request)
    except ConfigError as exc:
        raise StageError(str(exc), code="E400-VALIDATION") from None

"""One attempt of a job: its trace span, one child span and metric sample per stage, its outcome."""

from __future__ import annotations

import traceback
from pathlib import Path
from types import TracebackType

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, TracerProvider

from ..clock import Clock
from ..exceptions import AuraMonitorError, JobCancelled
from ..jobs.stages import AURA_STAGE_RANGES, StageRange
from ..otel import context_from_traceparent, traceparent_of
from ..records.requests import CancelWatch, acknowledge
from .metrics import Outcome, PipelineMetrics
from .record import StageStatus
from .reporter import JobReporter

TRACER_NAME = "aura_monitor.reporter"


class StageError(AuraMonitorError):
    """A stage failed for a known reason; `code` lands in the record's `error.code`."""

    def __init__(self, message: str, *, code: str = "E500-STAGE_FAILED", stderr_tail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.stderr_tail = stderr_tail


class JobRun:
    """Context manager for one attempt: running on entry; failed, cancelled or flushed on exit.

    Entering opens the job span (continuing the trace in the record's traceparent on a retry) and
    marks the job running; `stage()` opens a stage; `complete()` makes the terminal write. Leaving
    with JobCancelled ends the job cancelled (and deletes the honoured cancel request), with any other
    exception failed (then re-raises), and leaving normally without `complete()` only flushes: the
    record stays non-terminal. With a CancelWatch, `check_cancelled()` raises JobCancelled once the
    sidecar asked for a cancel.
    """

    def __init__(
        self,
        reporter: JobReporter,
        *,
        clock: Clock,
        tracer_provider: TracerProvider | None = None,
        metrics: PipelineMetrics | None = None,
        worker_pid: int | None = None,
        cancel: CancelWatch | None = None,
    ) -> None:
        self.reporter = reporter
        self.cancel = cancel
        self.metrics = metrics
        self._clock = clock
        self._tracer = (tracer_provider or trace.NoOpTracerProvider()).get_tracer(TRACER_NAME)
        self._worker_pid = worker_pid
        self._span: trace.Span = trace.INVALID_SPAN
        self._current_stage: str | None = None
        self.outcome: Outcome | None = None

    @property
    def tracer(self) -> trace.Tracer:
        return self._tracer

    @property
    def span(self) -> trace.Span:
        return self._span

    def __enter__(self) -> JobRun:
        reporter = self.reporter
        self._span = self._tracer.start_span(
            "job",
            context=context_from_traceparent(reporter.traceparent),
            attributes={"aura.job.id": reporter.job_id, "aura.job.attempt": reporter.attempt},
        )
        traceparent = traceparent_of(self._span) if self._span.get_span_context().is_valid else None
        reporter.start(worker_pid=self._worker_pid, traceparent=traceparent)
        return self

    def stage(self, name: str, span: StageRange | None = None) -> StageRun:
        """A stage of this attempt; `span` is its slice of the overall percent (Aura's for known names)."""
        known = AURA_STAGE_RANGES.get(name)
        here = self.reporter.percent
        return StageRun(self, name, span or known or StageRange(here, here), clock=self._clock)

    def check_cancelled(self) -> None:
        """Raise JobCancelled when a cancel request is waiting (cheap: one stat per watch interval)."""
        if self.cancel is not None and self.cancel.requested():
            request = self.cancel.pending()
            who = f" by {request.by}" if request is not None and request.by else ""
            where = f" during {self._current_stage}" if self._current_stage else ""
            raise JobCancelled(f"cancelled on request{who}{where}")

    def complete(self, output_path: str | Path | None = None) -> None:
        self.reporter.complete(output_path)
        self._span.add_event("job completed")
        self.outcome = Outcome.COMPLETED
        if self.metrics is not None:
            self.metrics.observe_job(Outcome.COMPLETED)

    def _stage_entered(self, name: str | None) -> None:
        self._current_stage = name

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        reporter = self.reporter
        try:
            if isinstance(exc, JobCancelled):
                self.outcome = Outcome.CANCELLED
                self._span.add_event("job cancelled", {"reason": str(exc)})
                # Not a crash, but the job did not do its work: the trace shows it in error, with why.
                self._span.set_status(Status(StatusCode.ERROR, f"cancelled: {exc}"[:200]))
                reporter.cancel(str(exc) or "cancelled on request")
                pending = self.cancel.pending() if self.cancel is not None else None
                if pending is not None:
                    acknowledge(pending)
            elif isinstance(exc, Exception):
                self.outcome = Outcome.FAILED
                self._span.record_exception(exc)
                self._span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
                if isinstance(exc, StageError):
                    code, message, tail = exc.code, str(exc), exc.stderr_tail
                else:
                    code, message = "E500-UNEXPECTED", f"{type(exc).__name__}: {exc}"
                    tail = "".join(traceback.format_exception(exc))[-2000:]
                reporter.fail(code, message, stage=self._current_stage or reporter.stage, stderr_tail=tail)
            elif exc is None:
                reporter.flush()
            if self.metrics is not None and self.outcome in (Outcome.CANCELLED, Outcome.FAILED):
                self.metrics.observe_job(self.outcome)
        finally:
            self._span.end()


class StageRun:
    """Context manager for one stage: a child span, the stage's record entry and its metric samples."""

    def __init__(self, job: JobRun, name: str, span: StageRange, *, clock: Clock) -> None:
        self.job = job
        self.name = name
        self.range = span
        self._clock = clock
        self._span: trace.Span = trace.INVALID_SPAN
        self._started = 0.0
        self.artifacts: list[Path] = []

    @property
    def span(self) -> trace.Span:
        return self._span

    def __enter__(self) -> StageRun:
        job = self.job
        reporter = job.reporter
        self._span = job.tracer.start_span(
            self.name,
            context=trace.set_span_in_context(job.span),
            attributes={
                "aura.job.id": reporter.job_id,
                "aura.stage": self.name,
                "aura.job.attempt": reporter.attempt,  # the same key as the job span's (and the sidecar's)
            },
        )
        self._started = self._clock.now()
        job._stage_entered(self.name)
        reporter.begin_stage(self.name, percent=self.range.start)
        return self

    def progress(self, fraction: float, message: str | None = None) -> None:
        """The stage is `fraction` (0..1) done; the overall percent follows the stage's range."""
        bounded = min(1.0, max(0.0, fraction))
        self.job.reporter.update(percent=self.range.at(bounded), stage_percent=bounded * 100, message=message)

    def milestone(self, name: str, **attributes: str | int | float | bool) -> None:
        """A span event; keep these few (continuous progress belongs to metrics and the record)."""
        self._span.add_event(name, attributes)
        self.job.reporter.log(f"{self.name}: {name}")

    def add_artifact(self, path: str | Path) -> None:
        self.artifacts.append(Path(path))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        reporter = self.job.reporter
        seconds = self._clock.now() - self._started
        if exc is None:
            outcome, status = Outcome.COMPLETED, StageStatus.COMPLETED
        elif isinstance(exc, JobCancelled):
            # A cancelled stage did not fail: it is simply not done, and a retry runs it again.
            outcome, status = Outcome.CANCELLED, StageStatus.PENDING
            self._span.add_event("stage cancelled")
            self._span.set_status(Status(StatusCode.ERROR, f"cancelled: {exc}"[:200]))
        else:
            outcome, status = Outcome.FAILED, StageStatus.FAILED
            self._span.record_exception(exc)
            self._span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
        self._span.set_attribute("aura.stage.outcome", outcome.value)
        try:
            if self.job.metrics is not None:
                self.job.metrics.observe_stage(self.name, outcome, seconds)
            reporter.end_stage(self.name, status, self.artifacts if status is StageStatus.COMPLETED else ())
        finally:
            self._span.end()

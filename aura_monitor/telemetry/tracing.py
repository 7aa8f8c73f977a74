"""Spans from transitions: one per stall, one per explain call, and stage spans for writers without traces.

A stall span starts when a job is flagged stalled and ends when it recovers, ends or disappears. It joins
the job's own trace through the record's W3C `traceparent` (native writers). Aura writes no trace, so for
such jobs the sidecar synthesizes one from what it observes: a `job` span with one child span per stage,
each ended at the stage change, the job span ended at the terminal status; stalls then nest in the stage
they happened in. Times are the transitions' own, so spans say when things happened, not when exported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.trace import Link, Span, SpanContext, Status, StatusCode

from .. import __version__
from ..jobs.model import JobRecord, JobStatus
from ..jobs.stages import stage_key
from ..jobs.tracker import JobState
from ..jobs.transitions import Transition, TransitionKind
from ..jobs.verdicts import Verdict
from ..otel import context_from_traceparent, tracer_provider_from_env

JobLookup = Callable[[str], JobState | None]

STALL_SPAN = "stall"
EXPLAIN_SPAN = "explain"
JOB_SPAN = "job"


def setup_tracing(service_name: str = "aura-monitor", environ: Mapping[str, str] | None = None) -> SdkTracerProvider:
    """A provider set up from OTEL_TRACES_EXPORTER (otlp|console|none), OTEL_EXPORTER_OTLP_ENDPOINT and
    OTEL_SERVICE_NAME, read here because the SDK honours them only through its auto-configurator.

    Unset, the exporter is `otlp` when an OTLP endpoint is configured and `none` otherwise. The global
    provider is left alone; the caller owns the provider and calls `shutdown()` to flush it on exit.
    """
    return tracer_provider_from_env(environ, default_service=service_name)


def _ns(at: float) -> int:
    return int(at * 1e9)


@dataclass(slots=True)
class _SynthesizedTrace:
    """The spans made up for a job whose writer traces nothing."""

    job: Span
    stage: Span | None = None


class JobTracer:
    """Turns the tracker's transitions into spans; subscribe `observe` to the tracker.

    `observe` runs under the tracker lock: it only starts, annotates and ends spans, which a batching
    span processor turns into queue appends (export happens on the processor's thread).
    """

    def __init__(self, provider: trace.TracerProvider, lookup: JobLookup, *, synthesize_stages: bool = True) -> None:
        self._tracer = provider.get_tracer("aura_monitor", __version__)
        self._lookup = lookup
        self._synthesize = synthesize_stages
        self._lock = threading.Lock()
        self._stalls: dict[str, Span] = {}
        self._traces: dict[str, _SynthesizedTrace] = {}

    # -- the tracker's listener ----------------------------------------------------------------
    def observe(self, batch: Sequence[Transition]) -> None:
        with self._lock:
            for t in batch:
                match t.kind:
                    case TransitionKind.DISCOVERED:
                        self._on_discovered(t)
                    case TransitionKind.STATUS:
                        self._on_status(t)
                    case TransitionKind.STAGE:
                        self._on_stage(t)
                    case TransitionKind.STALLED:
                        self._on_stalled(t)
                    case TransitionKind.VERDICT:
                        self._on_verdict(t)
                    case TransitionKind.RECOVERED:
                        self._end_stall(t.job_id, t.reason, t.at, t.elapsed)
                    case TransitionKind.REMOVED:
                        self._on_removed(t)

    def _on_discovered(self, t: Transition) -> None:
        state = self._lookup(t.job_id)
        if state is None or state.record is None or state.record.status.terminal:
            return
        start = min(
            (at for at in (state.record.started_at, state.record.created_at, state.record.queued_at) if at),
            default=state.first_seen,
        )
        self._start_trace(state, state.record, min(start, t.at), state.stage_since or t.at)

    def _on_status(self, t: Transition) -> None:
        status = t.new_status
        if status is None:
            return
        synthesized = self._traces.get(t.job_id)
        if status.terminal:
            if synthesized is not None:
                self._end_trace(t.job_id, synthesized, status, t)
            return
        if t.old_status is not None and t.old_status.terminal and synthesized is None:
            state = self._lookup(t.job_id)
            if state is not None and state.record is not None:
                self._start_trace(state, state.record, t.at, t.at)  # a retry: a new attempt, a new trace

    def _on_stage(self, t: Transition) -> None:
        synthesized = self._traces.get(t.job_id)
        if synthesized is None:
            return
        if synthesized.stage is not None:
            synthesized.stage.end(_ns(t.at))
        synthesized.stage = self._start_stage(t.job_id, synthesized.job, t.new or "", t.at)

    def _on_stalled(self, t: Transition) -> None:
        state = self._lookup(t.job_id)
        record = state.record if state is not None else None
        if state is None or record is None or t.job_id in self._stalls:
            return
        attributes: dict[str, str | float | int] = {
            "aura.job.id": t.job_id,
            "aura.stage": record.stage,
            "aura.stage.key": stage_key(record.stage),
            "aura.job.percent": record.percent,
            "aura.stall.verdict": t.new or Verdict.NO_PROGRESS.value,
            "aura.stall.reason": t.reason,
        }
        if state.threshold is not None:
            attributes["aura.stall.threshold_seconds"] = state.threshold
        if state.threshold_kind is not None:
            attributes["aura.stall.threshold_kind"] = state.threshold_kind.value
        self._stalls[t.job_id] = self._tracer.start_span(
            STALL_SPAN,
            context=self._parent_context(t.job_id, record),
            attributes=attributes,
            start_time=_ns(min(state.stalled_since or t.at, t.at)),
        )

    def _on_verdict(self, t: Transition) -> None:
        span = self._stalls.get(t.job_id)
        if span is not None and t.new is not None:
            span.set_attribute("aura.stall.verdict", t.new)

    def _on_removed(self, t: Transition) -> None:
        self._end_stall(t.job_id, t.reason, t.at, None)
        synthesized = self._traces.pop(t.job_id, None)
        if synthesized is not None:
            for span in (synthesized.stage, synthesized.job):
                if span is not None:
                    span.set_attribute("aura.job.removed", True)
                    span.end(_ns(t.at))

    # -- explain -------------------------------------------------------------------------------
    @contextmanager
    def explain_span(self, job_id: str) -> Iterator[Span]:
        """A span around one explain call, in the caller's trace, linked to the job's trace."""
        links = []
        job_context = self._job_span_context(job_id)
        if job_context is not None:
            links.append(Link(job_context))
        with self._tracer.start_as_current_span(EXPLAIN_SPAN, links=links, attributes={"aura.job.id": job_id}) as span:
            yield span

    def close(self, at: float) -> None:
        """End every open span (the sidecar stops); the provider's owner flushes it afterwards."""
        with self._lock:
            for span in self._stalls.values():
                span.set_attribute("aura.stall.outcome", "sidecar stopped")
                span.end(_ns(at))
            self._stalls.clear()
            for synthesized in self._traces.values():
                for open_span in (synthesized.stage, synthesized.job):
                    if open_span is not None:
                        open_span.end(_ns(at))
            self._traces.clear()

    # -- internals -----------------------------------------------------------------------------
    def _start_trace(self, state: JobState, record: JobRecord, job_start: float, stage_start: float) -> None:
        if not self._synthesize or record.traceparent or state.id in self._traces:
            return
        job = self._tracer.start_span(
            JOB_SPAN,
            context=Context(),  # a root: never the ambient span of whatever thread ingests the record
            attributes={
                "aura.job.id": state.id,
                "aura.job.attempt": record.attempt,
                "aura.job.format": record.format.value,
                "aura.synthesized": True,
            },
            start_time=_ns(job_start),
        )
        self._traces[state.id] = _SynthesizedTrace(job, self._start_stage(state.id, job, record.stage, stage_start))

    def _start_stage(self, job_id: str, job: Span, stage: str, at: float) -> Span:
        return self._tracer.start_span(
            stage or "unknown",
            context=trace.set_span_in_context(job),
            attributes={
                "aura.job.id": job_id,
                "aura.stage": stage,
                "aura.stage.key": stage_key(stage),
                "aura.synthesized": True,
            },
            start_time=_ns(at),
        )

    def _end_trace(self, job_id: str, synthesized: _SynthesizedTrace, status: JobStatus, t: Transition) -> None:
        del self._traces[job_id]
        if synthesized.stage is not None:
            synthesized.stage.end(_ns(t.at))
        synthesized.job.set_attribute("aura.job.status", status.value)
        if status is JobStatus.FAILED:
            synthesized.job.set_status(Status(StatusCode.ERROR, t.reason[:200]))
        synthesized.job.end(_ns(t.at))

    def _end_stall(self, job_id: str, outcome: str, at: float, elapsed: float | None) -> None:
        span = self._stalls.pop(job_id, None)
        if span is None:
            return
        span.set_attribute("aura.stall.outcome", outcome)
        if elapsed is not None:
            span.set_attribute("aura.stall.duration_seconds", elapsed)
        span.end(_ns(at))

    def _parent_context(self, job_id: str, record: JobRecord) -> Context:
        """The writer's trace when the record names one, else the synthesized stage (or job), else a root."""
        from_record = context_from_traceparent(record.traceparent)
        if from_record is not None:
            return from_record
        synthesized = self._traces.get(job_id)
        if synthesized is not None:
            return trace.set_span_in_context(synthesized.stage or synthesized.job)
        return Context()

    def _job_span_context(self, job_id: str) -> SpanContext | None:
        state = self._lookup(job_id)
        record = state.record if state is not None else None
        if record is not None:
            from_record = context_from_traceparent(record.traceparent)
            if from_record is not None:
                return trace.get_current_span(from_record).get_span_context()
        with self._lock:
            synthesized = self._traces.get(job_id)
            return synthesized.job.get_span_context() if synthesized is not None else None

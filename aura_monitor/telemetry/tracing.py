"""Spans from transitions: one per stall, one per explain call, and stage spans for writers without traces.

A stall span starts when a job is flagged stalled and ends when it recovers, ends or disappears; a short
`stall.detected` span, linked to it and ended at once, is exported as the stall starts (a span is exported
only when it ends, and a job stuck for an hour must show in the tracing UI now). Both join the job's own
trace through the record's W3C `traceparent` (native writers). One trace per job: the sidecar synthesizes
one only for a job whose record names none (Aura; a native writer without tracing): a `job` span with one
child span per stage, each ended at the stage change, the job span ended at the terminal status; stalls
then nest in the stage they happened in. A native job is first seen queued, before its worker stamps the
traceparent, so its synthesis waits while it is queued and then a bounded `traceparent_wait`, replaying
the stages seen meanwhile. Times are the transitions' own, so spans say when things happened, not when
they were exported. docs/operations.md ("Traces") lists the spans and their attributes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.trace import Link, Span, SpanContext, Status, StatusCode

from .. import __version__
from ..jobs.model import JobRecord, JobStatus, RecordFormat
from ..jobs.stages import stage_key
from ..jobs.tracker import JobState
from ..jobs.transitions import Transition, TransitionKind
from ..jobs.verdicts import Verdict
from ..otel import context_from_traceparent, tracer_provider_from_env

JobLookup = Callable[[str], JobState | None]

STALL_SPAN = "stall"
STALL_DETECTED_SPAN = "stall.detected"
EXPLAIN_SPAN = "explain"
JOB_SPAN = "job"
# How long a running native job may go without a traceparent before the sidecar traces it itself.
TRACEPARENT_WAIT_SECONDS = 5.0
_ENDED = {JobStatus.FAILED: "failed", JobStatus.CANCELLED: "cancelled"}


def setup_tracing(service_name: str = "aura-monitor") -> SdkTracerProvider:
    """A provider configured by the OTEL_* variables (aura_monitor.otel), named `service_name` unless
    OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise. The global provider is left alone; the
    caller owns the provider and calls `shutdown()` to flush it on exit."""
    return tracer_provider_from_env(default_service=service_name)


def _ns(at: float) -> int:
    return int(at * 1e9)


@dataclass(slots=True)
class _SynthesizedTrace:
    """The spans made up for a job whose writer traces nothing."""

    job: Span
    stage: Span | None = None


@dataclass(slots=True)
class _Awaiting:
    """A native job whose traceparent is not stamped yet: what its synthesized trace would replay."""

    job_start: float
    stages: list[tuple[str, float]] = field(default_factory=list)
    deadline: float | None = None  # None while queued: the worker stamps the traceparent as it starts


class JobTracer:
    """Turns the tracker's transitions into spans; subscribe `observe` to the tracker.

    `observe` runs under the tracker lock: it only starts, annotates and ends spans, which a batching
    span processor turns into queue appends (export happens on the processor's thread).
    """

    def __init__(
        self,
        provider: trace.TracerProvider,
        lookup: JobLookup,
        *,
        synthesize_stages: bool = True,
        traceparent_wait: float = TRACEPARENT_WAIT_SECONDS,
    ) -> None:
        self._tracer = provider.get_tracer("aura_monitor", __version__)
        self._lookup = lookup
        self._synthesize = synthesize_stages
        self._wait = traceparent_wait
        self._lock = threading.Lock()
        self._stalls: dict[str, Span] = {}
        self._traces: dict[str, _SynthesizedTrace] = {}
        self._awaiting: dict[str, _Awaiting] = {}

    # -- the tracker's listener ----------------------------------------------------------------
    def observe(self, batch: Sequence[Transition]) -> None:
        with self._lock:
            for t in batch:
                if t.kind is not TransitionKind.DISCOVERED:
                    self._settle(t)
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
        record = state.record
        start = min(
            (at for at in (record.started_at, record.created_at, record.queued_at) if at), default=state.first_seen
        )
        if record.format is RecordFormat.NATIVE and not record.traceparent and self._synthesize:
            awaiting = _Awaiting(min(start, t.at), [(record.stage, state.stage_since or t.at)])
            if record.status is not JobStatus.QUEUED:
                awaiting.deadline = t.at + self._wait
            self._awaiting[t.job_id] = awaiting
            return
        self._start_trace(state, record, min(start, t.at), state.stage_since or t.at)

    def _settle(self, t: Transition) -> None:
        """Before a transition: a native job's wait for its traceparent ends (stamped, or the wait is over)."""
        state = self._lookup(t.job_id)
        record = state.record if state is not None else None
        if record is not None and record.traceparent:
            self._awaiting.pop(t.job_id, None)
            synthesized = self._traces.pop(t.job_id, None)
            if synthesized is not None:  # the writer traces after all (a late stamp): end ours, never two
                self._close_trace(synthesized, t.at, "aura.trace.superseded")
            return
        awaiting = self._awaiting.get(t.job_id)
        if awaiting is None or state is None or record is None:
            return
        status = t.new_status if t.kind is TransitionKind.STATUS else None
        if awaiting.deadline is None and status is not None and status is not JobStatus.QUEUED:
            awaiting.deadline = t.at + self._wait
        ran = awaiting.deadline is not None
        due = awaiting.deadline is not None and t.at >= awaiting.deadline
        ended = (status is not None and status.terminal) or (ran and t.kind is TransitionKind.REMOVED)
        # A stall or an end needs the trace now: its span must have a parent to join, its job a record.
        if due or ended or t.kind is TransitionKind.STALLED:
            del self._awaiting[t.job_id]
            self._replay(state, record, awaiting)  # this transition then lands on the trace as usual
        elif t.kind is TransitionKind.STAGE:
            awaiting.stages.append((str(t.new or ""), t.at))

    def _replay(self, state: JobState, record: JobRecord, awaiting: _Awaiting) -> None:
        """The synthesized trace of a job that waited for a traceparent, back-dated to what was seen."""
        (first, first_at), *later = awaiting.stages
        self._start_trace(state, record, min(awaiting.job_start, first_at), first_at, stage=first)
        synthesized = self._traces.get(state.id)
        if synthesized is None:
            return
        for stage, at in later:
            if synthesized.stage is not None:
                synthesized.stage.end(_ns(at))
            synthesized.stage = self._start_stage(state.id, synthesized.job, stage, at)

    def _on_status(self, t: Transition) -> None:
        status = t.new_status
        if status is None:
            return
        synthesized = self._traces.get(t.job_id)
        if status.terminal:
            if synthesized is not None:
                self._end_trace(t.job_id, synthesized, status, t)
            self._awaiting.pop(t.job_id, None)
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
            "aura.job.percent": float(record.percent),
            "aura.stall.verdict": str(t.new or Verdict.NO_PROGRESS),
            "aura.stall.reason": t.reason,
        }
        if state.threshold is not None:
            attributes["aura.stall.threshold_seconds"] = float(state.threshold)
        if state.threshold_kind is not None:
            attributes["aura.stall.threshold_kind"] = state.threshold_kind.value
        parent = self._parent_context(t.job_id, record)
        start = _ns(min(state.stalled_since or t.at, t.at))
        error = Status(StatusCode.ERROR, f"stalled: {t.reason}"[:200])
        stall = self._tracer.start_span(STALL_SPAN, context=parent, attributes=attributes, start_time=start)
        stall.set_status(error)
        self._stalls[t.job_id] = stall
        # Ended now, so exported now: the stall shows while it lasts, linked to the span that ends with it.
        detected = self._tracer.start_span(
            STALL_DETECTED_SPAN,
            context=parent,
            attributes=attributes,
            links=[Link(stall.get_span_context())],
            start_time=start,
        )
        detected.set_status(error)
        detected.end(_ns(t.at))

    def _on_verdict(self, t: Transition) -> None:
        span = self._stalls.get(t.job_id)
        if span is not None and t.new is not None:
            span.set_attribute("aura.stall.verdict", str(t.new))

    def _on_removed(self, t: Transition) -> None:
        self._end_stall(t.job_id, t.reason, t.at, None)
        self._awaiting.pop(t.job_id, None)
        synthesized = self._traces.pop(t.job_id, None)
        if synthesized is not None:
            self._close_trace(synthesized, t.at, "aura.job.removed")

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
                self._close_trace(synthesized, at, None)
            self._traces.clear()
            self._awaiting.clear()

    # -- internals -----------------------------------------------------------------------------
    def _start_trace(
        self, state: JobState, record: JobRecord, job_start: float, stage_start: float, stage: str | None = None
    ) -> None:
        if not self._synthesize or record.traceparent or state.id in self._traces:
            return
        job = self._tracer.start_span(
            JOB_SPAN,
            context=Context(),  # a root: never the ambient span of whatever thread ingests the record
            attributes={
                "aura.job.id": state.id,
                "aura.job.attempt": int(record.attempt),
                "aura.job.format": record.format.value,
                "aura.synthesized": True,
            },
            start_time=_ns(job_start),
        )
        first = record.stage if stage is None else stage
        self._traces[state.id] = _SynthesizedTrace(job, self._start_stage(state.id, job, first, stage_start))

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
        ended = _ENDED.get(status)
        error = Status(StatusCode.ERROR, f"{ended}: {t.reason}"[:200]) if ended is not None else None
        # The stage it ended in is in error too, as the SDK marks its own: a search for errors finds both.
        for span in (synthesized.stage, synthesized.job):
            if span is not None and error is not None:
                span.set_status(error)
        if synthesized.stage is not None:
            synthesized.stage.end(_ns(t.at))
        synthesized.job.set_attribute("aura.job.status", status.value)
        synthesized.job.end(_ns(t.at))

    @staticmethod
    def _close_trace(synthesized: _SynthesizedTrace, at: float, flag: str | None) -> None:
        """End a synthesized trace before its job ends, `flag` (a boolean attribute) saying why."""
        for span in (synthesized.stage, synthesized.job):
            if span is not None:
                if flag is not None:
                    span.set_attribute(flag, True)
                span.end(_ns(at))

    def _end_stall(self, job_id: str, outcome: str, at: float, elapsed: float | None) -> None:
        span = self._stalls.pop(job_id, None)
        if span is None:
            return
        span.set_attribute("aura.stall.outcome", outcome)
        if elapsed is not None:
            span.set_attribute("aura.stall.duration_seconds", float(elapsed))
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

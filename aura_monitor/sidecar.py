"""The composition root: wires settings, clock, tracker, ingest, watcher, stall timer and metrics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry, generate_latest

from . import __version__
from .clock import Clock, SystemClock
from .config import Settings
from .control import ControlService
from .diagnosis.service import DiagnosisService
from .events import EventBroker
from .history import History
from .history.learning import ThresholdLearner
from .jobs.stages import stage_key
from .jobs.stall import Thresholds
from .jobs.tracker import Tracker
from .jobs.transitions import Transition
from .telemetry.metrics import SnapshotCollector, TransitionMetrics, render_job_series
from .telemetry.tracing import JobTracer, setup_tracing
from .watch.ingest import Ingestor
from .watch.timer import StallTimer
from .watch.watcher import Watcher

log = logging.getLogger(__name__)


class Sidecar:
    """Everything that watches and judges jobs, without the HTTP layer; start() / stop() are idempotent."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.registry = registry or CollectorRegistry()
        self.thresholds = Thresholds.from_settings(settings)
        self.jobs_dir = settings.jobs_dir.absolute()
        self.tracker = Tracker(
            self.thresholds,
            unreadable_grace=settings.unreadable_grace,
            monotonic=self.clock.monotonic,
            node=settings.node,
        )
        self.transition_metrics = TransitionMetrics(self.registry)
        self.ingestor = Ingestor(self.jobs_dir, self.tracker, self.clock, self.transition_metrics.lag.observe)
        self.watcher = Watcher(
            self.jobs_dir,
            self.ingestor,
            backend=settings.watch,
            rescan_interval=settings.rescan_interval,
            poll_interval=settings.poll_interval,
        )
        self.stall_timer = StallTimer(self.tracker, self.clock, catch_up=self.ingestor.catch_up)
        # The OTEL_* variables decide the exporter; an injected provider (tests) belongs to its caller.
        self._owns_tracer_provider = tracer_provider is None
        self.tracer_provider = tracer_provider or setup_tracing("aura-monitor")
        self.job_tracer = JobTracer(self.tracer_provider, self.tracker.get)
        self.events = EventBroker(
            self.tracker,
            self.clock,
            replay_events=settings.sse_replay_events,
            job_replay_events=settings.sse_job_replay_events,
            client_queue=settings.sse_client_queue,
            base_url=settings.resolved_external_url,
            token_required=bool(settings.token),
            scanned=self._first_sweep_read,
        )
        self.control = ControlService(self.tracker, settings, self.clock, self.registry)
        self.diagnosis = DiagnosisService(
            self.tracker,
            settings,
            self.thresholds,
            self.clock,
            subscribers=self.events.subscribers_of,
            retry_history=self.control.history,
            registry=self.registry,
        )
        self.collector = SnapshotCollector(
            self.tracker,
            self.thresholds,
            self.ingestor.stats,
            self.watcher.stats,
            lambda: self.watcher.ready,
            sse_clients=self.events.counts,
            sse_refused=lambda: self.events.refused,
            stall_timer_pauses=lambda: self.stall_timer.pauses,
            info={
                "node": settings.node,
                "external_url": settings.resolved_external_url,
                "runbook_url": settings.resolved_runbook_url,
                "version": __version__,
            },
        )
        self.registry.register(self.collector)
        # The tracker calls its listeners under its lock, in this written order (docs/architecture.md):
        # cheap counters first, then spans, then the SSE fan-out, last the diagnosis (it only queues work).
        self.tracker.subscribe(self._count)
        self.tracker.subscribe(self.job_tracer.observe)
        self.tracker.subscribe(self.events.publish)
        self.tracker.subscribe(self.diagnosis.observe)
        # Last, after diagnosis: the history only enqueues (a bounded queue; its own thread writes the database).
        self.history = History(settings, self.tracker, self.clock, self.registry, scanned=self._scanned)
        self.tracker.subscribe(self.history.observe)
        # Learned thresholds (DESIGN 2.7): a small thread re-learns from the history and swaps them into the tracker.
        self.learner = ThresholdLearner(settings, self.thresholds, self.tracker, self.history.store, self.clock)
        self._started = False

    def _first_sweep_read(self) -> bool:
        """The first full sweep queued every record and the ingest has started the last of them."""
        return self.watcher.stats.sweeps >= 1 and self.ingestor.backlog() == 0

    def _scanned(self) -> bool:
        """The first full sweep named every record and each has been read (the history reconciles then)."""
        return self.watcher.stats.sweeps >= 1 and self.watcher.ready and self.ingestor.wait_idle(0)

    def _count(self, batch: Sequence[Transition]) -> None:
        def stage_of(job_id: str) -> str:
            state = self.tracker.get(job_id)
            return stage_key(state.record.stage) if state and state.record else "unknown"

        self.transition_metrics.observe(batch, stage_of)

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.events.reopen()
        self.ingestor.start()
        self.diagnosis.start()
        self.history.start()
        self.learner.start()
        self.stall_timer.start()
        self.watcher.start()
        log.info("watching %s (%s)", self.jobs_dir, self.settings.watch)

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self.events.shutdown()
        self.watcher.stop()
        self.stall_timer.stop()
        self.diagnosis.stop()
        self.ingestor.stop()
        self.learner.stop()
        self.history.stop()
        self.job_tracer.close(self.clock.now())
        if self._owns_tracer_provider and isinstance(self.tracer_provider, SdkTracerProvider):
            self.tracer_provider.force_flush()

    async def explain(self, job_id: str) -> dict[str, Any]:
        """The diagnosis body, with an explain span in the job's trace; DiagnosisBusy when the runner is full."""
        with self.job_tracer.explain_span(job_id) as span:
            body = (await self.diagnosis.explain_async(job_id)).body
            span.set_attribute("aura.verdict", body["verdict"])
            return body

    def exposition(self) -> bytes:
        """Everything /metrics serves: the registry plus the per-job series of active jobs."""
        return generate_latest(self.registry) + render_job_series(self.tracker, self.clock.now()).encode()

    @property
    def ready(self) -> bool:
        return self.watcher.ready and self.stall_timer.alive

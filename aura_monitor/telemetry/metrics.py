"""Prometheus series (docs/metrics.md): gauges from the live snapshot, counters from transitions."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..jobs.model import JobRecord, JobStatus
from ..jobs.stages import stage_key
from ..jobs.stall import Thresholds
from ..jobs.tracker import JobState, Tracker
from ..jobs.transitions import Transition, TransitionKind
from ..views import BROKEN_VIEWS
from ..watch.ingest import IngestStats
from ..watch.watcher import WatcherStats

STAGE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class TransitionMetrics:
    """Counters and histograms fed by the tracker's transitions."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.stage_duration = Histogram(
            "aura_job_stage_duration_seconds",
            "Time jobs spent in a stage, observed when they leave it",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.stalls = PromCounter("aura_job_stalls_total", "Jobs that became stalled", ["stage"], registry=registry)
        self.recoveries = PromCounter(
            "aura_job_recoveries_total",
            "Stalled jobs that progressed again or ended",
            ["stage"],
            registry=registry,
        )
        self.stall_duration = Histogram(
            "aura_job_stall_duration_seconds",
            "How long stalls lasted, observed when they ended",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.verdicts = PromCounter(
            "aura_job_verdicts_total",
            "Diagnosis verdicts given to stalled jobs",
            ["verdict"],
            registry=registry,
        )
        self.outcomes = PromCounter(
            "aura_job_outcomes_total", "Jobs seen reaching a terminal status", ["status"], registry=registry
        )
        self.transitions = PromCounter(
            "aura_job_transitions_total", "Transition records produced, by kind", ["kind"], registry=registry
        )
        self.lag = Histogram(
            "aura_watcher_lag_seconds",
            "Delay from a job file's modification to its ingestion",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
            self.outcomes.labels(status.value)

    def observe(self, batch: Sequence[Transition], stage_of: Callable[[str], str]) -> None:
        for t in batch:
            self.transitions.labels(t.kind.value).inc()
            if t.kind is TransitionKind.STAGE and t.old is not None and t.elapsed is not None:
                self.stage_duration.labels(stage_key(t.old)).observe(t.elapsed)
            elif t.kind is TransitionKind.STATUS and t.new_status is not None:
                if t.new_status.terminal:
                    self.outcomes.labels(t.new_status.value).inc()
            elif t.kind is TransitionKind.STALLED:
                self.stalls.labels(stage_of(t.job_id)).inc()
            elif t.kind is TransitionKind.RECOVERED:
                stage = stage_of(t.job_id)
                self.recoveries.labels(stage).inc()
                if t.elapsed is not None:
                    self.stall_duration.labels(stage).observe(t.elapsed)
            elif t.kind is TransitionKind.VERDICT and t.verdict is not None:
                self.verdicts.labels(t.verdict.value).inc()


class SnapshotCollector(Collector):
    """Small gauges computed at scrape time; the per-job series come from render_job_series()."""

    def __init__(
        self,
        tracker: Tracker,
        thresholds: Thresholds,
        ingest: IngestStats,
        watcher: WatcherStats,
        watcher_up: Callable[[], bool],
        sse_clients: Callable[[], dict[str, int]] | None = None,
        sse_refused: Callable[[], int] | None = None,
        info: dict[str, str] | None = None,
        stall_timer_pauses: Callable[[], int] | None = None,
    ) -> None:
        self.tracker = tracker
        self.thresholds = thresholds
        self.ingest = ingest
        self.watcher = watcher
        self.watcher_up = watcher_up
        self.sse_clients = sse_clients
        self.sse_refused = sse_refused
        self.info = info
        self.stall_timer_pauses = stall_timer_pauses

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected lazily: describing would scan every job at registration

    def collect(self) -> Iterator[Metric]:
        if self.info is not None:
            # Alert and dashboard links join this on `instance`: the scrape address is not a URL users reach.
            info = GaugeMetricFamily(
                "aura_sidecar_info",
                "1; node name, external URL (links), runbook base URL and version of this sidecar",
                labels=list(self.info),
            )
            info.add_metric(list(self.info.values()), 1)
            yield info
        with self.tracker.lock:  # from the index: a scrape costs the same with 100 jobs or 100,000
            counts = self.tracker.index.counts()
            unreadable = len(self.tracker.index.unreadable)
            tracked = len(self.tracker)
        jobs = GaugeMetricFamily("aura_jobs", "Tracked jobs by status", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], counts[status])
        yield jobs
        configured = GaugeMetricFamily(
            "aura_stall_threshold_seconds", "Configured stall thresholds", labels=["kind", "stage"]
        )
        configured.add_metric(["default", ""], self.thresholds.default)
        configured.add_metric(["finalizing", ""], self.thresholds.finalizing)
        configured.add_metric(["queued", ""], self.thresholds.queued)
        for name, seconds in sorted(self.thresholds.stages.items()):
            configured.add_metric(["stage", name], seconds)
        yield configured
        # Learned thresholds (docs/thresholds.md): the tracker holds the table the learner swapped in last.
        table = self.tracker.thresholds.learned
        learned = GaugeMetricFamily(
            "aura_learned_threshold_seconds",
            "Learned stall threshold per stage (for a job of unknown media length when it scales)",
            labels=["stage"],
        )
        rate = GaugeMetricFamily(
            "aura_learned_threshold_per_media_second",
            "Learned stall threshold per second of expected media, for stages whose quiet grows with the media",
            labels=["stage"],
        )
        for key, stage in sorted(table.stages.items()):
            learned.add_metric([key], stage.seconds)
            if stage.per_media_second is not None:
                rate.add_metric([key], stage.per_media_second)
        yield learned
        yield rate
        yield GaugeMetricFamily(
            "aura_jobs_unreadable",
            "Jobs whose job.json is unreadable past the grace period",
            value=unreadable,
        )
        yield GaugeMetricFamily("aura_tracked_jobs", "Jobs the sidecar tracks", value=tracked)
        yield _counter("aura_watcher_events_total", "File system events received", self.watcher.events)
        yield _counter(
            "aura_watcher_rescans_total",
            "Rescans: periodic ones of active jobs' records, and full sweeps of the jobs dir",
            self.watcher.rescans,
        )
        yield _counter(
            "aura_watcher_overflows_total", "inotify queue overflows (each triggers a rescan)", self.watcher.overflows
        )
        yield _counter(
            "aura_watcher_handler_errors_total",
            "Exceptions caught in the event handler",
            self.watcher.handler_errors,
        )
        yield _counter("aura_record_reads_total", "job.json files read and parsed", self.ingest.reads)
        yield _counter(
            "aura_record_parse_failures_total",
            "Reads of job.json that failed to parse",
            self.ingest.parse_failures,
        )
        yield _counter(
            "aura_listener_failures_total",
            "Exceptions raised by a tracker listener (SSE, metrics, tracing, history); the others still ran",
            self.tracker.listener_failures,
        )
        yield _counter(
            "aura_view_failures_total",
            "Job views that could not be built; the job was left out of a list, queue, snapshot or event",
            BROKEN_VIEWS.count,
        )
        if self.stall_timer_pauses is not None:
            yield _counter(
                "aura_stall_timer_pauses_total",
                "Times the sidecar found it had not run (SIGSTOP, suspend, starved CPU) and caught up before judging",
                self.stall_timer_pauses(),
            )
        yield GaugeMetricFamily(
            "aura_watcher_up",
            "1 while the file watcher runs and the jobs dir exists",
            value=1 if self.watcher_up() else 0,
        )
        yield GaugeMetricFamily(
            "aura_watcher_unwatched_dirs",
            "Dirs with no inotify watch (limit reached): seen only by the periodic rescan; raise "
            "fs.inotify.max_user_watches",
            value=self.watcher.unwatched_dirs,
        )
        if self.sse_clients is not None:
            clients = GaugeMetricFamily("aura_sse_clients", "Connected SSE clients", labels=["stream"])
            for stream, count in sorted(self.sse_clients().items()):
                clients.add_metric([stream], count)
            yield clients
        if self.sse_refused is not None:
            yield _counter(
                "aura_sse_refused_total",
                "SSE streams refused with 503 because --max-streams were open (raise ulimit -n and --max-streams)",
                self.sse_refused(),
            )


def _counter(name: str, documentation: str, value: float) -> Metric:
    return CounterMetricFamily(name.removesuffix("_total"), documentation, value=value)


# Per-job series, rendered as exposition text directly: prometheus_client formats ~50 us per sample,
# which is 400 ms for 10,000 active-job samples. Labels need no escaping: job ids are validated on
# ingest ([A-Za-z0-9._-]) and stage and reason are bounded keys.
_JOB_FAMILIES = (
    ("aura_job_stalled", "1 for each currently stalled job (its labels stay the same while the stall lasts)"),
    ("aura_job_stall_reason", "1 for each diagnosed stalled job; reason is the diagnosis verdict (join on job_id)"),
    ("aura_job_last_progress_timestamp_seconds", "When an active job last progressed (unix time)"),
    ("aura_job_seconds_since_progress", "Seconds since an active job last progressed"),
    ("aura_job_percent", "Overall percent of an active job"),
    ("aura_job_threshold_seconds", "Stall threshold that applies to an active job now"),
)


class _JobLines:
    """One job's per-job samples as text, kept while what they show is unchanged (its `signature`)."""

    __slots__ = ("last_progress_at", "lines", "signature", "since_prefix")

    def __init__(self, signature: tuple[object, ...], lines: tuple[str, ...], since_prefix: str, last: float | None):
        self.signature = signature
        self.lines = lines  # stalled, reason, last progress, percent, threshold ("" when absent)
        self.since_prefix = since_prefix
        self.last_progress_at = last


class _Cache:
    """Per-job lines of the last scrape: a scrape formats again only the jobs that changed since, and each
    active job's age. Why: 20,000 active jobs are 100,000 samples, ~50 us each through a formatter."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: dict[str, _JobLines] = {}


_CACHES: weakref.WeakKeyDictionary[Tracker, _Cache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _lines(state: JobState, record: JobRecord, signature: tuple[object, ...]) -> _JobLines:
    job, stage = state.id, stage_key(record.stage)
    stalled = reason = last = threshold = ""
    if state.stalled:
        # The verdict is a series of its own: as a label here, each refinement would end one alert
        # identity and start another. Before the first diagnosis there is no verdict to publish.
        stalled = f'aura_job_stalled{{job_id="{job}",stage="{stage}"}} 1'
        if state.diagnosed and state.verdict:
            reason = f'aura_job_stall_reason{{job_id="{job}",reason="{state.verdict}"}} 1'
    if state.last_progress_at is not None:
        last = f'aura_job_last_progress_timestamp_seconds{{job_id="{job}",stage="{stage}"}} {state.last_progress_at!r}'
    percent = f'aura_job_percent{{job_id="{job}",stage="{stage}"}} {record.percent!r}'
    if state.threshold is not None and state.threshold_kind is not None:
        threshold = (
            f'aura_job_threshold_seconds{{job_id="{job}",kind="{state.threshold_kind.value}"}} {state.threshold!r}'
        )
    since = f'aura_job_seconds_since_progress{{job_id="{job}",stage="{stage}"}} '
    return _JobLines(signature, (stalled, reason, last, percent, threshold), since, state.last_progress_at)


def render_job_series(tracker: Tracker, now: float) -> str:
    """Exposition text of the per-job gauges, for non-terminal jobs only (read from the index: finished
    jobs, most of them on a long-running node, cost nothing here; unchanged jobs' lines are reused)."""
    with _CACHES_LOCK:
        cache = _CACHES.setdefault(tracker, _Cache())
    stalled: list[str] = []
    reasons: list[str] = []
    last: list[str] = []
    since: list[str] = []
    percent: list[str] = []
    threshold: list[str] = []
    with cache.lock:
        previous, current = cache.jobs, {}
        for state in tracker.states(tracker.index.active()):
            record = state.record
            if record is None or record.status.terminal:
                continue
            signature = (
                record,
                state.stalled,
                state.diagnosed,
                state.verdict,
                state.last_progress_at,
                state.threshold,
                state.threshold_kind,
            )
            lines = previous.get(state.id)
            if lines is None or lines.signature != signature:
                lines = _lines(state, record, signature)
            current[state.id] = lines
            a, b, c, d, e = lines.lines
            if a:
                stalled.append(a)
            if b:
                reasons.append(b)
            if c:
                last.append(c)
                quiet = max(0.0, now - lines.last_progress_at) if lines.last_progress_at is not None else 0.0
                since.append(f"{lines.since_prefix}{quiet!r}")
            percent.append(d)
            if e:
                threshold.append(e)
        cache.jobs = current  # only the active jobs: a finished or removed job's lines go with it
    out: list[str] = []
    for (name, help_text), samples in zip(
        _JOB_FAMILIES, (stalled, reasons, last, since, percent, threshold), strict=True
    ):
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n")
        if samples:
            out.append("\n".join(samples))
            out.append("\n")
    return "".join(out)

"""Spans of the sidecar, exported over real OTLP/HTTP to a receiver that decodes the protobuf."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from aura_monitor.exceptions import ConfigError
from aura_monitor.jobs.model import JobRecord, JobStatus
from aura_monitor.jobs.stall import Thresholds
from aura_monitor.jobs.tracker import Tracker
from aura_monitor.records import SCHEMA, parse_record
from aura_monitor.telemetry.tracing import JobTracer, setup_tracing
from tests.support.aura_writer import CANCELED, DONE, FAILED, RUNNING, AuraJob, net_time
from tests.support.otlp import STATUS_ERROR, OtlpHttpReceiver, clear_otel_environment

T0 = 1_800_000_000.0
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def ns(at: float) -> int:
    return int(at * 1e9)


@pytest.fixture(autouse=True)
def otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_otel_environment(monkeypatch)


@pytest.fixture
def receiver() -> Iterator[OtlpHttpReceiver]:
    receiver = OtlpHttpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def provider(receiver: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[TracerProvider]:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "aura-monitor-test")
    provider = setup_tracing("aura-monitor")
    yield provider
    provider.shutdown()


@pytest.fixture
def tracker() -> Tracker:
    return Tracker(Thresholds())


@pytest.fixture
def tracer(provider: TracerProvider, tracker: Tracker) -> JobTracer:
    tracer = JobTracer(provider, tracker.get)
    tracker.subscribe(tracer.observe)
    return tracer


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def native(job_id: str, revision: int, last_progress: float, traceparent: str | None, **fields: object) -> JobRecord:
    """A native record; a field given as None is left out (a queued job has no startedAt, say)."""
    doc: dict[str, object] = {
        "schema": SCHEMA,
        "id": job_id,
        "revision": revision,
        "status": "running",
        "stage": "Render",
        "percent": 82.0,
        "startedAt": iso(T0),
        "lastProgressAt": iso(last_progress),
        "traceparent": traceparent,
    }
    doc.update(fields)
    return parse_record(json.dumps({key: value for key, value in doc.items() if value is not None}).encode())


def aura(job: AuraJob) -> JobRecord:
    return parse_record(json.dumps(job.document()).encode())


def path_of(job_id: str) -> str:
    return f"/jobs/{job_id}/job.json"


def test_a_stall_of_an_instrumented_job_is_a_span_in_the_jobs_own_trace(
    tracker: Tracker, tracer: JobTracer, provider: TracerProvider, receiver: OtlpHttpReceiver
) -> None:
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-03"  # flags 03: sampled, plus the W3C level-2 random bit
    tracker.apply(path_of("n-1"), native("n-1", 1, T0 + 5, traceparent), at=T0 + 6)
    assert [t.kind.value for t in tracker.tick(T0 + 51)] == ["stalled"]
    tracker.set_verdict("n-1", "process_hung", "diagnosed", T0 + 52)
    tracker.apply(path_of("n-1"), native("n-1", 2, T0 + 70, traceparent, percent=84.0), at=T0 + 70)

    assert provider.force_flush()
    [stall] = receiver.named("stall")
    assert (stall.trace_id, stall.parent_span_id) == (TRACE_ID, PARENT_ID)
    assert stall.attributes["aura.job.id"] == "n-1"
    assert stall.attributes["aura.stage"] == "Render"
    assert stall.attributes["aura.stall.verdict"] == "process_hung"
    assert stall.attributes["aura.stall.threshold_seconds"] == 45.0
    assert stall.attributes["aura.stall.threshold_kind"] == "default"
    assert stall.attributes["aura.stall.outcome"] == "progress resumed"
    # From the moment the threshold passed (last progress + 45 s) to the progress that ended it.
    assert (stall.start, stall.end) == (ns(T0 + 50), ns(T0 + 70))
    assert stall.service == "aura-monitor-test"
    assert stall.status_code == STATUS_ERROR
    assert stall.status_message == "stalled: " + stall.attributes["aura.stall.reason"]
    assert set(receiver.paths) == {"/v1/traces"}
    assert receiver.named("job") == []  # the writer traces itself: nothing is synthesized


def test_a_job_whose_trace_is_not_sampled_gets_no_stall_span(
    tracker: Tracker, tracer: JobTracer, provider: TracerProvider, receiver: OtlpHttpReceiver
) -> None:
    tracker.apply(path_of("n-2"), native("n-2", 1, T0, f"00-{TRACE_ID}-{PARENT_ID}-00"), at=T0 + 1)
    tracker.tick(T0 + 60)
    tracker.remove("n-2", T0 + 61)

    assert provider.force_flush()
    assert receiver.spans == []


def test_an_aura_job_gets_a_synthesized_trace_with_one_span_per_stage(
    tracker: Tracker, tracer: JobTracer, provider: TracerProvider, receiver: OtlpHttpReceiver
) -> None:
    job = AuraJob(Path("/unused"), id="aura-1", status=RUNNING, created=T0, started=T0)
    job.progress(T0 + 1, "Script", 5)
    tracker.apply(path_of(job.id), aura(job), at=T0 + 2)
    job.progress(T0 + 10, "TTS", 30)
    tracker.apply(path_of(job.id), aura(job), at=T0 + 11)
    assert [t.kind.value for t in tracker.tick(T0 + 60)] == ["stalled"]
    job.progress(T0 + 70, "Images", 60)
    tracker.apply(path_of(job.id), aura(job), at=T0 + 71)
    job.progress(T0 + 80, "Render", 85)
    tracker.apply(path_of(job.id), aura(job), at=T0 + 81)
    job.status = DONE
    job.progress(T0 + 90, "Complete", 100)
    job.extra = {"CompletedUtc": net_time(T0 + 90), "EndedUtc": net_time(T0 + 90)}
    assert aura(job).status is JobStatus.COMPLETED
    tracker.apply(path_of(job.id), aura(job), at=T0 + 91)

    assert provider.force_flush()
    [root] = receiver.named("job")
    assert root.parent_span_id == ""
    assert (root.start, root.end) == (ns(T0), ns(T0 + 91))
    assert root.attributes["aura.job.status"] == "completed"
    assert root.attributes["aura.synthesized"] is True
    stages = sorted((s for s in receiver.spans if s.attributes.get("aura.stage.key")), key=lambda s: s.start)
    stages = [s for s in stages if not s.name.startswith("stall")]
    assert [(s.name, s.start, s.end) for s in stages] == [
        ("Script", ns(T0 + 1), ns(T0 + 11)),
        ("TTS", ns(T0 + 11), ns(T0 + 71)),
        ("Images", ns(T0 + 71), ns(T0 + 81)),
        ("Render", ns(T0 + 81), ns(T0 + 91)),
    ]
    assert {(s.trace_id, s.parent_span_id) for s in stages} == {(root.trace_id, root.span_id)}
    [stall] = receiver.named("stall")
    tts = stages[1]
    assert (stall.trace_id, stall.parent_span_id) == (root.trace_id, tts.span_id)
    assert (stall.start, stall.end) == (ns(T0 + 56), ns(T0 + 71))
    assert stall.attributes["aura.stage.key"] == "tts"
    assert stall.attributes["aura.stall.verdict"] == "no_progress"


def test_a_failed_aura_job_ends_its_trace_as_an_error(
    tracker: Tracker, tracer: JobTracer, provider: TracerProvider, receiver: OtlpHttpReceiver
) -> None:
    job = AuraJob(Path("/unused"), id="aura-2", status=RUNNING, created=T0, started=T0)
    job.progress(T0 + 1, "Images", 55)
    tracker.apply(path_of(job.id), aura(job), at=T0 + 2)
    job.status = FAILED
    job.extra = {"ErrorMessage": "image provider answered 429", "EndedUtc": net_time(T0 + 30)}
    assert aura(job).status is JobStatus.FAILED
    tracker.apply(path_of(job.id), aura(job), at=T0 + 30)

    assert provider.force_flush()
    [root] = receiver.named("job")
    [images] = receiver.named("Images")
    assert root.attributes["aura.job.status"] == "failed"
    assert root.status_code == images.status_code == STATUS_ERROR
    assert root.status_message.startswith("failed: ") and images.status_message == root.status_message
    assert root.end == images.end == ns(T0 + 30)


def test_a_removed_job_ends_its_open_spans(
    tracker: Tracker, tracer: JobTracer, provider: TracerProvider, receiver: OtlpHttpReceiver
) -> None:
    job = AuraJob(Path("/unused"), id="aura-3", status=RUNNING, created=T0, started=T0)
    job.progress(T0 + 1, "TTS", 30)
    tracker.apply(path_of(job.id), aura(job), at=T0 + 2)
    tracker.tick(T0 + 50)
    tracker.remove(job.id, T0 + 55)

    assert provider.force_flush()
    assert {span.name: span.end for span in receiver.spans} == {
        "stall": ns(T0 + 55),
        "stall.detected": ns(T0 + 50),
        "TTS": ns(T0 + 55),
        "job": ns(T0 + 55),
    }
    [stall] = receiver.named("stall")
    assert stall.attributes["aura.stall.outcome"] == "job.json removed"


def test_a_retried_aura_job_gets_a_new_trace_for_the_new_attempt(
    tracker: Tracker, tracer: JobTracer, provider: TracerProvider, receiver: OtlpHttpReceiver
) -> None:
    job = AuraJob(Path("/unused"), id="aura-4", status=RUNNING, created=T0, started=T0)
    job.progress(T0 + 1, "Render", 82)
    tracker.apply(path_of(job.id), aura(job), at=T0 + 2)
    job.status = FAILED
    job.extra = {"ErrorMessage": "ffmpeg exited with 1"}
    tracker.apply(path_of(job.id), aura(job), at=T0 + 10)
    job.status = RUNNING
    job.extra = {}
    job.progress(T0 + 20, "Render", 83)
    tracker.apply(path_of(job.id), aura(job), at=T0 + 20)
    tracer.close(T0 + 25)

    assert provider.force_flush()
    first, second = sorted(receiver.named("job"), key=lambda span: span.start)
    assert first.trace_id != second.trace_id
    assert (first.end, second.start, second.end) == (ns(T0 + 10), ns(T0 + 20), ns(T0 + 25))


def test_an_explain_span_links_to_the_jobs_trace(
    tracker: Tracker, tracer: JobTracer, provider: TracerProvider, receiver: OtlpHttpReceiver
) -> None:
    tracker.apply(path_of("n-3"), native("n-3", 1, T0, f"00-{TRACE_ID}-{PARENT_ID}-01"), at=T0 + 1)
    job = AuraJob(Path("/unused"), id="aura-5", status=RUNNING, created=T0, started=T0)
    job.progress(T0 + 1, "Script", 5)
    tracker.apply(path_of(job.id), aura(job), at=T0 + 2)

    with tracer.explain_span("n-3") as span:
        span.set_attribute("aura.verdict", "healthy")
    with tracer.explain_span("aura-5"):
        pass
    with pytest.raises(LookupError), tracer.explain_span("unknown"):
        raise LookupError("no such job")
    tracer.close(T0 + 3)

    assert provider.force_flush()
    native_explain, aura_explain, unknown_explain = receiver.named("explain")
    assert native_explain.links == [(TRACE_ID, PARENT_ID)]
    assert native_explain.parent_span_id == ""
    assert native_explain.trace_id != TRACE_ID
    assert native_explain.attributes == {"aura.job.id": "n-3", "aura.verdict": "healthy"}
    [aura_root] = receiver.named("job")
    assert aura_explain.links == [(aura_root.trace_id, aura_root.span_id)]
    assert unknown_explain.links == []
    assert unknown_explain.status_code == STATUS_ERROR


def test_setup_tracing_refuses_an_unknown_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER"):
        setup_tracing("aura-monitor")


def test_setup_tracing_exports_nothing_without_an_endpoint_or_with_none(
    receiver: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for environ in ({}, {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}):
        with monkeypatch.context() as patch:
            for name, value in environ.items():
                patch.setenv(name, value)
            provider = setup_tracing("aura-monitor")
        provider.get_tracer("test").start_span("ignored").end()
        assert provider.force_flush()
        provider.shutdown()
    assert receiver.spans == []


def test_setup_tracing_names_the_service_when_otel_service_name_is_unset(
    receiver: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    provider = setup_tracing("aura-monitor")
    provider.get_tracer("test").start_span("probe").end()
    assert provider.force_flush()
    provider.shutdown()
    [probe] = receiver.named("probe")
    assert probe.service == "aura-monitor"


def test_a_stall_is_exported_when_it_starts_not_only_when_it_ends(
    tracker: Tracker, receiver: OtlpHttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # the batch processor's own variable: export within 50 ms
    provider = setup_tracing("aura-monitor")
    tracer = JobTracer(provider, tracker.get)
    tracker.subscribe(tracer.observe)
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    try:
        tracker.apply(path_of("n-9"), native("n-9", 1, T0 + 5, traceparent), at=T0 + 6)
        tracker.tick(T0 + 51)

        # No flush and the stall still open: the batch processor exported the marker on its own.
        detected = receiver.wait_for_span("stall.detected")
        assert receiver.named("stall") == []
        assert (detected.trace_id, detected.parent_span_id) == (TRACE_ID, PARENT_ID)
        assert (detected.start, detected.end) == (ns(T0 + 50), ns(T0 + 51))
        assert detected.status_code == STATUS_ERROR
        assert "no progress" in detected.status_message
        assert detected.attributes["aura.job.id"] == "n-9"

        tracker.apply(path_of("n-9"), native("n-9", 2, T0 + 80, traceparent, percent=90.0), at=T0 + 80)
        stall = receiver.wait_for_span("stall")
        assert detected.links == [(TRACE_ID, stall.span_id)]
        assert (stall.start, stall.end, stall.status_code) == (ns(T0 + 50), ns(T0 + 80), STATUS_ERROR)
    finally:
        provider.shutdown()


def test_a_native_job_enqueued_before_its_worker_stamps_a_traceparent_has_exactly_one_trace(
    tracker: Tracker, tracer: JobTracer, provider: TracerProvider, receiver: OtlpHttpReceiver
) -> None:
    queued = {"status": "queued", "startedAt": None, "stage": "Queued", "percent": 0.0, "queuedAt": iso(T0)}
    tracker.apply(path_of("n-4"), native("n-4", 1, T0, None, **queued), at=T0 + 1)
    # The worker picks it up 30 s later (far past any wait) and stamps its own trace as it starts.
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    tracker.apply(path_of("n-4"), native("n-4", 2, T0 + 31, traceparent, stage="Script", percent=5.0), at=T0 + 31)
    tracker.apply(path_of("n-4"), native("n-4", 3, T0 + 40, traceparent, stage="Render", percent=70.0), at=T0 + 40)
    assert [t.kind.value for t in tracker.tick(T0 + 90)] == ["stalled"]
    done = {"status": "completed", "stage": "Complete", "percent": 100.0, "endedAt": iso(T0 + 95)}
    tracker.apply(path_of("n-4"), native("n-4", 4, T0 + 95, traceparent, **done), at=T0 + 95)
    tracer.close(T0 + 96)

    assert provider.force_flush()
    assert sorted(span.name for span in receiver.all()) == ["stall", "stall.detected"]
    assert {span.trace_id for span in receiver.all()} == {TRACE_ID}  # the pipeline's trace, and no other


def test_a_native_job_that_never_stamps_a_traceparent_gets_one_synthesized_trace_after_a_bounded_wait(
    tracker: Tracker, tracer: JobTracer, provider: TracerProvider, receiver: OtlpHttpReceiver
) -> None:
    queued = {"status": "queued", "startedAt": None, "stage": "Queued", "percent": 0.0, "queuedAt": iso(T0)}
    tracker.apply(path_of("n-5"), native("n-5", 1, T0, None, **queued), at=T0 + 1)
    script = {"stage": "Script", "percent": 5.0, "startedAt": iso(T0 + 30)}
    tracker.apply(path_of("n-5"), native("n-5", 2, T0 + 30, None, **script), at=T0 + 30)
    tracker.apply(path_of("n-5"), native("n-5", 3, T0 + 32, None, **script, stagePercent=50.0), at=T0 + 32)
    assert receiver.all() == [] and provider.force_flush() and receiver.all() == []  # still waiting (< 5 s)
    tts = {"stage": "TTS", "percent": 30.0, "startedAt": iso(T0 + 30)}
    tracker.apply(path_of("n-5"), native("n-5", 4, T0 + 40, None, **tts), at=T0 + 40)
    tracer.close(T0 + 50)

    assert provider.force_flush()
    [root] = receiver.named("job")
    assert (root.start, root.attributes["aura.synthesized"], root.attributes["aura.job.format"]) == (
        ns(T0),
        True,
        "native",
    )
    assert {span.trace_id for span in receiver.all()} == {root.trace_id}
    stages = sorted((span for span in receiver.all() if span.name != "job"), key=lambda span: span.start)
    assert [(span.name, span.start, span.end) for span in stages] == [
        ("Queued", ns(T0), ns(T0 + 30)),
        ("Script", ns(T0 + 30), ns(T0 + 40)),
        ("TTS", ns(T0 + 40), ns(T0 + 50)),
    ]


def test_a_native_job_stamped_within_the_wait_is_never_synthesized(
    tracker: Tracker, tracer: JobTracer, provider: TracerProvider, receiver: OtlpHttpReceiver
) -> None:
    # The sidecar saw the worker's first write (running, no traceparent yet); the stamp follows 2 s later.
    tracker.apply(path_of("n-6"), native("n-6", 1, T0 + 1, None, stage="Script", percent=1.0), at=T0 + 1)
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    tracker.apply(path_of("n-6"), native("n-6", 2, T0 + 3, traceparent, stage="Script", percent=3.0), at=T0 + 3)
    tracker.apply(path_of("n-6"), native("n-6", 3, T0 + 20, traceparent, stage="TTS", percent=30.0), at=T0 + 20)
    done = {"status": "completed", "stage": "Complete", "percent": 100.0, "endedAt": iso(T0 + 30)}
    tracker.apply(path_of("n-6"), native("n-6", 4, T0 + 30, traceparent, **done), at=T0 + 30)
    tracer.close(T0 + 31)

    assert provider.force_flush()
    assert receiver.all() == []  # the pipeline traces this job itself; the sidecar had no stall to add


def test_a_cancelled_aura_job_ends_its_trace_in_error_saying_cancelled(
    tracker: Tracker, tracer: JobTracer, provider: TracerProvider, receiver: OtlpHttpReceiver
) -> None:
    job = AuraJob(Path("/unused"), id="aura-6", status=RUNNING, created=T0, started=T0)
    job.progress(T0 + 1, "TTS", 30)
    tracker.apply(path_of(job.id), aura(job), at=T0 + 2)
    job.status = CANCELED
    job.extra = {"CanceledUtc": net_time(T0 + 20), "EndedUtc": net_time(T0 + 20)}
    assert aura(job).status is JobStatus.CANCELLED
    tracker.apply(path_of(job.id), aura(job), at=T0 + 20)

    assert provider.force_flush()
    [root] = receiver.named("job")
    [tts] = receiver.named("TTS")
    assert (root.status_code, tts.status_code) == (STATUS_ERROR, STATUS_ERROR)
    assert root.status_message.startswith("cancelled: ")
    assert root.attributes["aura.job.status"] == "cancelled"

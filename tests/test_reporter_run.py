"""JobRun: one span per stage, metrics, failures, cancel and the next attempt's trace."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

from aura_monitor.clock import FakeClock
from aura_monitor.exceptions import JobCancelled
from aura_monitor.jobs.model import JobStatus
from aura_monitor.reporter import (
    CancelWatch,
    ControlAction,
    JobReporter,
    JobRun,
    PipelineMetrics,
    StageError,
    read_request,
    write_request,
)
from tests.support.reporter_fixtures import parsed


def test_a_job_run_opens_one_span_per_stage_and_moves_the_metrics(
    reporter: JobReporter, fake_clock: FakeClock, tracing: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = tracing
    registry = CollectorRegistry()
    with JobRun(reporter, clock=fake_clock, tracer_provider=provider, metrics=PipelineMetrics(registry)) as run:
        for name in ("Script", "TTS"):
            with run.stage(name) as stage:
                fake_clock.advance(2)
                stage.progress(0.5)
                stage.milestone("half way")
        run.complete("/videos/out.mp4")

    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"job", "Script", "TTS"}
    script = spans["Script"]
    assert script.attributes is not None
    assert dict(script.attributes) == {
        "aura.job.id": "job-1",
        "aura.stage": "Script",
        "aura.job.attempt": 1,
        "aura.stage.outcome": "completed",
    }
    assert script.parent is not None and script.parent.span_id == spans["job"].context.span_id
    assert [event.name for event in script.events] == ["half way"]
    trace_id = format(spans["job"].context.trace_id, "032x")
    assert parsed(reporter).traceparent is not None and trace_id in str(parsed(reporter).traceparent)
    assert registry.get_sample_value("aura_pipeline_stage_duration_seconds_count", {"stage": "tts"}) == 1
    assert registry.get_sample_value("aura_pipeline_stage_duration_seconds_sum", {"stage": "tts"}) == 2
    assert registry.get_sample_value("aura_pipeline_stage_runs_total", {"stage": "script", "outcome": "completed"}) == 1
    assert registry.get_sample_value("aura_pipeline_jobs_total", {"outcome": "completed"}) == 1


def test_a_failing_stage_records_the_exception_and_fails_the_job(
    reporter: JobReporter, fake_clock: FakeClock, tracing: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = tracing
    registry = CollectorRegistry()
    with (
        pytest.raises(StageError),
        JobRun(reporter, clock=fake_clock, tracer_provider=provider, metrics=PipelineMetrics(registry)) as run,
        run.stage("Render"),
    ):
        raise StageError("ffmpeg failed", code="E304-FFMPEG_RUNTIME", stderr_tail="Conversion failed!")

    render = next(span for span in exporter.get_finished_spans() if span.name == "Render")
    assert render.status.status_code is StatusCode.ERROR
    assert [event.name for event in render.events] == ["exception"]
    record = parsed(reporter)
    assert (record.status, record.error_code, record.failure_stage) == (
        JobStatus.FAILED,
        "E304-FFMPEG_RUNTIME",
        "Render",
    )
    assert {stage.name: stage.status for stage in record.stages}["Render"] == "failed"
    assert registry.get_sample_value("aura_pipeline_stage_runs_total", {"stage": "render", "outcome": "failed"}) == 1
    assert registry.get_sample_value("aura_pipeline_jobs_total", {"outcome": "failed"}) == 1


def test_a_cancelled_job_run_ends_cancelled_with_error_spans_saying_it_was_cancelled(
    reporter: JobReporter, fake_clock: FakeClock, tracing: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = tracing
    with (
        pytest.raises(JobCancelled),
        JobRun(reporter, clock=fake_clock, tracer_provider=provider) as run,
        run.stage("TTS"),
    ):
        raise JobCancelled("cancelled on request")

    record = parsed(reporter)
    assert record.status is JobStatus.CANCELLED
    assert {stage.name: stage.status for stage in record.stages}["TTS"] == "pending"
    # The record says cancelled (not failed); the spans are in error so a trace search for errors finds it.
    statuses = {span.name: (span.status.status_code, span.status.description) for span in exporter.get_finished_spans()}
    assert statuses == {
        "job": (StatusCode.ERROR, "cancelled: cancelled on request"),
        "TTS": (StatusCode.ERROR, "cancelled: cancelled on request"),
    }


def test_a_job_run_with_a_cancel_watch_stops_on_request_and_acknowledges_it(
    reporter: JobReporter, fake_clock: FakeClock
) -> None:
    watch = CancelWatch(reporter.job_dir, clock=fake_clock, interval=0)
    with (
        pytest.raises(JobCancelled, match="by sidecar during Render"),
        JobRun(reporter, clock=fake_clock, cancel=watch) as run,
        run.stage("Render"),
    ):
        run.check_cancelled()
        write_request(reporter.job_dir, ControlAction.CANCEL, clock=fake_clock, by="sidecar")
        run.check_cancelled()

    assert parsed(reporter).status is JobStatus.CANCELLED
    assert read_request(reporter.job_dir, ControlAction.CANCEL) is None


def test_leaving_a_job_run_without_completing_leaves_the_record_running(
    reporter: JobReporter, fake_clock: FakeClock
) -> None:
    with JobRun(reporter, clock=fake_clock) as run, run.stage("Finalize") as stage:
        stage.progress(0.8)

    record = parsed(reporter)
    assert (record.status, record.stage, record.percent) == (JobStatus.RUNNING, "Finalize", 99)


def test_the_next_attempt_continues_the_same_trace(
    reporter: JobReporter, fake_clock: FakeClock, tracing: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = tracing
    with pytest.raises(StageError), JobRun(reporter, clock=fake_clock, tracer_provider=provider):
        raise StageError("boom")
    reporter.requeue()
    with JobRun(reporter, clock=fake_clock, tracer_provider=provider) as run:
        run.complete()

    first, second = (span for span in exporter.get_finished_spans() if span.name == "job")
    assert first.context.trace_id == second.context.trace_id
    assert second.parent is not None and second.parent.span_id == first.context.span_id
    assert second.attributes is not None and second.attributes["aura.job.attempt"] == 2

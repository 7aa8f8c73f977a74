from __future__ import annotations

import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

from aura_monitor.clock import FakeClock
from aura_monitor.exceptions import ConfigError, ReporterError
from aura_monitor.model import JobStatus
from aura_monitor.records import parse_record
from aura_monitor.reporter import (
    CancelWatch,
    ControlAction,
    JobCancelled,
    JobReporter,
    JobRun,
    PipelineMetrics,
    StageError,
    StageStatus,
    acknowledge,
    read_request,
    tracer_provider_from_env,
    write_request,
)


def parsed(reporter: JobReporter):  # type: ignore[no-untyped-def]
    return parse_record(reporter.record_path.read_bytes())


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if path.name.endswith(".tmp"))


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def reporter(tmp_path: Path, fake_clock: FakeClock) -> JobReporter:
    return JobReporter.create(tmp_path / "jobs", "job-1", clock=fake_clock, request={"durationSeconds": 4})


@pytest.fixture
def tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_a_created_job_is_a_queued_native_record_the_parser_accepts(reporter: JobReporter) -> None:
    record = parsed(reporter)

    assert record.status is JobStatus.QUEUED
    assert record.stage == "Queued"
    assert record.revision == 1
    assert [stage.name for stage in record.stages] == ["Script", "TTS", "Images", "Render", "Finalize"]
    assert {stage.status for stage in record.stages} == {"pending"}
    assert record.job_log == str(reporter.job_dir / "job.log")
    assert json.loads(reporter.record_path.read_bytes())["request"] == {"durationSeconds": 4}


def test_creating_a_job_that_exists_is_refused(reporter: JobReporter, fake_clock: FakeClock) -> None:
    with pytest.raises(ReporterError, match="already exists"):
        JobReporter.create(reporter.job_dir.parent, "job-1", clock=fake_clock)


def test_every_write_bumps_the_revision_and_leaves_no_temp_file(reporter: JobReporter, fake_clock: FakeClock) -> None:
    reporter.start()
    fake_clock.advance(1)
    reporter.heartbeat()

    assert parsed(reporter).revision == 3
    assert leftovers(reporter.job_dir) == []


def test_progress_updates_are_coalesced_until_the_write_interval_passes(
    reporter: JobReporter, fake_clock: FakeClock
) -> None:
    reporter.start()
    reporter.update(stage="Render", percent=80)
    written = parsed(reporter).revision

    for step in range(1, 50):
        reporter.update(percent=80 + step * 0.1)
    assert parsed(reporter).revision == written

    fake_clock.advance(0.25)
    reporter.update(percent=90)
    assert parsed(reporter).revision == written + 1
    assert parsed(reporter).percent == 90


def test_a_stage_change_is_written_at_once(reporter: JobReporter) -> None:
    reporter.start()
    reporter.update(stage="Script", percent=5)
    reporter.update(stage="TTS", percent=25)

    assert parsed(reporter).stage == "TTS"


def test_flush_writes_what_was_coalesced(reporter: JobReporter) -> None:
    reporter.start()
    reporter.update(stage="Render", percent=80)
    reporter.update(percent=85, message="encoding")
    reporter.flush()

    assert (parsed(reporter).percent, parsed(reporter).message) == (85, "encoding")


def test_last_progress_moves_only_when_percent_or_stage_changes(reporter: JobReporter, fake_clock: FakeClock) -> None:
    reporter.start()
    reporter.update(stage="Render", percent=80)
    progressed_at = parsed(reporter).last_progress_at

    fake_clock.advance(5)
    reporter.heartbeat()
    reporter.update(percent=80, message="still 80")
    fake_clock.advance(5)
    reporter.heartbeat()
    record = parsed(reporter)
    assert record.last_progress_at == progressed_at
    assert record.heartbeat_at == pytest.approx(fake_clock.now())

    reporter.update(percent=81)
    fake_clock.advance(1)
    reporter.flush()
    assert parsed(reporter).last_progress_at == pytest.approx(fake_clock.now() - 1)


def test_history_keeps_the_last_20_samples_and_logs_the_last_50_lines(
    reporter: JobReporter, fake_clock: FakeClock
) -> None:
    reporter.start()
    for step in range(30):
        fake_clock.advance(1)
        reporter.update(stage="Render", percent=80 + step * 0.5)
    for line in range(60):
        reporter.log(f"line {line}")
    reporter.flush()

    record = parsed(reporter)
    assert len(record.history) == 20
    assert record.history[-1].percent == 94.5
    logs = json.loads(reporter.record_path.read_bytes())["logs"]
    assert len(logs) == 50
    assert logs[0].endswith("] line 10") and logs[-1].endswith("] line 59")
    assert reporter.log_path.read_text().count("\n") == 60


def test_stages_carry_status_times_and_artifacts(reporter: JobReporter, tmp_path: Path) -> None:
    reporter.start()
    reporter.begin_stage("Script", percent=5)
    reporter.end_stage("Script", StageStatus.COMPLETED, [tmp_path / "script.json"])
    reporter.begin_stage("TTS", percent=25)

    stages = {stage.name: stage for stage in parsed(reporter).stages}
    assert stages["Script"].status == "completed"
    assert stages["Script"].artifacts == (str(tmp_path / "script.json"),)
    assert stages["Script"].completed_at is not None
    assert stages["TTS"].status == "running"
    assert stages["Render"].status == "pending"


def test_encoder_and_output_are_recorded(reporter: JobReporter, tmp_path: Path) -> None:
    reporter.start()
    reporter.set_encoder(4242, progress_path=tmp_path / "p", log_path=tmp_path / "l", output_path=tmp_path / "o")
    reporter.complete(tmp_path / "video.mp4")

    record = parsed(reporter)
    assert (record.encoder_pid, record.progress_file, record.encoder_log) == (
        4242,
        str(tmp_path / "p"),
        str(tmp_path / "l"),
    )
    assert record.output_path == str(tmp_path / "video.mp4")
    assert (record.status, record.percent, record.stage) == (JobStatus.COMPLETED, 100, "Complete")
    assert record.completed_at is not None
    assert record.worker_pid == os.getpid()


def test_a_failure_is_recorded_with_its_error(reporter: JobReporter) -> None:
    reporter.start()
    reporter.update(stage="Render", percent=87)
    reporter.fail("E304-FFMPEG_RUNTIME", "ffmpeg failed", stderr_tail="Conversion failed!")

    record = parsed(reporter)
    assert record.status is JobStatus.FAILED
    assert (record.error_code, record.failure_stage, record.stderr_snippet) == (
        "E304-FFMPEG_RUNTIME",
        "Render",
        "Conversion failed!",
    )
    assert record.inconsistencies == ()


def test_requeue_makes_the_next_attempt_and_keeps_completed_stages(reporter: JobReporter, tmp_path: Path) -> None:
    reporter.start()
    reporter.begin_stage("Script", percent=5)
    reporter.end_stage("Script", StageStatus.COMPLETED, [tmp_path / "script.json"])
    reporter.begin_stage("TTS", percent=25)
    reporter.end_stage("TTS", StageStatus.FAILED)
    reporter.fail("E502-UPSTREAM_UNAVAILABLE", "provider down")

    reporter.requeue()

    record = parsed(reporter)
    stages = {stage.name: stage for stage in record.stages}
    assert (record.status, record.attempt, record.error_code) == (JobStatus.QUEUED, 2, None)
    assert stages["Script"].status == "completed"
    assert stages["Script"].artifacts == (str(tmp_path / "script.json"),)
    assert stages["TTS"].status == "pending"


def test_a_loaded_record_continues_where_its_writer_stopped(reporter: JobReporter, fake_clock: FakeClock) -> None:
    reporter.start(traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    reporter.set_extra("pipelineVersion", "7")
    reporter.set_encoder(77, progress_path="/p", log_path="/l", output_path="/o")
    reporter.log("hello")
    reporter.flush()

    again = JobReporter.load(reporter.job_dir.parent, "job-1", clock=fake_clock)
    assert again.snapshot() == reporter.snapshot()
    again.heartbeat()
    assert parsed(again).revision == reporter.revision + 1


@pytest.mark.reliability
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a real tmpfs needs root (CI runs as root)")
def test_a_full_disk_raises_a_clear_error_and_keeps_the_last_good_record(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    assert mounted.returncode == 0, f"cannot mount a 64k tmpfs as root: {mounted.stderr.decode().strip()}"
    try:
        reporter = JobReporter.create(disk / "jobs", "job-1", clock=FakeClock())
        reporter.start()
        good = reporter.record_path.read_bytes()
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            with pytest.raises(OSError):
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)

        with pytest.raises(ReporterError, match="no space left on the device"):
            reporter.update(stage="Render", percent=80, message="x" * 8000)

        assert reporter.record_path.read_bytes() == good
        assert parse_record(good).status is JobStatus.RUNNING
        assert leftovers(reporter.job_dir) == []
        filler.unlink()
        reporter.flush()
        assert parsed(reporter).stage == "Render"
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_file_size_limit_raises_a_clear_error_and_keeps_the_last_good_record(tmp_path: Path) -> None:
    reporter = JobReporter.create(tmp_path / "jobs", "job-1", clock=FakeClock())
    good = reporter.record_path.read_bytes()
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from aura_monitor.clock import FakeClock
        from aura_monitor.exceptions import ReporterError
        from aura_monitor.reporter import JobReporter
        reporter = JobReporter.load(Path({str(tmp_path / "jobs")!r}), "job-1", clock=FakeClock())
        try:
            reporter.update(stage="Render", percent=80, message="x" * 20000)
        except ReporterError as exc:
            print(exc)
        """
    )

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, preexec_fn=limit_file_size, timeout=60
    )

    assert "the file size limit is exceeded" in result.stdout, result.stderr
    assert reporter.record_path.read_bytes() == good
    assert leftovers(reporter.job_dir) == []


@pytest.mark.reliability
def test_a_vanished_jobs_dir_raises_a_clear_error(reporter: JobReporter) -> None:
    reporter.start()
    shutil.rmtree(reporter.job_dir.parent)

    with pytest.raises(ReporterError, match="no longer exists"):
        reporter.heartbeat()
    assert not reporter.job_dir.exists()


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
        "aura.attempt": 1,
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


def test_a_cancelled_job_run_ends_cancelled_without_an_error_status(
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
    assert all(span.status.status_code is not StatusCode.ERROR for span in exporter.get_finished_spans())


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


def test_control_requests_are_written_read_and_acknowledged(reporter: JobReporter, fake_clock: FakeClock) -> None:
    watch = CancelWatch(reporter.job_dir, clock=fake_clock, interval=1.0)
    assert not watch.requested()

    sent = write_request(reporter.job_dir, ControlAction.CANCEL, clock=fake_clock, by="sidecar")
    assert not watch.requested()  # checked less than an interval ago
    fake_clock.advance(1)
    assert watch.requested()

    pending = read_request(reporter.job_dir, ControlAction.CANCEL)
    assert pending is not None
    assert (pending.request_id, pending.by, pending.requested_at) == (sent.request_id, "sidecar", fake_clock.now() - 1)
    acknowledge(pending)
    assert read_request(reporter.job_dir, ControlAction.CANCEL) is None
    assert read_request(reporter.job_dir, ControlAction.RETRY) is None


def test_a_garbled_request_file_still_counts_as_a_request(reporter: JobReporter) -> None:
    (reporter.job_dir / "requests").mkdir()
    (reporter.job_dir / "requests" / "retry.json").write_text("{not json")

    pending = read_request(reporter.job_dir, ControlAction.RETRY)
    assert pending is not None and pending.request_id is None


class _Collector:
    """A real HTTP endpoint counting OTLP trace exports."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                collector.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[_Collector]:
    running = _Collector()
    yield running
    running.close()


def test_tracing_exports_over_otlp_http_to_the_configured_endpoint(collector: _Collector) -> None:
    provider = tracer_provider_from_env(
        {"OTEL_SERVICE_NAME": "render-farm", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}
    )
    provider.get_tracer("test").start_span("job").end()
    provider.shutdown()

    assert provider.resource.attributes["service.name"] == "render-farm"
    assert collector.paths == ["/v1/traces"]


def test_tracing_exports_nothing_when_the_exporter_is_none(collector: _Collector) -> None:
    provider = tracer_provider_from_env(
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}
    )
    provider.get_tracer("test").start_span("job").end()
    provider.shutdown()

    assert provider.resource.attributes["service.name"] == "aura-pipeline"
    assert collector.paths == []


def test_tracing_can_print_spans_to_the_console() -> None:
    out = io.StringIO()
    provider = tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "farm"}, console=out)
    provider.get_tracer("test").start_span("stage-span").end()
    provider.shutdown()

    assert '"name": "stage-span"' in out.getvalue()


def test_an_unknown_traces_exporter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="zipkin"):
        tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "zipkin"})

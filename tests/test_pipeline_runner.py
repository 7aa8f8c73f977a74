from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

from aura_monitor.clock import SystemClock
from aura_monitor.jobs.model import JobStatus
from aura_monitor.pipeline import (
    FfmpegTools,
    JobNotRunnable,
    JobWorkspace,
    RenderRequest,
    RunnerSettings,
    enqueue_job,
    run_job,
)
from aura_monitor.pipeline.ffmpeg import probe
from aura_monitor.records import read_record
from aura_monitor.reporter import ControlAction, JobReporter, PipelineMetrics, write_request
from tests.support import wait_for
from tests.support.pipeline import out_time, process_state, render_encoder

SETTINGS = RunnerSettings(stop_grace_s=2.0, heartbeat_interval_s=0.5)


@pytest.fixture(scope="module")
def tools() -> FfmpegTools:
    return FfmpegTools.detect()


class Background:
    """run_job in a thread, so the test can act on the job while it renders."""

    def __init__(self, workspace: JobWorkspace, tools: FfmpegTools, provider: TracerProvider | None = None) -> None:
        self.status: JobStatus | None = None
        self.error: BaseException | None = None

        def target() -> None:
            try:
                self.status = run_job(
                    workspace, clock=SystemClock(), tools=tools, settings=SETTINGS, tracer_provider=provider
                )
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def result(self, timeout: float = 60) -> JobStatus | None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the job did not end in time"
        if self.error is not None:
            raise self.error
        return self.status


@pytest.fixture
def background() -> Iterator[list[Background]]:
    started: list[Background] = []
    yield started
    for job in started:
        job.thread.join(30)


def workspace_for(jobs_dir: Path, request: RenderRequest, job_id: str = "job-1") -> JobWorkspace:
    enqueue_job(jobs_dir, request, clock=SystemClock(), job_id=job_id)
    return JobWorkspace.of(jobs_dir, job_id)


def test_a_healthy_job_renders_a_playable_video_with_a_span_and_metrics_per_stage(
    jobs_dir: Path, tools: FfmpegTools, tracing: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = tracing
    registry = CollectorRegistry()
    workspace = workspace_for(jobs_dir, RenderRequest(duration_s=4, width=320, height=180))

    status = run_job(
        workspace,
        clock=SystemClock(),
        tools=tools,
        settings=SETTINGS,
        tracer_provider=provider,
        metrics=PipelineMetrics(registry),
    )

    assert status is JobStatus.COMPLETED
    video = probe(workspace.output, tools)
    assert (video.width, video.height, video.has_audio) == (320, 180, True)
    assert video.duration_s == pytest.approx(4.0, abs=0.1)
    assert video.size_bytes == workspace.output.stat().st_size
    job = read_record(str(workspace.record))
    assert (job.status, job.percent, job.output_path) == (JobStatus.COMPLETED, 100, str(workspace.output))
    assert [stage.status for stage in job.stages] == ["completed"] * 5
    assert [point.percent for point in job.history] == sorted(point.percent for point in job.history)
    assert workspace.temporary_files(keep=[Path(a) for stage in job.stages for a in stage.artifacts]) == []
    spans = exporter.get_finished_spans()
    assert [span.name for span in spans] == ["Script", "TTS", "Images", "Render", "Finalize", "job"]
    assert all(span.status.status_code is not StatusCode.ERROR for span in spans)
    assert {span.context.trace_id for span in spans} == {spans[-1].context.trace_id}
    for stage in ("script", "tts", "images", "render", "finalize"):
        assert registry.get_sample_value("aura_pipeline_stage_duration_seconds_count", {"stage": stage}) == 1
    assert registry.get_sample_value("aura_pipeline_jobs_total", {"outcome": "completed"}) == 1
    assert registry.get_sample_value("aura_pipeline_render_speed_ratio_count") == 1


def test_a_longer_wider_request_gets_its_own_duration_and_frame_size(jobs_dir: Path, tools: FfmpegTools) -> None:
    workspace = workspace_for(jobs_dir, RenderRequest(duration_s=7, width=256, height=144, fps=10))

    assert run_job(workspace, clock=SystemClock(), tools=tools, settings=SETTINGS) is JobStatus.COMPLETED

    video = probe(workspace.output, tools)
    assert (video.width, video.height) == (256, 144)
    assert video.duration_s == pytest.approx(7.0, abs=0.15)
    assert len(read_record(str(workspace.record)).stages[0].artifacts) == 1 + 4  # script + one caption per scene


def test_cancel_mid_render_stops_ffmpeg_and_leaves_no_temporary_files(
    jobs_dir: Path, tools: FfmpegTools, background: list[Background]
) -> None:
    workspace = workspace_for(jobs_dir, RenderRequest(duration_s=6, realtime=True))
    job = Background(workspace, tools)
    background.append(job)

    def under_way() -> dict[str, Any] | None:
        encoder = render_encoder(workspace.job_dir)
        return encoder if encoder and (out_time(encoder["progressPath"]) or 0) > 0.5 else None

    encoder = wait_for(under_way, what="the render to be under way")

    write_request(workspace.job_dir, ControlAction.CANCEL, clock=SystemClock(), by="test")

    assert job.result() is JobStatus.CANCELLED
    assert process_state(encoder["pid"]) is None
    job_record = read_record(str(workspace.record))
    assert job_record.status is JobStatus.CANCELLED
    assert not Path(encoder["outputPath"]).exists()
    kept = [Path(a) for stage in job_record.stages for a in stage.artifacts]
    assert workspace.temporary_files(keep=kept) == []
    assert {p.name for p in workspace.work_dir.iterdir()} == {p.name for p in kept}
    assert not (workspace.job_dir / "requests" / "cancel.json").exists()
    assert not workspace.output.exists()


def test_a_retry_of_a_job_failed_in_render_resumes_at_render_reusing_earlier_artifacts(
    jobs_dir: Path,
    tools: FfmpegTools,
    tracing: tuple[TracerProvider, InMemorySpanExporter],
    background: list[Background],
) -> None:
    provider, exporter = tracing
    workspace = workspace_for(jobs_dir, RenderRequest(duration_s=2.5, realtime=True))
    job = Background(workspace, tools, provider)
    background.append(job)
    encoder = wait_for(lambda: render_encoder(workspace.job_dir), what="the render to start")
    os.kill(encoder["pid"], signal.SIGKILL)  # the encoder dies under the job: a real Render failure
    assert job.result() is JobStatus.FAILED
    failed = read_record(str(workspace.record))
    assert (failed.error_code, failed.failure_stage) == ("E304-FFMPEG_RUNTIME", "Render")
    earlier = {stage.name: stage for stage in failed.stages if stage.status == "completed"}
    assert set(earlier) == {"Script", "TTS", "Images"}
    stamps = {path: Path(path).stat().st_mtime_ns for stage in earlier.values() for path in stage.artifacts}
    exporter.clear()

    JobReporter.load(jobs_dir, "job-1", clock=SystemClock()).requeue()
    assert run_job(workspace, clock=SystemClock(), tools=tools, settings=SETTINGS, tracer_provider=provider) is (
        JobStatus.COMPLETED
    )

    retried = read_record(str(workspace.record))
    assert retried.attempt == 2
    assert [span.name for span in exporter.get_finished_spans()] == ["Render", "Finalize", "job"]
    assert {path: Path(path).stat().st_mtime_ns for path in stamps} == stamps
    for name, stage in earlier.items():
        again = next(s for s in retried.stages if s.name == name)
        assert (again.status, again.started_at, again.artifacts) == ("completed", stage.started_at, stage.artifacts)
    assert any("Script: completed by an earlier attempt" in line for line in workspace.job_log.read_text().splitlines())
    assert probe(workspace.output, tools).duration_s == pytest.approx(2.5, abs=0.1)


def test_only_a_queued_job_can_be_rendered(jobs_dir: Path, tools: FfmpegTools) -> None:
    workspace = workspace_for(jobs_dir, RenderRequest())
    JobReporter.load(jobs_dir, "job-1", clock=SystemClock()).cancel()

    with pytest.raises(JobNotRunnable, match="cancelled"):
        run_job(workspace, clock=SystemClock(), tools=tools, settings=SETTINGS)


def test_an_invalid_request_fails_the_job_with_a_validation_error(jobs_dir: Path, tools: FfmpegTools) -> None:
    JobReporter.create(jobs_dir, "job-1", clock=SystemClock(), request={"width": 321})

    status = run_job(JobWorkspace.of(jobs_dir, "job-1"), clock=SystemClock(), tools=tools, settings=SETTINGS)

    job = read_record(str(jobs_dir / "job-1" / "job.json"))
    assert status is JobStatus.FAILED
    assert job.error_code == "E400-VALIDATION"
    assert "width must be an even number" in (job.error_message or "")

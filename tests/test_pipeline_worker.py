from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from aura_monitor.clock import FakeClock, SystemClock
from aura_monitor.jobs.model import JobStatus
from aura_monitor.pipeline import Fault, RenderRequest, Worker, WorkerSettings, enqueue_job
from aura_monitor.records import read_record
from aura_monitor.records.timestamps import parse_iso
from aura_monitor.reporter import ControlAction, read_request, write_request
from tests.support import wait_for
from tests.support.pipeline import process_state, record, render_encoder

StartWorker = Callable[..., tuple[Worker, CollectorRegistry]]


@pytest.fixture
def start_worker(jobs_dir: Path) -> Iterator[StartWorker]:
    """A Worker running in a thread on the test's jobs dir, with a fresh registry; stopped afterwards."""
    running: list[tuple[threading.Event, threading.Thread]] = []

    def start(**settings: object) -> tuple[Worker, CollectorRegistry]:
        options: dict[str, object] = {"poll_interval_s": 0.05, "stop_grace_s": 1.0, **settings}
        registry = CollectorRegistry()
        worker = Worker(WorkerSettings(jobs_dir=jobs_dir, **options), clock=SystemClock(), registry=registry)  # type: ignore[arg-type]
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        running.append((stop, thread))
        return worker, registry

    yield start
    for stop, thread in running:
        stop.set()
        thread.join(30)


def status(jobs_dir: Path, job_id: str) -> JobStatus:
    return read_record(str(jobs_dir / job_id / "job.json")).status


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_worker_command_takes_jobs_by_priority_then_age_and_serves_metrics(jobs_dir: Path) -> None:
    clock = FakeClock(start=1_800_000_000)
    for job_id, priority in (("older-normal", 5), ("urgent", 1), ("newer-normal", 5)):
        enqueue_job(jobs_dir, RenderRequest(duration_s=1), clock=clock, priority=priority, job_id=job_id)
        clock.advance(1)
    port = free_port()
    log = jobs_dir.parent / "worker.log"
    with open(log, "wb") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "aura_monitor", "worker", "--jobs-dir", str(jobs_dir), "--concurrency", "1",
             "--metrics-port", str(port), "--poll-interval", "0.05"],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(
            lambda: all(status(jobs_dir, j) is JobStatus.COMPLETED for j in ("older-normal", "urgent", "newer-normal")),
            timeout=60,
            what="all three jobs to complete",
        )
        started = {j: parse_iso(record(jobs_dir / j)["startedAt"]) for j in ("older-normal", "urgent", "newer-normal")}
        assert sorted(started, key=started.__getitem__) == ["urgent", "older-normal", "newer-normal"]
        assert started["older-normal"] >= parse_iso(record(jobs_dir / "urgent")["completedAt"])
        assert {record(jobs_dir / j)["worker"]["pid"] for j in started} != {worker.pid}

        def scraped() -> str | None:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            return text if 'aura_pipeline_jobs_total{outcome="completed"} 3.0' in text else None

        metrics = wait_for(scraped, what="the completed jobs in /metrics")
        assert 'aura_pipeline_stage_duration_seconds_count{stage="render"} 3.0' in metrics
        assert "aura_pipeline_render_speed_ratio_count 3.0" in metrics
        assert "aura_pipeline_worker_jobs_started_total 3.0" in metrics
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()
    assert not any((jobs_dir / j / "claim.lock").exists() for j in ("older-normal", "urgent", "newer-normal"))


def test_a_queued_job_is_cancelled_before_it_starts(jobs_dir: Path) -> None:
    enqueue_job(jobs_dir, RenderRequest(), clock=SystemClock(), job_id="job-1")
    write_request(jobs_dir / "job-1", ControlAction.CANCEL, clock=SystemClock())
    worker = Worker(WorkerSettings(jobs_dir=jobs_dir), clock=SystemClock(), registry=CollectorRegistry())

    assert worker.step()

    job = record(jobs_dir / "job-1")
    assert (job["status"], job["startedAt"], job["worker"]) == ("cancelled", None, None)
    assert worker.running_jobs == []
    assert read_request(jobs_dir / "job-1", ControlAction.CANCEL) is None
    assert not (jobs_dir / "job-1" / "claim.lock").exists()


def test_a_retry_request_requeues_a_failed_job_and_the_worker_resumes_it_at_the_failed_stage(
    jobs_dir: Path, start_worker: StartWorker
) -> None:
    enqueue_job(jobs_dir, RenderRequest(duration_s=1.5, realtime=True), clock=SystemClock(), job_id="job-1")
    worker, registry = start_worker()
    encoder = wait_for(lambda: render_encoder(jobs_dir / "job-1"), what="the render to start")
    os.kill(encoder["pid"], signal.SIGKILL)
    wait_for(lambda: status(jobs_dir, "job-1") is JobStatus.FAILED and not worker.running_jobs, what="the failure")
    first = read_record(str(jobs_dir / "job-1" / "job.json"))

    write_request(jobs_dir / "job-1", ControlAction.RETRY, clock=SystemClock(), by="test")

    wait_for(lambda: status(jobs_dir, "job-1") is JobStatus.COMPLETED, timeout=40, what="the retry to complete")
    retried = read_record(str(jobs_dir / "job-1" / "job.json"))
    assert (first.failure_stage, retried.attempt) == ("Render", 2)
    assert [s.started_at for s in retried.stages[:3]] == [s.started_at for s in first.stages[:3]]
    assert retried.stages[3].started_at is not None and retried.stages[3].started_at > (first.completed_at or 0)
    assert read_request(jobs_dir / "job-1", ControlAction.RETRY) is None
    assert registry.get_sample_value("aura_pipeline_jobs_total", {"outcome": "failed"}) == 1
    assert (
        registry.get_sample_value(
            "aura_pipeline_worker_control_requests_total", {"action": "retry", "decision": "requeued"}
        )
        == 1
    )


def test_a_render_process_that_ignores_its_cancel_is_killed_and_the_job_cancelled(
    jobs_dir: Path, start_worker: StartWorker
) -> None:
    # no-progress-sync never looks at its cancel request while it waits for ffmpeg
    request = RenderRequest(duration_s=4, fault=Fault.NO_PROGRESS_SYNC, fault_scale=1)
    enqueue_job(jobs_dir, request, clock=SystemClock(), job_id="job-1")
    start_worker(cancel_escalation_s=1.0)
    encoder = wait_for(lambda: render_encoder(jobs_dir / "job-1"), what="the render to start")

    write_request(jobs_dir / "job-1", ControlAction.CANCEL, clock=SystemClock())

    wait_for(lambda: status(jobs_dir, "job-1") is JobStatus.CANCELLED, what="the cancel")
    job = record(jobs_dir / "job-1")
    assert "did not respond and was killed" in job["message"]
    wait_for(lambda: process_state(encoder["pid"]) is None, what="ffmpeg to be gone")
    assert not Path(encoder["outputPath"]).exists()
    assert read_request(jobs_dir / "job-1", ControlAction.CANCEL) is None


def test_a_crashed_render_process_leaves_its_record_running_and_a_cancel_then_ends_it(
    jobs_dir: Path, start_worker: StartWorker
) -> None:
    enqueue_job(jobs_dir, RenderRequest(duration_s=2, fault=Fault.CRASH_WORKER), clock=SystemClock(), job_id="job-1")
    _, registry = start_worker()
    wait_for(lambda: registry.get_sample_value("aura_pipeline_jobs_total", {"outcome": "crashed"}), what="the crash")
    crashed = record(jobs_dir / "job-1")
    partial = Path(crashed["encoder"]["outputPath"])
    assert (crashed["status"], crashed["stage"]) == ("running", "Render")
    assert partial.exists()
    assert not (jobs_dir / "job-1" / "claim.lock").exists()

    write_request(jobs_dir / "job-1", ControlAction.CANCEL, clock=SystemClock())

    wait_for(lambda: status(jobs_dir, "job-1") is JobStatus.CANCELLED, what="the cancel")
    assert not partial.exists()
    assert "the process running it was already gone" in record(jobs_dir / "job-1")["message"]


def test_a_render_process_that_exits_without_starting_its_job_fails_it_instead_of_looping(
    jobs_dir: Path, start_worker: StartWorker
) -> None:
    enqueue_job(jobs_dir, RenderRequest(), clock=SystemClock(), job_id="job-1")
    _, registry = start_worker(python="/bin/false")

    wait_for(lambda: status(jobs_dir, "job-1") is JobStatus.FAILED, what="the job to fail")

    job = read_record(str(jobs_dir / "job-1" / "job.json"))
    assert job.error_code == "E500-WORKER"
    assert "exited (exit code 1) without starting the job" in (job.error_message or "")
    assert registry.get_sample_value("aura_pipeline_worker_jobs_started_total") == 1
    assert not (jobs_dir / "job-1" / "claim.lock").exists()

"""Each fault, run for real by `aura-monitor render`, leaves the on-disk evidence of its failure mode.

All fault jobs start together (module fixture) and run in parallel while the tests inspect them, so
the faults whose evidence lasts a limited time (a window scaled by SCALES) are checked first.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg
import psutil
import pytest

from aura_monitor.clock import SystemClock
from aura_monitor.pipeline import Fault, FaultPlan, FfmpegTools, JobWorkspace, RenderRequest, enqueue_job
from aura_monitor.pipeline.ffmpeg import last_progress, probe
from aura_monitor.records.timestamps import parse_iso
from tests.support import wait_for
from tests.support.pipeline import (
    kill_session,
    out_time,
    process_state,
    record,
    render_encoder,
    render_process,
    wait_channel,
)

# Windows long enough to outlast the tests before them: unsynced render 15 s, cap overrun 30 s,
# slow finalize 15 s (production: 60 s, 60 s, 50 s).
SCALES = {Fault.NO_PROGRESS_SYNC: 0.25, Fault.CAP_PROGRESS: 0.5, Fault.SLOW_FINALIZE: 0.3}


@dataclass
class FaultJob:
    workspace: JobWorkspace
    process: subprocess.Popen[bytes]

    def record(self) -> dict[str, Any]:
        return record(self.workspace.job_dir)

    def in_render(self) -> dict[str, Any] | None:
        """The encoder of the Render stage once it is running, else None."""
        return render_encoder(self.workspace.job_dir)


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Fault, FaultJob]]:
    jobs_dir = tmp_path_factory.mktemp("faults") / "jobs"
    jobs: dict[Fault, FaultJob] = {}
    try:
        for fault in Fault:
            request = RenderRequest(duration_s=4, fault=fault, fault_scale=SCALES.get(fault, 0.05))
            job_id = enqueue_job(jobs_dir, request, clock=SystemClock(), job_id=fault.value)
            workspace = JobWorkspace.of(jobs_dir, job_id)
            jobs[fault] = FaultJob(workspace, render_process(jobs_dir, job_id, "--stop-grace", "1"))
        yield jobs
    finally:
        for job in jobs.values():
            kill_session(job.process)


@pytest.fixture(scope="module")
def tools() -> FfmpegTools:
    return FfmpegTools.detect()


def heartbeat(job: FaultJob) -> float:
    return parse_iso(job.record()["heartbeatAt"])


def test_no_progress_sync_leaves_the_record_untouched_while_ffmpeg_advances(faults: dict[Fault, FaultJob]) -> None:
    job = faults[Fault.NO_PROGRESS_SYNC]
    encoder = wait_for(job.in_render, timeout=40, what="the render to start")
    frozen = job.record()
    log, output = Path(encoder["logPath"]), Path(encoder["outputPath"])
    first = (out_time(encoder["progressPath"]) or 0.0, log.stat().st_size)

    wait_for(
        lambda: (
            (out_time(encoder["progressPath"]) or 0) > first[0] + 0.5
            and log.stat().st_size > first[1]
            and output.is_file()
            and output.stat().st_size > 0
        ),
        what="ffmpeg's progress, log and output to advance",
    )

    assert job.record() == frozen
    assert process_state(encoder["pid"]) in {"R", "S"}


def test_cap_progress_freezes_the_record_at_95_while_the_render_continues(faults: dict[Fault, FaultJob]) -> None:
    job = faults[Fault.CAP_PROGRESS]
    capped = wait_for(
        lambda: (r := job.record())["stage"] == "Render" and r["percent"] == 95 and r, timeout=40, what="the cap"
    )
    progress_path = capped["encoder"]["progressPath"]
    first = out_time(progress_path) or 0.0

    wait_for(lambda: (out_time(progress_path) or 0) >= first + 1.5, what="ffmpeg to keep encoding")
    wait_for(lambda: heartbeat(job) > parse_iso(capped["heartbeatAt"]), what="a heartbeat")

    now = job.record()
    assert (now["stage"], now["percent"], now["lastProgressAt"]) == ("Render", 95, capped["lastProgressAt"])
    assert process_state(capped["encoder"]["pid"]) in {"R", "S"}
    assert now["expectedDurationSeconds"] == 4


def test_slow_finalize_waits_in_finalize_at_95_with_heartbeats_then_completes(
    faults: dict[Fault, FaultJob], tools: FfmpegTools
) -> None:
    job = faults[Fault.SLOW_FINALIZE]
    started = wait_for(
        lambda: (r := job.record())["stage"] == "Finalize" and r, timeout=40, what="finalization to start"
    )

    wait_for(lambda: heartbeat(job) >= parse_iso(started["heartbeatAt"]) + 2, what="heartbeats while finalizing")
    waiting = job.record()
    assert (waiting["status"], waiting["stage"], waiting["lastProgressAt"]) == (
        "running",
        "Finalize",
        started["lastProgressAt"],
    )
    assert 95 <= waiting["percent"] < 100
    assert process_state(waiting["encoder"]["pid"]) in {"R", "S"}

    assert job.process.wait(60) == 0
    final = job.record()
    assert final["status"] == "completed"
    assert parse_iso(final["completedAt"]) - parse_iso(started["lastProgressAt"]) >= 13
    assert probe(Path(final["outputPath"]), tools).duration_s == pytest.approx(4.0, abs=0.1)


def test_hang_encoder_stops_ffmpeg_mid_render_and_the_record_keeps_its_last_progress(
    faults: dict[Fault, FaultJob],
) -> None:
    job = faults[Fault.HANG_ENCODER]
    encoder = wait_for(job.in_render, timeout=40, what="the render to start")
    wait_for(lambda: process_state(encoder["pid"]) == "T", what="ffmpeg to be stopped")
    stopped = job.record()
    position = out_time(encoder["progressPath"])
    cpu = psutil.Process(encoder["pid"]).cpu_times()

    wait_for(lambda: heartbeat(job) >= parse_iso(stopped["heartbeatAt"]) + 1.5, what="two heartbeats")

    now = job.record()
    assert 80 < stopped["percent"] < 95
    assert (now["percent"], now["lastProgressAt"], now["status"]) == (
        stopped["percent"],
        stopped["lastProgressAt"],
        "running",
    )
    assert out_time(encoder["progressPath"]) == position
    assert process_state(encoder["pid"]) == "T"
    assert psutil.Process(encoder["pid"]).cpu_times() == cpu


def test_stderr_deadlock_blocks_ffmpeg_on_its_unread_stderr_pipe(faults: dict[Fault, FaultJob]) -> None:
    job = faults[Fault.STDERR_DEADLOCK]
    encoder = wait_for(job.in_render, timeout=40, what="the render to start")
    wait_for(lambda: "pipe_write" in wait_channel(encoder["pid"]), what="ffmpeg to block writing stderr")
    blocked = job.record()
    position = out_time(encoder["progressPath"])
    cpu = psutil.Process(encoder["pid"]).cpu_times()

    wait_for(lambda: heartbeat(job) >= parse_iso(blocked["heartbeatAt"]) + 1.5, what="two heartbeats")

    assert encoder["logPath"] is None
    assert process_state(encoder["pid"]) == "S" and "pipe_write" in wait_channel(encoder["pid"])
    assert out_time(encoder["progressPath"]) == position
    assert psutil.Process(encoder["pid"]).cpu_times() == cpu
    assert job.record()["lastProgressAt"] == blocked["lastProgressAt"]


def test_upstream_errors_log_repeated_provider_failures_and_tts_never_progresses(
    faults: dict[Fault, FaultJob],
) -> None:
    job = faults[Fault.UPSTREAM_ERRORS]

    def provider_errors() -> list[str]:
        log = job.workspace.job_log
        lines = log.read_text().splitlines() if log.is_file() else []
        errors = [line for line in lines if "TTS provider error" in line]
        kinds = {kind for kind in ("HTTP 429 Too Many Requests", "HTTP 503", "timed out") for e in errors if kind in e}
        return errors if len(kinds) == 3 else []

    errors = wait_for(provider_errors, timeout=40, what="429, 503 and timeout errors in the job log")

    now = job.record()
    assert (now["status"], now["stage"], now["percent"], now["stagePercent"]) == ("running", "TTS", 25, 0)
    tts_started = next(stage for stage in now["stages"] if stage["name"] == "TTS")["startedAt"]
    assert parse_iso(now["lastProgressAt"]) <= parse_iso(tts_started) + 0.01
    assert len(errors) >= 3
    assert any("TTS provider error" in line for line in now["logs"])
    assert not job.workspace.narration.exists()


def test_crash_worker_kills_the_render_process_and_ffmpeg_mid_render(
    faults: dict[Fault, FaultJob], tools: FfmpegTools
) -> None:
    job = faults[Fault.CRASH_WORKER]

    assert job.process.wait(60) == -9
    final = job.record()
    encoder = final["encoder"]
    wait_for(lambda: process_state(encoder["pid"]) is None, what="ffmpeg to be gone")
    assert (final["status"], final["stage"], final["completedAt"]) == ("running", "Render", None)
    assert 80 < final["percent"] < 95
    assert final["worker"]["pid"] == job.process.pid and not psutil.pid_exists(job.process.pid)
    partial = Path(encoder["outputPath"])
    assert partial.stat().st_size > 0
    with pytest.raises(ffmpeg.Error):
        probe(partial, tools)  # killed before writing its index: an incomplete file


def test_drop_completion_finishes_everything_but_the_terminal_write(
    faults: dict[Fault, FaultJob], tools: FfmpegTools
) -> None:
    job = faults[Fault.DROP_COMPLETION]

    assert job.process.wait(60) == 0
    final = job.record()
    assert (final["status"], final["stage"], final["completedAt"]) == ("running", "Finalize", None)
    assert 95 <= final["percent"] < 100
    assert [stage["status"] for stage in final["stages"]] == ["completed"] * 5
    video = probe(Path(final["outputPath"]), tools)
    assert video.duration_s == pytest.approx(4.0, abs=0.1)
    assert video.size_bytes == Path(final["outputPath"]).stat().st_size
    render_log = job.workspace.encoder_log("Render").read_text().splitlines()
    assert any("muxing overhead" in line for line in render_log[-25:])  # ffmpeg ended normally
    ended = last_progress(job.workspace.encoder_progress("Render"))
    assert ended is not None and ended.ended
    assert not psutil.pid_exists(final["worker"]["pid"])


def test_without_a_fault_the_plan_changes_nothing() -> None:
    plan = FaultPlan()

    assert (plan.timeline_s(4), plan.render_readrate(4), plan.finalize_readrate(4)) == (4, None, None)
    assert plan.render_percent(2, 4, 4) == 87.5 and plan.render_percent(4, 4, 4) == 95
    assert plan.syncs_render_progress and not (plan.stderr_piped or plan.drops_completion or plan.overloaded_provider)


def test_fault_timings_follow_the_scale() -> None:
    assert FaultPlan(Fault.SLOW_FINALIZE, scale=1).finalize_readrate(4) == pytest.approx(4 / 50)
    assert FaultPlan(Fault.SLOW_FINALIZE, scale=0.1).finalize_readrate(4) == pytest.approx(4 / 5)
    assert FaultPlan(Fault.CAP_PROGRESS, scale=0.5).timeline_s(4) == 34
    assert FaultPlan(Fault.NO_PROGRESS_SYNC, scale=0.5).render_readrate(4) == pytest.approx(4 / 30)


def test_cap_progress_computes_against_the_plan_and_caps_at_95() -> None:
    plan = FaultPlan(Fault.CAP_PROGRESS, scale=1)

    assert plan.render_percent(2, plan.timeline_s(4), 4) == 87.5
    assert plan.render_percent(4, plan.timeline_s(4), 4) == 95
    assert plan.render_percent(30, plan.timeline_s(4), 4) == 95

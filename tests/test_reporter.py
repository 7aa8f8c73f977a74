"""The reporter SDK's record writer: atomic native records, coalescing, stages, disk errors."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aura_monitor.clock import FakeClock
from aura_monitor.exceptions import ReporterError
from aura_monitor.jobs.model import JobStatus
from aura_monitor.records import parse_record
from aura_monitor.reporter import JobReporter, StageStatus
from tests.support.reporter_fixtures import leftovers, parsed


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

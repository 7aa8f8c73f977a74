"""One real scenario per finding code: real renders, real ffmpeg logs and processes, records as written."""

from __future__ import annotations

import array
import fcntl
import os
import shutil
import signal
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aura_monitor.aura_writer import CANCELED, DONE, FAILED, RUNNING, AuraJob, net_time
from aura_monitor.config import Settings, load_settings
from aura_monitor.diagnosis import explain_offline
from aura_monitor.diagnosis.media import inspect_output, mp4_truncation
from aura_monitor.exceptions import InvalidJobId, JobNotFound
from tests.media import LiveEncoder, render, start_encoder, truncate
from tests.support import wait_for, write_native


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    valid = render(root / "valid.mp4", 2, log=root / "valid.log", progress=root / "valid.progress")
    short = render(root / "short.mp4", 1)
    empty = root / "empty.mp4"
    empty.write_bytes(b"")
    cut = truncate(render(root / "cut.mp4", 2, faststart=False), 0.5)
    cut_faststart = truncate(render(root / "cut-faststart.mp4", 2), 0.6)
    return {
        "valid": valid,
        "valid_log": root / "valid.log",
        "valid_progress": root / "valid.progress",
        "short": short,
        "empty": empty,
        "cut": cut,
        "cut_faststart": cut_faststart,
    }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEncoder]:
    encoder = start_encoder(tmp_path_factory.mktemp("live"), "live")
    yield encoder
    encoder.stop()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "Logs" / "ffmpeg").mkdir(parents=True)
    return tmp_path


def settings_for(root: Path, **extra: Any) -> Settings:
    return load_settings(jobs_dir=root / "jobs", **extra)


def explain(root: Path, job_id: str, **extra: Any) -> dict[str, Any]:
    return explain_offline(settings_for(root, **extra), job_id).body


def aura(
    root: Path,
    job_id: str,
    *,
    stage: str,
    percent: int,
    quiet_s: float,
    status: int = RUNNING,
    duration_s: float = 2.0,
    **extra: Any,
) -> AuraJob:
    """An Aura record whose last progress (and file mtime) was `quiet_s` seconds ago."""
    now = time.time()
    job = AuraJob(
        root / "jobs",
        id=job_id,
        status=status,
        created=now - quiet_s - 100,
        started=now - quiet_s - 90,
        target_duration_s=duration_s,
        extra=extra,
    )
    job.progress(now - quiet_s - 10, stage, max(0, percent - 5))
    job.progress(now - quiet_s, stage, percent)
    job.write()
    os.utime(job.path, (now - quiet_s, now - quiet_s))
    return job


def aura_log(root: Path, job_id: str, source: Path, age_s: float) -> Path:
    log = root / "Logs" / "ffmpeg" / f"{job_id}.log"
    shutil.copy(source, log)
    stamp = time.time() - age_s
    os.utime(log, (stamp, stamp))
    return log


def verdict(body: dict[str, Any]) -> str:
    return str(body["verdict"])


# -- media checks ---------------------------------------------------------------------------------
def test_ffprobe_accepts_a_truncated_faststart_file_but_the_box_check_does_not(media: dict[str, Path]) -> None:
    evidence = inspect_output(str(media["cut_faststart"]))
    assert evidence.probed and evidence.duration_s and evidence.duration_s > 1.5  # ffprobe is fooled
    assert evidence.truncated and "bytes missing" in evidence.truncated
    assert mp4_truncation(str(media["valid"]), media["valid"].stat().st_size) is None


def test_a_truncated_file_without_faststart_has_no_index(media: dict[str, Path]) -> None:
    evidence = inspect_output(str(media["cut"]))
    assert not evidence.probed and evidence.probe_error
    assert evidence.truncated


# -- Aura's failure table ---------------------------------------------------------------------------
def test_completion_not_propagated(root: Path, media: dict[str, Path]) -> None:
    job_id = "aura-done-not-propagated"
    aura(root, job_id, stage="Rendering", percent=95, quiet_s=360)
    log = aura_log(root, job_id, media["valid_log"], age_s=360)
    assert "muxing overhead" in log.read_text()
    body = explain(root, job_id)
    assert verdict(body) == "completion_not_propagated"
    assert body["findings"][0]["severity"] == "critical"
    assert "ffmpeg ended normally" in body["summary"] and str(media["valid"]) in body["summary"]
    assert "6 min ago" in body["summary"] and "Running at 95%" in body["summary"]


def test_progress_capped_while_ffmpeg_keeps_rendering(root: Path, live: LiveEncoder) -> None:
    job_id = "aura-capped"
    aura(root, job_id, stage="Rendering", percent=95, quiet_s=60, duration_s=120)
    (root / "Logs" / "ffmpeg" / f"{job_id}.log").symlink_to(live.log)
    body = explain(root, job_id)
    assert verdict(body) == "progress_capped", body["findings"]
    assert "frozen at 95%" in body["summary"]


def test_progress_not_reported_while_the_log_grows(root: Path, live: LiveEncoder) -> None:
    job_id = "aura-not-reported"
    aura(root, job_id, stage="Rendering", percent=85, quiet_s=60, duration_s=120)
    (root / "Logs" / "ffmpeg" / f"{job_id}.log").symlink_to(live.log)
    body = explain(root, job_id)
    assert body["stalled"] is True
    assert verdict(body) == "progress_not_reported", body["findings"]


@pytest.mark.parametrize(
    ("output", "expected_words"),
    [(None, "no output path"), ("missing", "is missing"), ("empty", "is empty")],
)
def test_completed_without_output(root: Path, media: dict[str, Path], output: str | None, expected_words: str) -> None:
    path = {None: None, "missing": str(root / "nope.mp4"), "empty": str(media["empty"])}[output]
    now = time.time()
    aura(
        root,
        "aura-no-output",
        stage="Complete",
        percent=100,
        quiet_s=5,
        status=DONE,
        CompletedUtc=net_time(now - 5),
        OutputPath=path,
    )
    body = explain(root, "aura-no-output")
    assert verdict(body) == "output_missing"
    assert expected_words in body["summary"]


def test_a_failed_job_shown_as_running_is_abandoned(root: Path) -> None:
    aura(root, "aura-abandoned", stage="Images", percent=70, quiet_s=3600)
    body = explain(root, "aura-abandoned")
    assert verdict(body) == "abandoned"
    assert "no process is working on it" in body["summary"]


def test_a_healthy_render_killed_as_stalled(root: Path, media: dict[str, Path]) -> None:
    now = time.time()
    aura(
        root,
        "aura-killed",
        stage="Rendering",
        percent=88,
        quiet_s=30,
        status=FAILED,
        EndedUtc=net_time(now - 30),
        ErrorMessage="Job stalled: no progress for 180 seconds",
        FailureDetails={"ErrorCode": "E305-JOB_STALLED", "Message": "Job stalled", "Stage": "Rendering"},
    )
    log = root / "Logs" / "ffmpeg" / "aura-killed.log"
    log.write_text("frame=  120 fps= 30 q=28.0 size=  512kB time=00:00:04.00 bitrate=1048.6kbits/s speed=1.0x\r")
    os.utime(log, (now - 33, now - 33))
    body = explain(root, "aura-killed")
    assert verdict(body) == "killed_while_progressing"


@pytest.mark.parametrize(
    "fields",
    [
        {
            "status": FAILED,
            "stage": "Complete",
            "percent": 100,
            "OutputPath": "/videos/x.mp4",
            "ErrorMessage": "Render failed",
        },
        {
            "status": CANCELED,
            "stage": "Rendering",
            "percent": 90,
            "CanceledUtc": net_time(time.time()),
            "FailureDetails": {"ErrorCode": "E305-JOB_STALLED"},
        },
        {"status": RUNNING, "stage": "Rendering", "percent": 90, "CompletedUtc": net_time(time.time())},
    ],
    ids=["failed-but-complete", "cancelled-with-E305", "running-but-completed-utc"],
)
def test_mixed_and_contradicted_records_are_status_inconsistent(root: Path, fields: dict[str, Any]) -> None:
    status, stage, percent = fields.pop("status"), fields.pop("stage"), fields.pop("percent")
    aura(root, "aura-mixed", stage=stage, percent=percent, quiet_s=5, status=status, **fields)
    body = explain(root, "aura-mixed")
    assert verdict(body) == "status_inconsistent", body["findings"]


def test_an_old_build_status_int_is_read_right_and_not_flagged(root: Path) -> None:
    now = time.time()
    aura(root, "aura-old-build", stage="Complete", percent=100, quiet_s=5, status=2, CompletedUtc=net_time(now))
    body = explain(root, "aura-old-build")
    assert body["status"] == "completed"


def test_a_hung_aura_ffmpeg_is_found_by_its_output_path(root: Path) -> None:
    encoder = start_encoder(root / "render", "hung")
    try:
        os.kill(encoder.pid, signal.SIGSTOP)
        wait_for(lambda: Path(f"/proc/{encoder.pid}/stat").read_text().split()[2] == "T", what="ffmpeg stopped")
        aura(root, "aura-hung", stage="Rendering", percent=85, quiet_s=50, duration_s=120)
        (root / "Logs" / "ffmpeg" / "aura-hung.log").symlink_to(encoder.log)
        body = explain(root, "aura-hung")
        assert verdict(body) == "process_hung", body["findings"]
        assert f"encoder pid {encoder.pid} is stopped" in body["summary"]
    finally:
        encoder.stop()


# -- native records, process-based codes ----------------------------------------------------------
def native_running(root: Path, job_id: str, quiet_s: float, **fields: Any) -> None:
    stamp = net_time(time.time() - quiet_s)
    write_native(root / "jobs", job_id, lastProgressAt=stamp, startedAt=stamp, **fields)


def test_process_dead_when_worker_and_encoder_are_gone(root: Path, media: dict[str, Path]) -> None:
    gone = [subprocess.Popen(["sleep", "30"]) for _ in range(2)]
    for proc in gone:
        proc.kill()
        proc.wait()
    partial = truncate(shutil.copy(media["valid"], root / "partial.mp4"), 0.4)  # type: ignore[arg-type]
    native_running(
        root,
        "native-dead",
        60,
        stage="Render",
        percent=85.0,
        outputPath=str(partial),
        worker={"pid": gone[0].pid},
        encoder={"pid": gone[1].pid},
    )
    body = explain(root, "native-dead")
    assert verdict(body) == "process_dead"
    assert f"pid {gone[0].pid}" in body["summary"]


def test_process_hung_when_the_encoder_is_stopped(root: Path) -> None:
    encoder = start_encoder(root / "render", "stopped")
    try:
        os.kill(encoder.pid, signal.SIGSTOP)
        wait_for(lambda: Path(f"/proc/{encoder.pid}/stat").read_text().split()[2] == "T", what="ffmpeg stopped")
        native_running(
            root,
            "native-hung",
            60,
            stage="Render",
            percent=85.0,
            outputPath=str(encoder.output),
            worker={"pid": os.getpid()},
            encoder={"pid": encoder.pid, "progressPath": str(encoder.progress), "logPath": str(encoder.log)},
        )
        body = explain(root, "native-hung")
        assert verdict(body) == "process_hung"
        assert body["findings"][0]["confidence"] >= 0.9
    finally:
        encoder.stop()


def test_process_hung_when_ffmpeg_blocks_on_an_unread_stderr_pipe(root: Path) -> None:
    out = root / "deadlock.mp4"
    proc = subprocess.Popen(
        [
            "ffmpeg",
            "-hide_banner",
            "-y",
            "-v",
            "trace",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x90:rate=15",
            "-t",
            "120",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            str(out),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def blocked_on_write() -> bool:
            pending = array.array("i", [0])
            fcntl.ioctl(proc.stderr.fileno(), termios.FIONREAD, pending)  # type: ignore[union-attr]
            return pending[0] >= 60_000  # a full pipe (64 KiB): ffmpeg's next write blocks

        wait_for(blocked_on_write, timeout=20, what="ffmpeg blocked writing stderr")
        native_running(
            root, "native-deadlock", 60, stage="Render", percent=85.0, outputPath=str(out), encoder={"pid": proc.pid}
        )
        body = explain(root, "native-deadlock")
        assert verdict(body) == "process_hung", body["findings"]
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_progress_not_reported_for_a_native_record_with_a_live_encoder(root: Path, live: LiveEncoder) -> None:
    native_running(
        root,
        "native-silent",
        60,
        stage="Render",
        percent=84.0,
        outputPath=str(live.output),
        expectedDurationSeconds=120.0,
        encoder={"pid": live.pid, "progressPath": str(live.progress), "logPath": str(live.log)},
    )
    body = explain(root, "native-silent")
    assert verdict(body) == "progress_not_reported", body["findings"]


def test_a_healthy_rendering_job_is_never_flagged(root: Path, live: LiveEncoder) -> None:
    native_running(
        root,
        "native-healthy",
        2,
        stage="Render",
        percent=84.0,
        outputPath=str(live.output),
        expectedDurationSeconds=120.0,
        encoder={"pid": live.pid, "progressPath": str(live.progress), "logPath": str(live.log)},
    )
    body = explain(root, "native-healthy")
    assert verdict(body) == "healthy" and body["stalled"] is False
    assert all(f["severity"] == "info" for f in body["findings"])


def test_a_slow_finalization_inside_180_s_is_finalizing_not_stalled(root: Path) -> None:
    native_running(root, "native-finalizing", 170, stage="Finalize", percent=96.0)
    body = explain(root, "native-finalizing")
    assert verdict(body) == "finalizing" and body["stalled"] is False
    native_running(root, "native-finalizing", 190, stage="Finalize", percent=96.0)
    assert explain(root, "native-finalizing")["stalled"] is True


def test_upstream_errors_in_the_stalled_stage(root: Path) -> None:
    native_running(
        root,
        "native-429",
        60,
        stage="TTS",
        percent=30.0,
        logs=[
            "TTS provider answered HTTP 429 Too Many Requests; retry 1",
            "TTS provider answered HTTP 429 Too Many Requests; retry 2",
            "TTS provider answered HTTP 503 Service Unavailable; retry 3",
            "TTS provider request timed out after 30 s; retry 4",
        ],
    )
    body = explain(root, "native-429")
    assert verdict(body) == "upstream_errors"
    assert "4 recent log lines" in body["summary"]


def test_queued_too_long(root: Path) -> None:
    write_native(
        root / "jobs",
        "native-queued",
        status="queued",
        stage="Queued",
        percent=0.0,
        queuedAt=net_time(time.time() - 700),
    )
    assert verdict(explain(root, "native-queued")) == "queued_too_long"


def test_no_progress_when_nothing_more_specific_is_known(root: Path) -> None:
    native_running(root, "native-quiet", 60, stage="Images", percent=60.0)
    assert verdict(explain(root, "native-quiet")) == "no_progress"


def test_disk_full_when_free_space_is_below_the_floor(root: Path) -> None:
    native_running(root, "native-disk", 5, stage="Render", percent=82.0)
    free_mb = shutil.disk_usage(root).free / 2**20
    body = explain(root, "native-disk", disk_floor_mb=free_mb * 10)
    assert verdict(body) == "disk_full"
    assert verdict(explain(root, "native-disk")) == "healthy"


def test_record_unreadable_past_the_grace_period(root: Path) -> None:
    folder = root / "jobs" / "garbled"
    folder.mkdir()
    (folder / "job.json").write_text('{"schema": "aura-monitor/job@1", "id": "garb')
    old = time.time() - 60
    os.utime(folder / "job.json", (old, old))
    body = explain(root, "garbled")
    assert verdict(body) == "record_unreadable" and body["status"] is None
    assert "not valid JSON" in body["summary"]


# -- terminal outcomes --------------------------------------------------------------------------------
def test_a_completed_job_is_verified_with_ffprobe(root: Path, media: dict[str, Path]) -> None:
    write_native(
        root / "jobs",
        "native-done",
        status="completed",
        stage="Complete",
        percent=100.0,
        outputPath=str(media["valid"]),
        expectedDurationSeconds=2.0,
        completedAt=net_time(time.time()),
    )
    body = explain(root, "native-done")
    assert verdict(body) == "completed"
    assert "2.0 s video, 160x90" in body["summary"] and "verified" in body["summary"]


@pytest.mark.parametrize("kind", ["cut", "cut_faststart", "short"])
def test_output_invalid_for_truncated_or_short_videos(root: Path, media: dict[str, Path], kind: str) -> None:
    write_native(
        root / "jobs",
        "native-bad-output",
        status="completed",
        stage="Complete",
        percent=100.0,
        outputPath=str(media[kind]),
        expectedDurationSeconds=2.0,
        completedAt=net_time(time.time()),
    )
    body = explain(root, "native-bad-output")
    assert verdict(body) == "output_invalid", body["findings"]


def test_failed_is_summarized_from_failure_details(root: Path) -> None:
    aura(
        root,
        "aura-failed",
        stage="Rendering",
        percent=84,
        quiet_s=5,
        status=FAILED,
        ErrorMessage="FFmpeg exited with code 1",
        FailureDetails={
            "Stage": "Rendering",
            "ErrorCode": "E304-FFMPEG_RUNTIME",
            "Message": "FFmpeg exited",
            "StderrSnippet": "Conversion failed!",
            "SuggestedActions": ["Check the codec settings"],
        },
    )
    body = explain(root, "aura-failed")
    assert verdict(body) == "failed"
    assert "E304-FFMPEG_RUNTIME" in body["summary"] and "Conversion failed!" in body["summary"]
    assert "Check the codec settings" in body["findings"][0]["remediation"]


def test_cancelled(root: Path) -> None:
    aura(
        root,
        "aura-cancelled",
        stage="Images",
        percent=60,
        quiet_s=5,
        status=CANCELED,
        CanceledUtc=net_time(time.time()),
    )
    assert verdict(explain(root, "aura-cancelled")) == "cancelled"


# -- the command and its contract ---------------------------------------------------------------------
def test_every_finding_has_the_contract_fields(root: Path) -> None:
    native_running(root, "native-shape", 60, stage="Images", percent=60.0)
    body = explain(root, "native-shape")
    for key in (
        "jobId",
        "status",
        "stage",
        "percent",
        "stalled",
        "secondsSinceProgress",
        "thresholdSeconds",
        "verdict",
        "summary",
        "findings",
    ):
        assert key in body
    for finding in body["findings"]:
        assert finding["severity"] in ("critical", "warning", "info") and 0 <= finding["confidence"] <= 1
        assert finding["summary"] and finding["remediation"]
        assert all({"source", "fact"} == set(item) for item in finding["evidence"])


def test_unknown_jobs_bad_ids_and_unreadable_dirs_are_clear_errors(root: Path) -> None:
    with pytest.raises(JobNotFound, match="no job"):
        explain(root, "absent")
    with pytest.raises(InvalidJobId):
        explain(root, "../etc")
    with pytest.raises(JobNotFound, match="cannot read jobs dir"):
        explain_offline(load_settings(jobs_dir=root / "missing"), "x")


def test_a_live_encoder_during_finalization_is_finalizing_not_capped(root: Path, live: LiveEncoder) -> None:
    native_running(
        root,
        "native-faststart",
        20,
        stage="Finalize",
        percent=96.0,
        outputPath=str(live.output),
        encoder={"pid": live.pid, "progressPath": str(live.progress), "logPath": str(live.log)},
    )
    body = explain(root, "native-faststart")
    assert verdict(body) == "finalizing", body["findings"]

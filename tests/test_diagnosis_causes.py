"""Why an active job is stuck: one real scenario per cause, Aura records and native ones."""

from __future__ import annotations

import array
import fcntl
import os
import shutil
import signal
import subprocess
import termios
import time
from pathlib import Path

import psutil
import pytest

from tests.support import wait_for, write_native
from tests.support.aura_writer import net_time
from tests.support.diagnosis_scenarios import aura, aura_log, explain, native_running, verdict
from tests.support.media import LiveEncoder, start_encoder, truncate


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
    body = explain(root, job_id, read_root=[live.log.parent])
    assert verdict(body) == "progress_capped", body["findings"]
    assert "frozen at 95%" in body["summary"]


def test_progress_not_reported_while_the_log_grows(root: Path, live: LiveEncoder) -> None:
    job_id = "aura-not-reported"
    aura(root, job_id, stage="Rendering", percent=85, quiet_s=60, duration_s=120)
    (root / "Logs" / "ffmpeg" / f"{job_id}.log").symlink_to(live.log)
    body = explain(root, job_id, read_root=[live.log.parent])
    assert body["stalled"] is True
    assert verdict(body) == "progress_not_reported", body["findings"]


def test_a_failed_job_shown_as_running_is_abandoned(root: Path) -> None:
    aura(root, "aura-abandoned", stage="Images", percent=70, quiet_s=3600)
    body = explain(root, "aura-abandoned")
    assert verdict(body) == "abandoned"
    assert "no process is working on it" in body["summary"]


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


def test_an_encoder_that_ended_normally_is_not_dead_while_its_worker_finishes(
    root: Path, media: dict[str, Path]
) -> None:
    """The finalize hand-off: the faststart ffmpeg wrote progress=end and exited, the live worker now probes and
    moves the output (not there yet), and the record still names the encoder's pid. A quiet stress run's demo
    showed process_dead for that one second of slow-finalize's life (expected: finalizing, held)."""
    gone = subprocess.Popen(["sleep", "30"])
    gone.kill()
    gone.wait()
    logs = root / "jobs" / "logs"  # read from under the jobs dir, as a native worker writes them
    logs.mkdir()
    progress, log = (Path(shutil.copy(media[name], logs)) for name in ("valid_progress", "valid_log"))
    assert "progress=end" in progress.read_text()
    encoder = {"pid": gone.pid, "progressPath": str(progress), "logPath": str(log)}
    fields = dict(stage="Finalize", percent=95.0, outputPath=str(root / "videos" / "final.mp4"), encoder=encoder)
    native_running(root, "native-finalizing", 2, worker={"pid": os.getpid()}, **fields)
    body = explain(root, "native-finalizing")
    assert verdict(body) == "finalizing", body["summary"]
    assert all(f["code"] != "process_dead" for f in body["findings"]), body["findings"]

    # The same encoder killed mid-file (no progress=end): that one did die.
    cut = logs / "cut.progress"
    cut.write_text("frame=10\nprogress=continue\n")
    encoder.update(progressPath=str(cut), logPath=str(logs / "no.log"))
    native_running(root, "native-encoder-killed", 2, worker={"pid": os.getpid()}, **fields)
    body = explain(root, "native-encoder-killed")
    assert verdict(body) == "process_dead", body["summary"]
    assert f"encoder (pid {gone.pid})" in body["summary"]


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


@pytest.mark.parametrize(
    "output_still_for",
    [
        pytest.param(60, id="output-stuck-as-long-as-the-record"),
        # The demo's stderr-deadlock under load: ffmpeg started just after the last progress, wrote its header
        # and blocked, so the output's mtime is after the record's last progress but has not moved since.
        pytest.param(30, id="output-written-after-the-last-progress-then-stuck"),
    ],
)
def test_process_hung_when_ffmpeg_blocks_on_an_unread_stderr_pipe(root: Path, output_still_for: float) -> None:
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
        ffmpeg = psutil.Process(proc.pid)
        seen: list[tuple[int, float, int]] = []

        def blocked_on_write() -> bool:
            # A full pipe (64 KiB) is not enough: ffmpeg's encoder threads finish the frames in flight after
            # the main thread blocks. Blocked means the pipe, the CPU time and the output all stood still
            # across two consecutive polls, as they would for the 60 s the record claims.
            pending = array.array("i", [0])
            fcntl.ioctl(proc.stderr.fileno(), termios.FIONREAD, pending)  # type: ignore[union-attr]
            cpu = ffmpeg.cpu_times()
            seen.append((pending[0], cpu.user + cpu.system, out.stat().st_size if out.exists() else -1))
            return pending[0] >= 60_000 and len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]

        wait_for(blocked_on_write, timeout=30, what="ffmpeg blocked writing stderr", interval=0.25)
        stuck_since = time.time() - output_still_for  # the record below says 60 s without progress
        os.utime(out, (stuck_since, stuck_since))
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
    body = explain(root, "native-silent", read_root=[live.log.parent])
    assert verdict(body) == "progress_not_reported", body["findings"]


def test_the_file_named_in_the_encoder_block_is_the_output_watched(root: Path, live: LiveEncoder) -> None:
    # No outputPath yet (the reporter sets it at Finalize), no progress file or log: only the encoder's
    # own outputPath shows the render is advancing.
    native_running(
        root,
        "native-encoder-output",
        60,
        stage="Render",
        percent=84.0,
        encoder={"pid": live.pid, "outputPath": str(live.output)},
    )
    body = explain(root, "native-encoder-output")
    assert verdict(body) == "progress_not_reported", body["findings"]
    assert any(str(live.output) in e["fact"] for e in body["findings"][0]["evidence"]), body["findings"][0]


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
    body = explain(root, "native-healthy", read_root=[live.log.parent])
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
    body = explain(root, "native-faststart", read_root=[live.log.parent])
    assert verdict(body) == "finalizing", body["findings"]

"""Aura's real failure records (AURA_FORMAT.md, "Records and logs as Aura really leaves them") diagnosed right.

Every record is written by the Aura test double (CRLF, `\\u002B` escapes, in place in 4 KiB chunks); every
ffmpeg log is a real ffmpeg run's stderr laid out as Aura's FfmpegVideoComposer keeps it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.aura_writer import CANCELED, FAILED, PAUSED, RUNNING, ffmpeg_log, net_time
from tests.support.diagnosis_scenarios import aura, explain, verdict
from tests.support.media import FFMPEG

STALL_MESSAGE = "Video render timed out after 180s at 95% (no progress \u002b no output)"


@pytest.fixture(scope="module")
def failing_run(media: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, int]:
    """A real ffmpeg that fails mid-render: re-encoding a truncated input with -xerror."""
    out = tmp_path_factory.mktemp("failing") / "out.mp4"
    args = [FFMPEG, "-hide_banner", "-y", "-xerror", "-i", str(media["cut_faststart"]), "-c:v", "libx264"]
    run = subprocess.run([*args, "-preset", "ultrafast", str(out)], capture_output=True, timeout=60, check=False)
    assert run.returncode != 0 and b"time=" in run.stderr, run.stderr[-500:]
    return run.stderr, run.returncode


def write_ffmpeg_log(root: Path, job_id: str, stderr: bytes, exit_code: int | None, age_s: float) -> Path:
    log = root / "Logs" / "ffmpeg" / f"{job_id}.log"
    stamp = time.time() - age_s
    log.write_bytes(ffmpeg_log(job_id, stderr, exit_code, started=stamp - 20, ended=stamp))
    os.utime(log, (stamp, stamp))
    return log


def stall_kill(
    root: Path, job_id: str, quiet_s: float, stage: str = "Rendering", percent: int = 95, **extra: object
) -> None:
    """FailJobAsStalled as it lands on disk: Failed + E305, then the cancelled pipeline's echo applied on top."""
    aura(
        root,
        job_id,
        stage=stage,
        percent=percent,
        quiet_s=quiet_s,
        status=FAILED,
        CanceledUtc=net_time(time.time() - quiet_s),
        EndedUtc=net_time(time.time() - quiet_s),
        ErrorMessage="Job was cancelled by user",
        **{
            "FailureDetails": {
                "Stage": "Rendering",
                "Message": STALL_MESSAGE,
                "ErrorCode": "E305-JOB_STALLED",
                "StderrSnippet": None,
                "SuggestedActions": ["Retry the job"],
            },
            **extra,
        },
    )


def test_a_stall_killed_job_is_failed_by_auras_monitor_and_was_really_stuck(root: Path, media: dict[str, Path]) -> None:
    stall_kill(root, "aura-stall-kill", quiet_s=60)
    stderr = media["valid_log"].read_bytes()
    # The render's log stopped well before the kill and never ended: ffmpeg really was stuck.
    write_ffmpeg_log(root, "aura-stall-kill", stderr.split(b"muxing overhead")[0].rsplit(b"\n", 2)[0], None, 400)
    body = explain(root, "aura-stall-kill")
    assert body["status"] == "failed"
    assert verdict(body) == "stall_killed", body["findings"]
    summary = body["summary"]
    assert "Aura's own stall monitor killed this job" in summary and "no user cancelled it" in summary
    assert STALL_MESSAGE in summary and "cancelled by user” message and CanceledUtc are the pipeline's echo" in summary
    assert "really was stuck" in summary and "Skipped" not in str(body)


def test_a_stall_killed_job_whose_video_finished_says_deliver_it_first(root: Path, media: dict[str, Path]) -> None:
    log_bytes = ffmpeg_log("aura-late-kill", media["valid_log"].read_bytes(), 0, started=time.time() - 300)
    stall_kill(
        root,
        "aura-late-kill",
        quiet_s=30,
        OutputPath=str(media["valid"]),
        FailureDetails={
            "Stage": "Rendering",
            "Message": STALL_MESSAGE,
            "ErrorCode": "E305-JOB_STALLED",
            # Aura's snippet is the last 16 KB of its log: for a short render it starts with the header.
            "StderrSnippet": log_bytes[-16384:].decode("utf-8"),
        },
    )
    write_ffmpeg_log(root, "aura-late-kill", media["valid_log"].read_bytes(), 0, 200)
    body = explain(root, "aura-late-kill")
    assert verdict(body) == "stall_killed", body["findings"]
    assert body["summary"].startswith(
        f"The video is complete at {media['valid']} (2.0 s, verified with ffprobe); deliver it."
    )
    assert "ended normally: it was not stuck" in body["summary"]
    assert "FFmpeg Render Log" not in body["summary"] and "Job ID" not in body["summary"]
    assert str(media["valid"]) in body["findings"][0]["remediation"][0]


def test_a_mixed_record_of_a_video_finished_after_the_kill_says_deliver_it_before_the_contradiction(
    root: Path, media: dict[str, Path]
) -> None:
    # The pipeline's final Done update was refused (Failed -> Done is illegal) but its other fields applied.
    stall_kill(root, "aura-mixed-kill", quiet_s=30, stage="Complete", percent=100, OutputPath=str(media["valid"]))
    write_ffmpeg_log(root, "aura-mixed-kill", media["valid_log"].read_bytes(), 0, 60)
    body = explain(root, "aura-mixed-kill")
    assert verdict(body) == "stall_killed", body["findings"]
    assert body["summary"].startswith(f"The video is complete at {media['valid']}")
    assert body["findings"][0]["severity"] == "critical"
    assert "status_inconsistent" in [f["code"] for f in body["findings"]]


def test_a_failure_summary_quotes_ffmpegs_error_line_never_auras_log_header(
    root: Path, failing_run: tuple[bytes, int]
) -> None:
    stderr, code = failing_run
    snippet = ffmpeg_log("aura-e304", stderr, code, started=time.time() - 60).decode("utf-8")
    assert snippet.lstrip("\ufeff").startswith("FFmpeg Render Log")
    aura(
        root,
        "aura-e304",
        stage="Rendering",
        percent=88,
        quiet_s=20,
        status=FAILED,
        EndedUtc=net_time(time.time() - 20),
        ErrorMessage="FFmpeg exited with code 1",
        FailureDetails={"Stage": "Rendering", "ErrorCode": "E304-FFMPEG_RUNTIME", "StderrSnippet": snippet},
    )
    body = explain(root, "aura-e304")
    assert verdict(body) == "failed"
    assert "corrupt input packet in stream" in body["summary"], body["summary"]
    assert "FFmpeg Render Log" not in body["summary"] and "[stderr]" not in body["summary"]


def test_a_running_record_whose_ffmpeg_exited_non_zero_is_a_failure_whose_write_was_lost(
    root: Path, failing_run: tuple[bytes, int]
) -> None:
    stderr, code = failing_run
    # Long quiet: before this verdict existed the job was called abandoned ("the app crashed").
    aura(root, "aura-frozen", stage="Rendering", percent=88, quiet_s=900)
    write_ffmpeg_log(root, "aura-frozen", stderr, code, 890)
    body = explain(root, "aura-frozen")
    assert body["status"] == "running"
    assert verdict(body) == "failure_not_propagated", body["findings"]
    summary = body["summary"]
    assert f"exit code {code}" in summary and "corrupt input packet in stream" in summary
    assert "Conversion failed!" not in summary and "never written" in summary
    assert "abandoned" not in [f["code"] for f in body["findings"][:1]]


def test_a_failed_ffmpeg_whose_exit_is_fresh_waits_for_the_writer(root: Path, failing_run: tuple[bytes, int]) -> None:
    stderr, code = failing_run
    aura(root, "aura-just-failed", stage="Rendering", percent=88, quiet_s=3)
    write_ffmpeg_log(root, "aura-just-failed", stderr, code, 2)
    assert verdict(explain(root, "aura-just-failed")) != "failure_not_propagated"


def test_a_paused_record_that_stopped_changing_is_flagged_with_auras_pause_semantics(root: Path) -> None:
    aura(root, "aura-paused", stage="Images", percent=60, quiet_s=24 * 60, status=PAUSED)
    body = explain(root, "aura-paused")
    assert body["status"] == "paused" and body["stalled"] is True
    assert verdict(body) == "paused_stalled", body["findings"]
    assert "Pause only flips the Status field" in body["summary"] and "24 min" in body["summary"]


def test_a_paused_record_within_its_threshold_is_not_flagged(root: Path) -> None:
    aura(root, "aura-paused-now", stage="Images", percent=60, quiet_s=5, status=PAUSED)
    body = explain(root, "aura-paused-now")
    assert body["stalled"] is False and verdict(body) == "healthy"


def test_an_old_build_cancel_is_labelled_canceled_old_numbering(root: Path) -> None:
    aura(root, "aura-old-cancel", stage="Images", percent=60, quiet_s=5, status=5, CanceledUtc=net_time(time.time()))
    body = explain(root, "aura-old-cancel")
    assert verdict(body) == "cancelled"
    assert "Canceled (old numbering)" in body["summary"] and "Skipped" not in body["summary"]


def test_a_user_cancel_stays_a_cancel(root: Path) -> None:
    aura(
        root,
        "aura-user-cancel",
        stage="Rendering",
        percent=90,
        quiet_s=5,
        status=CANCELED,
        CanceledUtc=net_time(time.time()),
        ErrorMessage="Job was cancelled by user",
    )
    body = explain(root, "aura-user-cancel")
    assert (body["status"], verdict(body)) == ("cancelled", "cancelled")


def test_a_running_record_with_an_aura_log_still_rendering_is_not_failed(root: Path, media: dict[str, Path]) -> None:
    aura(root, "aura-rendering", stage="Rendering", percent=85, quiet_s=2, status=RUNNING)
    write_ffmpeg_log(root, "aura-rendering", media["valid_log"].read_bytes().split(b"muxing overhead")[0], None, 1)
    body = explain(root, "aura-rendering")
    assert verdict(body) in ("healthy", "finalizing"), body["findings"]

"""Finished jobs and self-contradicting records, and the explain contract."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from aura_monitor.config import load_settings
from aura_monitor.diagnosis import explain_offline
from aura_monitor.exceptions import InvalidJobId, JobNotFound
from tests.support import write_native
from tests.support.aura_writer import CANCELED, DONE, FAILED, RUNNING, net_time
from tests.support.diagnosis_scenarios import aura, explain, native_running, verdict


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

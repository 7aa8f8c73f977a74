"""Aura's on-disk format, as AURA_FORMAT.md describes it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from aura_monitor.exceptions import RecordError
from aura_monitor.jobs.model import JobStatus, RecordFormat
from aura_monitor.records import parse_record
from aura_monitor.records.timestamps import parse_iso, parse_log_time, parse_timespan
from tests.support.aura_writer import (
    CANCELED,
    DONE,
    FAILED,
    PAUSED,
    QUEUED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    AuraJob,
    log_line,
    net_time,
)

T0 = 1_763_640_000.0  # 2025-11-20T12:00:00Z


def aura_doc(tmp_path: Path, **fields: Any) -> dict[str, Any]:
    job = AuraJob(tmp_path, id="1b4e28ba-2fa1-11d2-883f-0016d3cca427", created=T0)
    doc = job.document()
    doc.update(fields)
    return doc


def parse(doc: dict[str, Any]) -> Any:
    return parse_record(json.dumps(doc, indent=2).encode())


@pytest.mark.parametrize(
    ("code", "extra", "expected"),
    [
        (QUEUED, {}, JobStatus.QUEUED),
        (RUNNING, {}, JobStatus.RUNNING),
        (PAUSED, {}, JobStatus.PAUSED),
        (DONE, {"CompletedUtc": net_time(T0 + 60), "Percent": 100, "Stage": "Complete"}, JobStatus.COMPLETED),
        (FAILED, {"ErrorMessage": "ffmpeg exited 1"}, JobStatus.FAILED),
        (SKIPPED, {}, JobStatus.CANCELLED),
        (CANCELED, {"CanceledUtc": net_time(T0 + 60)}, JobStatus.CANCELLED),
        (
            SUCCEEDED,
            {"CompletedUtc": net_time(T0 + 60), "Percent": 100, "Stage": "Complete"},
            JobStatus.COMPLETED,
        ),
    ],
)
def test_it_maps_every_current_build_status(
    tmp_path: Path, code: int, extra: dict[str, Any], expected: JobStatus
) -> None:
    record = parse(aura_doc(tmp_path, Status=code, **extra))
    assert record.status is expected
    assert record.format is RecordFormat.AURA


@pytest.mark.parametrize(
    ("code", "extra", "expected"),
    [
        (2, {"CompletedUtc": net_time(T0 + 60), "Percent": 100, "Stage": "Complete"}, JobStatus.COMPLETED),
        (3, {"FailureDetails": {"Message": "boom", "ErrorCode": "E304-FFMPEG_RUNTIME"}}, JobStatus.FAILED),
        (5, {"CanceledUtc": net_time(T0 + 60)}, JobStatus.CANCELLED),
        (6, {"CompletedUtc": net_time(T0 + 60), "Percent": 100, "Stage": "Complete"}, JobStatus.COMPLETED),
    ],
)
def test_it_resolves_old_build_numbering_from_timestamps(
    tmp_path: Path, code: int, extra: dict[str, Any], expected: JobStatus
) -> None:
    record = parse(aura_doc(tmp_path, Status=code, **extra))
    assert record.status is expected
    assert not any("contradicts" in note for note in record.inconsistencies)


def test_it_flags_a_status_int_no_timestamp_can_disambiguate(tmp_path: Path) -> None:
    record = parse(aura_doc(tmp_path, Status=3, Percent=100, Stage="Complete"))
    assert record.status is JobStatus.COMPLETED
    assert any("builds before Nov 2025" in note for note in record.inconsistencies)


def test_it_flags_a_running_status_contradicted_by_completed_utc(tmp_path: Path) -> None:
    record = parse(aura_doc(tmp_path, Status=RUNNING, CompletedUtc=net_time(T0 + 5)))
    assert record.status is JobStatus.RUNNING
    assert any("contradicts" in note and "CompletedUtc" in note for note in record.inconsistencies)


def test_it_flags_the_mixed_failed_but_complete_record(tmp_path: Path) -> None:
    record = parse(
        aura_doc(
            tmp_path,
            Status=FAILED,
            Stage="Complete",
            Percent=100,
            OutputPath="/videos/x.mp4",
            ErrorMessage="Job stalled",
            FailureDetails={"ErrorCode": "E305-JOB_STALLED"},
        )
    )
    assert record.status is JobStatus.FAILED
    assert any("mixed record" in note for note in record.inconsistencies)


def test_it_flags_a_cancelled_record_carrying_a_stall_error(tmp_path: Path) -> None:
    record = parse(
        aura_doc(
            tmp_path,
            Status=CANCELED,
            CanceledUtc=net_time(T0 + 9),
            FailureDetails={"ErrorCode": "E305-JOB_STALLED"},
        )
    )
    assert record.status is JobStatus.CANCELLED
    assert any("E305" in note for note in record.inconsistencies)


@pytest.mark.parametrize(
    "stage",
    [
        "Plan",
        "Initialization",
        "Brief",
        "Script",
        "Voice",
        "TTS",
        "Visuals",
        "Images",
        "Rendering",
        "PostProcess",
        "Processing",
        "Complete",
    ],
)
def test_it_keeps_every_aura_stage_name(tmp_path: Path, stage: str) -> None:
    assert parse(aura_doc(tmp_path, Status=RUNNING, Stage=stage)).stage == stage


def test_it_reads_dotnet_times_timespans_and_failure_details(tmp_path: Path) -> None:
    record = parse(
        aura_doc(
            tmp_path,
            Status=FAILED,
            StartedUtc="2025-11-20T12:00:01.1234567Z",
            PlanSpec={"TargetDuration": "1.02:03:04.5000000"},
            FailureDetails={
                "Stage": "Rendering",
                "Message": "ffmpeg crashed",
                "ErrorCode": "E304-FFMPEG_RUNTIME",
                "StderrSnippet": "Conversion failed!",
                "SuggestedActions": ["Update GPU drivers"],
            },
        )
    )
    assert record.started_at == pytest.approx(T0 + 1.1234567)
    assert record.expected_duration_s == pytest.approx(86400 + 2 * 3600 + 3 * 60 + 4.5)
    assert (record.error_code, record.failure_stage, record.error_message) == (
        "E304-FFMPEG_RUNTIME",
        "Rendering",
        "ffmpeg crashed",
    )
    assert record.suggested_actions == ("Update GPU drivers",)


def test_it_takes_last_progress_from_the_start_of_the_final_unchanged_run(tmp_path: Path) -> None:
    job = AuraJob(tmp_path, status=RUNNING, created=T0)
    job.progress(T0 + 10, "TTS", 30)
    job.progress(T0 + 20, "TTS", 40)
    job.progress(T0 + 30, "TTS", 40)
    job.progress(T0 + 40, "TTS", 40)
    record = parse(job.document())
    assert record.last_progress_at == pytest.approx(T0 + 20)
    assert record.percent == 40
    assert [p.percent for p in record.history] == [30, 40, 40, 40]


def test_it_reads_local_time_log_prefixes() -> None:
    now = float(int(time.time()))
    assert parse_log_time(log_line(now, "Rendering started")) == now
    assert parse_log_time("no prefix here") is None


def test_timestamps_accept_offsets_and_reject_garbage() -> None:
    assert parse_iso("2025-11-20T13:00:00+01:00") == T0
    assert parse_timespan("00:00:04") == 4
    with pytest.raises(ValueError):
        parse_iso("yesterday")
    with pytest.raises(ValueError):
        parse_timespan("4 seconds")


def test_it_parses_a_ten_megabyte_record_with_tens_of_thousands_of_log_lines(tmp_path: Path) -> None:
    job = AuraJob(tmp_path, status=RUNNING, created=T0)
    for i in range(40_000):
        job.logs.append(log_line(T0 + i, f"Rendering frame batch {i}: encoder busy, queue depth {i % 17} " + "x" * 180))
    for i in range(2_000):
        job.progress(T0 + i, "Rendering", 80 + i * 15 // 2_000)
    data = json.dumps(job.document(), indent=2).encode()
    assert len(data) > 10_000_000
    record = parse_record(data)
    assert record.percent == 94
    assert len(record.logs_tail) == 20
    assert len(record.history) == 20


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"Status": "Running"}, "Status"),
        ({"Status": 9}, "not a known Aura status"),
        ({"Percent": "95"}, "Percent"),
        ({"Percent": 140}, "outside 0-100"),
        ({"Id": ""}, "Id"),
        ({"StartedUtc": "not a date"}, "StartedUtc"),
        ({"PlanSpec": {"TargetDuration": "soon"}}, "TargetDuration"),
        ({"FailureDetails": "oops"}, "FailureDetails"),
        ({"Status": True}, "boolean"),
    ],
)
def test_it_refuses_wrong_types_with_a_message_naming_the_field(
    tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(RecordError, match=message):
        parse(aura_doc(tmp_path, **fields))


def test_a_stall_kill_is_failed_not_a_users_cancel(tmp_path: Path) -> None:
    # FailJobAsStalled on disk: Failed + E305, then the cancelled pipeline's echo applied (its Canceled refused).
    job = AuraJob(tmp_path, status=FAILED, created=T0, stage="Rendering", percent=95)
    job.extra = {
        "CanceledUtc": net_time(T0 + 400),
        "ErrorMessage": "Job was cancelled by user",
        "FailureDetails": {"ErrorCode": "E305-JOB_STALLED", "Message": "Video render timed out after 180s at 95% + 0"},
    }
    job.write()
    data = job.path.read_bytes()
    assert b"\r\n" in data and b"\\u002B" in data and not data.startswith(b"\xef\xbb\xbf")
    record = parse_record(data)
    assert record.status is JobStatus.FAILED
    assert record.raw_status.startswith("Failed (4), stall kill")
    assert record.error_message == "Video render timed out after 180s at 95% + 0"
    assert not record.inconsistencies


def test_an_old_build_cancel_is_labelled_canceled_old_numbering(tmp_path: Path) -> None:
    record = parse(aura_doc(tmp_path, Status=5, CanceledUtc=net_time(T0 + 60)))
    assert record.status is JobStatus.CANCELLED
    assert record.raw_status == "Canceled (old numbering) (5)"
    assert parse(aura_doc(tmp_path, Status=SKIPPED)).raw_status == "Skipped (5)"


def test_an_old_build_stall_kill_is_failed_in_the_old_numbering(tmp_path: Path) -> None:
    record = parse(
        aura_doc(
            tmp_path,
            Status=3,  # Failed before Nov 2025 (Done today)
            CanceledUtc=net_time(T0 + 400),
            ErrorMessage="Job was cancelled by user",
            FailureDetails={"ErrorCode": "E305-JOB_STALLED", "Message": "Job stalled: no progress for 90 seconds"},
        )
    )
    assert record.status is JobStatus.FAILED
    assert record.raw_status.startswith("Failed (old numbering) (3), stall kill")
    assert not any("contradicts" in note for note in record.inconsistencies)

"""The native format (docs/job-record.md) and files no format can save."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from aura_monitor.exceptions import RecordError, RecordUnreadable
from aura_monitor.jobs.model import JobStatus, RecordFormat
from aura_monitor.records import MAX_RECORD_BYTES, SCHEMA, parse_record, read_file, read_record


def native(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "id": "job-1",
        "revision": 7,
        "status": "running",
        "stage": "Render",
        "percent": 83.5,
        "stagePercent": 23.3,
        "attempt": 2,
        "priority": 3,
        "createdAt": "2026-11-23T18:00:00.000Z",
        "startedAt": "2026-11-23T18:00:01.000Z",
        "heartbeatAt": "2026-11-23T18:01:00.000Z",
        "lastProgressAt": "2026-11-23T18:00:58.500Z",
        "worker": {"pid": 4242, "host": "node-1"},
        "encoder": {"pid": 4243, "progressPath": "/tmp/p.txt", "logPath": "/tmp/ffmpeg.log"},
        "expectedDurationSeconds": 4.0,
        "outputPath": None,
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "stages": [
            {"name": "Script", "status": "completed", "artifacts": ["/tmp/script.txt"]},
            {"name": "Render", "status": "running"},
        ],
        "history": [{"at": "2026-11-23T18:00:57.000Z", "percent": 82.0, "stage": "Render"}],
        "logs": ["render started"],
    }
    doc.update(fields)
    return doc


def parse(doc: dict[str, Any]) -> Any:
    return parse_record(json.dumps(doc).encode())


def test_it_reads_everything_a_diagnoser_needs() -> None:
    record = parse(native())
    assert record.format is RecordFormat.NATIVE
    assert (record.status, record.stage, record.percent, record.revision, record.attempt) == (
        JobStatus.RUNNING,
        "Render",
        83.5,
        7,
        2,
    )
    assert (record.worker_pid, record.encoder_pid, record.progress_file, record.encoder_log) == (
        4242,
        4243,
        "/tmp/p.txt",
        "/tmp/ffmpeg.log",
    )
    assert record.traceparent and record.expected_duration_s == 4.0
    assert record.last_progress_at is not None and record.heartbeat_at is not None
    assert record.heartbeat_at > record.last_progress_at
    assert [s.name for s in record.stages] == ["Script", "Render"]
    assert record.stages[0].artifacts == ("/tmp/script.txt",)


def test_it_refuses_an_unknown_schema_version() -> None:
    with pytest.raises(RecordError, match="aura-monitor/job@9"):
        parse(native(schema="aura-monitor/job@9"))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": "stuck"}, "status"),
        ({"percent": 101}, "percent"),
        ({"percent": None}, "percent"),
        ({"revision": 1.5}, "revision"),
        ({"stages": [{"status": "running"}]}, "name"),
        ({"worker": [1]}, "worker"),
    ],
)
def test_it_refuses_wrong_values(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        parse(native(**fields))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \n",
        b'{"schema": "aura-monitor/job@1", "id": "j", "stat',
        b"\x00\xff garbage",
        b"[1, 2, 3]",
        b'"a string"',
        b"{" * 100_000,
        b'{"Id": "x", "Status": 1, "Percent": 5',
    ],
)
def test_it_refuses_empty_truncated_and_garbage_files(data: bytes) -> None:
    with pytest.raises(RecordError):
        parse_record(data)


def test_an_empty_file_is_reported_as_unreadable_not_as_a_state() -> None:
    with pytest.raises(RecordUnreadable, match="empty"):
        parse_record(b"")


def test_it_refuses_json_that_is_neither_format() -> None:
    with pytest.raises(RecordError, match="neither"):
        parse_record(b'{"hello": "world"}')


def test_a_record_file_is_read_whole_with_the_fstat_of_the_file_read(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    body = json.dumps(native(message="x" * 200_000)).encode()
    path.write_bytes(body)
    data, st = read_file(str(path))
    assert data == body and st.st_size == len(body) and st.st_ino == path.stat().st_ino
    assert read_record(str(path)).message == "x" * 200_000


def test_a_file_that_grew_after_its_fstat_is_read_to_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An in-place writer appending between fstat and read, made deterministic by an fstat that lags.
    path = tmp_path / "job.json"
    body = json.dumps(native(message="y" * 3_000_000)).encode()
    path.write_bytes(body)
    real_fstat = os.fstat

    def lagging_fstat(fd: int) -> os.stat_result:
        st = list(real_fstat(fd))
        st[stat.ST_SIZE] = 10
        return os.stat_result(st)

    monkeypatch.setattr(os, "fstat", lagging_fstat)
    data, _ = read_file(str(path))
    assert data == body


def test_a_record_over_the_size_limit_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    with open(path, "wb") as fh:
        fh.truncate(MAX_RECORD_BYTES + 1)  # sparse: no disk used, nothing worth reading
    with pytest.raises(RecordUnreadable, match="above the"):
        read_record(str(path))

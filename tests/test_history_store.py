"""The SQLite store and the recorder on real files: migrations, WAL, runs and stages with their progress gaps,
a retry closing a stall as retried, and retention."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from aura_monitor.clock import FakeClock
from aura_monitor.config import load_settings
from aura_monitor.history import History
from aura_monitor.history.migrations import LATEST
from aura_monitor.history.ops import IncidentClosed, IncidentOpened, RunSeen, StageDone
from aura_monitor.history.sqlite import SQLiteStore
from aura_monitor.jobs.model import JobRecord, JobStatus, RecordFormat
from aura_monitor.jobs.stall import Thresholds
from aura_monitor.jobs.tracker import Tracker
from aura_monitor.jobs.verdicts import Verdict
from tests.support import wait_for


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute(sql).fetchall())


def test_a_new_file_is_migrated_once_in_wal_mode_and_reopening_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "history.db"
    for _ in range(2):
        store = SQLiteStore(path)
        store.connect()
        store.close()
    assert _rows(path, "SELECT version FROM schema_version") == [(LATEST,)]
    assert _rows(path, "PRAGMA journal_mode") == [("wal",)]
    assert {name for (name,) in _rows(path, "SELECT name FROM sqlite_master WHERE type = 'table'")} >= {
        "runs", "stages", "incidents", "schema_version"
    }  # fmt: skip


def _record(status: JobStatus, stage: str, percent: float, **extra: object) -> JobRecord:
    return JobRecord(
        id="job-1", format=RecordFormat.NATIVE, status=status, stage=stage, percent=percent, raw_status=str(status),
        created_at=1000.0, started_at=1001.0, **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def test_runs_and_stages_keep_durations_progress_counts_and_gaps_and_a_retry_ends_a_stall(tmp_path: Path) -> None:
    path, output = tmp_path / "history.db", tmp_path / "out.mp4"
    output.write_bytes(b"\0" * 1024)
    clock = FakeClock(start=1000.0)
    settings = load_settings(jobs_dir=tmp_path / "jobs", history=f"sqlite:///{path}", node="node-a")
    tracker = Tracker(Thresholds.from_settings(settings), node="node-a")
    history = History(settings, tracker, clock, CollectorRegistry(), scanned=lambda: True)
    tracker.subscribe(history.observe)
    history.start()
    try:
        tracker.apply("p", _record(JobStatus.RUNNING, "Script", 0, expected_duration_s=60.0), 1000.0)
        for at, percent in ((1002.0, 5), (1004.0, 10), (1010.0, 15)):  # gaps 2, 2, 6
            tracker.apply("p", _record(JobStatus.RUNNING, "Script", percent, expected_duration_s=60.0), at)
        tracker.tick(1100.0)  # 90 s without progress: stalled (threshold 45 s)
        retry = _record(JobStatus.QUEUED, "Script", 0, attempt=2)
        tracker.apply("p", retry, 1120.0)
        tracker.apply("p", _record(JobStatus.RUNNING, "Render", 50, attempt=2), 1130.0)
        done = _record(JobStatus.COMPLETED, "Render", 100, attempt=2, completed_at=1140.0, output_path=str(output))
        tracker.apply("p", done, 1140.0)
    finally:
        history.stop()
    stages = _rows(path, "SELECT attempt, stage, duration_s, progress_updates, max_gap_s, typical_gap_s,"
                         " expected_media_s FROM stages ORDER BY started_at")  # fmt: skip
    assert stages[0] == (1, "script", 120.0, 3, 6.0, 2.0, 60.0)
    assert stages[-1][:3] == (2, "render", 10.0)
    runs = _rows(path, "SELECT attempt, status, ended_at, output_verified FROM runs ORDER BY attempt")
    assert runs == [(1, "retried", 1120.0, None), (2, "completed", 1140.0, 1)]
    incidents = _rows(path, "SELECT attempt, stage, resolution, ended_at FROM incidents")
    assert incidents == [(1, "script", "retried", 1120.0)]


def test_retention_removes_what_ended_long_ago_and_keeps_open_incidents(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    store = SQLiteStore(path)
    old, now = time.time() - 40 * 86400, time.time()
    store.apply([
        RunSeen("old", 1, "n", JobStatus.COMPLETED, old, old, old, None, old),
        StageDone("old", 1, "n", "render", old, old + 5, 1, None, None, None),
        IncidentOpened("old", "n", 1, "render", old, Verdict.NO_PROGRESS),
        IncidentClosed("old", "n", old + 1, "recovered"),
        IncidentOpened("still", "n", 1, "render", old, Verdict.NO_PROGRESS),
        RunSeen("new", 1, "n", JobStatus.RUNNING, now, now, None, None, now),
    ])  # fmt: skip
    store.close()
    settings = load_settings(jobs_dir=tmp_path / "jobs", history=f"sqlite:///{path}")
    tracker = Tracker(Thresholds.from_settings(settings))
    history = History(settings, tracker, FakeClock(start=now), CollectorRegistry(), scanned=lambda: False)
    history.start()  # retention runs when the writer starts, then hourly
    try:
        wait_for(lambda: _rows(path, "SELECT COUNT(*) FROM runs") == [(1,)], what="the old run pruned")
    finally:
        history.stop()
    assert _rows(path, "SELECT job_id FROM incidents") == [("still",)]
    assert _rows(path, "SELECT COUNT(*) FROM stages") == [(0,)]

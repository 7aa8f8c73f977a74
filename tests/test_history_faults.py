"""The history's database failing (locked, unwritable dir, corrupt file, a writer that hangs): watching and
detection go on, /readyz says degraded, and the history catches up or says what it lost."""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from aura_monitor.config import load_settings
from aura_monitor.history.ops import Op
from aura_monitor.history.sqlite import SQLiteStore
from aura_monitor.sidecar import Sidecar
from tests.support import wait_for
from tests.support.aura_writer import RUNNING, AuraJob
from tests.support.live_server import LiveServer, live_server

# Polling, not inotify: these tests are about the history, and a shared CI machine may run out of inotify watches.
POLLING: dict[str, Any] = {"watch": "polling", "poll_interval": 0.2}


def _stall(jobs_dir: Path, job_id: str) -> None:
    now = time.time()
    job = AuraJob(jobs_dir, id=job_id, status=RUNNING, created=now - 400, started=now - 390)
    job.progress(now - 300, "Render", 30)
    job.write()


def _stalled_in_api(url: str, job_id: str) -> bool:
    job = httpx.get(f"{url}/api/jobs/{job_id}", timeout=10)
    return job.status_code == 200 and bool(job.json()["stalled"])


def _readyz(url: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/readyz", timeout=10)
    assert answer.status_code == 200, answer.text  # degraded is still ready
    body: dict[str, Any] = answer.json()
    return body


def _incident_of(url: str, job_id: str) -> bool:
    answer = httpx.get(f"{url}/api/incidents", timeout=10)
    return answer.status_code == 200 and any(item["jobId"] == job_id for item in answer.json()["incidents"])


def test_a_locked_database_degrades_readyz_and_the_history_catches_up_once_released(
    jobs_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "history.db"
    with live_server(jobs_dir, history=f"sqlite:///{path}", stall_threshold=2.0, **POLLING) as server:
        _stall(jobs_dir, "before")
        wait_for(lambda: _incident_of(server.url, "before"), what="the first incident written")
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
        try:
            _stall(jobs_dir, "during")
            wait_for(lambda: _stalled_in_api(server.url, "during"), what="the stall still flagged")
            body = wait_for(lambda: (b := _readyz(server.url))["status"] == "degraded" and b, what="degraded")
            assert any("database is locked" in reason for reason in body["reasons"]), body
            assert "aura_history_write_errors_total" in httpx.get(f"{server.url}/metrics", timeout=10).text
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        wait_for(lambda: _incident_of(server.url, "during"), timeout=60, what="the queued incident written")
        wait_for(lambda: _readyz(server.url)["status"] == "ready", timeout=60, what="ready again")


def test_an_unwritable_state_dir_degrades_and_is_recovered_from_once_fixed(jobs_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state dir should be\n")  # root ignores chmod; this fails for anyone
    with live_server(jobs_dir, history=f"sqlite:///{blocker / 'history.db'}", stall_threshold=2.0, **POLLING) as server:
        _stall(jobs_dir, "stuck")
        wait_for(lambda: _stalled_in_api(server.url, "stuck"), what="the stall flagged without a history")
        body = wait_for(lambda: (b := _readyz(server.url))["status"] == "degraded" and b, what="degraded")
        assert any("history database unavailable" in reason for reason in body["reasons"]), body
        answer = httpx.get(f"{server.url}/api/incidents", timeout=10)
        assert answer.status_code in (200, 503)  # never a bare 500
        blocker.unlink()
        wait_for(lambda: _incident_of(server.url, "stuck"), timeout=60, what="the incident written once fixed")
        wait_for(lambda: _readyz(server.url)["status"] == "ready", timeout=60, what="ready again")


def test_a_corrupt_history_file_is_moved_aside_and_a_fresh_one_created(
    jobs_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "history.db"
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 200)
    caplog.set_level(logging.ERROR, logger="aura_monitor.history.service")
    with live_server(jobs_dir, history=f"sqlite:///{path}", stall_threshold=2.0, **POLLING) as server:
        _stall(jobs_dir, "stuck")
        wait_for(lambda: _incident_of(server.url, "stuck"), timeout=60, what="the incident in a fresh file")
    aside = list(tmp_path.glob("history.db.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert "moved it aside" in caplog.text and str(aside[0]) in caplog.text


class _HungStore(SQLiteStore):
    """A real SQLite store whose writes hang until released (a database that stopped answering)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.release = threading.Event()

    def apply(self, ops: Sequence[Op]) -> None:
        self.release.wait(60)
        super().apply(ops)


def test_a_hung_writer_never_blocks_the_tracker_and_says_what_it_dropped(jobs_dir: Path, tmp_path: Path) -> None:
    sidecar = Sidecar(load_settings(jobs_dir=jobs_dir, history_queue=5, stall_threshold=2.0, **POLLING))
    store = sidecar.history.store = _HungStore(tmp_path / "hung.db")
    server = LiveServer(sidecar).start()
    try:
        for index in range(20):
            _stall(jobs_dir, f"job-{index}")
        # Every job is tracked and flagged while the writer hangs on its first batch.
        wait_for(lambda: all(_stalled_in_api(server.url, f"job-{i}") for i in range(20)), what="20 stalls flagged")
        body = wait_for(lambda: (b := _readyz(server.url))["status"] == "degraded" and b, what="loss reported")
        assert any("history lost" in reason for reason in body["reasons"]), body
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        dropped = re.search(r"^aura_history_dropped_total (\S+)$", metrics, re.MULTILINE)
        assert dropped and float(dropped.group(1)) > 0, metrics
    finally:
        store.release.set()
        server.stop()

"""Incidents in the history (real SQLite files, real servers): one per stall, continued across a kill -9
restart, closed with the resolution each end calls for; per-stage stats; bad queries are 400s."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from aura_monitor.config import load_settings
from aura_monitor.history.ops import IncidentOpened, StageDone
from aura_monitor.history.sqlite import SQLiteStore
from aura_monitor.jobs.verdicts import Verdict
from tests.support import wait_for
from tests.support.aura_writer import CANCELED, DONE, FAILED, QUEUED, RUNNING, AuraJob
from tests.support.cli import Running
from tests.support.live_server import live_server

# Polling, not inotify: these tests are about the history, and a shared CI machine may run out of inotify watches.
POLLING: dict[str, Any] = {"watch": "polling", "poll_interval": 0.2}


def _incidents(url: str, **params: Any) -> dict[str, Any]:
    answer = httpx.get(f"{url}/api/incidents", params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _stalled_job(jobs_dir: Path, job_id: str, quiet_s: float = 300) -> AuraJob:
    now = time.time()
    job = AuraJob(jobs_dir, id=job_id, status=RUNNING, created=now - quiet_s - 10, started=now - quiet_s - 5)
    job.progress(now - quiet_s, "Script", 20)
    job.write()
    return job


def _one(url: str, job_id: str) -> dict[str, Any] | None:
    found = [item for item in _incidents(url)["incidents"] if item["jobId"] == job_id]
    assert len(found) <= 1, found
    return found[0] if found else None


def test_a_stall_survives_a_kill_9_restart_as_one_incident_that_closes_on_recovery(
    jobs_dir: Path, tmp_path: Path
) -> None:
    history = f"sqlite:///{tmp_path / 'state' / 'history.db'}"
    args = ("serve", "--jobs-dir", str(jobs_dir), "--port", "0", "--history", history, "--stall-threshold", "2",
            "--watch", "polling", "--poll-interval", "0.2")  # fmt: skip
    job = _stalled_job(jobs_dir, "stuck")
    first = Running(*args)
    try:
        url = re.search(r"listening on (http://\S+)", first.expect("listening on")).group(1)  # type: ignore[union-attr]
        before = wait_for(lambda: _one(url, "stuck"), what="the stall's incident")
        assert before["open"] and before["resolution"] == "open" and before["stage"] == "script"
        os.kill(first.process.pid, signal.SIGKILL)  # no clean stop: the incident stays open in the file
        first.wait()
    finally:
        first.close()
    second = Running(*args)
    try:
        url = re.search(r"listening on (http://\S+)", second.expect("listening on")).group(1)  # type: ignore[union-attr]
        jobs = wait_for(lambda: httpx.get(f"{url}/api/jobs", timeout=10).json()["jobs"], what="the job re-read")
        assert jobs[0]["stalled"]
        job.write_progress(time.time(), "Script", 40)  # progress resumes after the restart
        closed = wait_for(
            lambda: (found := _one(url, "stuck")) and found["resolution"] == "recovered" and found,
            what="the incident closed as recovered",
        )
        assert closed["id"] == before["id"]  # continued, not duplicated
        assert _incidents(url)["count"] == 1
        assert closed["timeline"][0]["code"] == before["timeline"][0]["code"]
        assert closed["endedAt"] is not None and closed["durationSeconds"] > 0
        detail = httpx.get(f"{url}/api/incidents/{closed['id']}", timeout=10).json()
        assert detail["evidence"]["stage"] == "Script" and detail["evidence"]["summary"]
    finally:
        second.close()


def test_each_end_of_a_stall_closes_its_incident_with_the_matching_resolution(jobs_dir: Path) -> None:
    ends = {"back": (RUNNING, "recovered"), "done": (DONE, "completed"), "broke": (FAILED, "failed"),
            "stopped": (CANCELED, "cancelled"), "requeued": (QUEUED, "retried")}  # fmt: skip
    # The jobs move on to TTS, whose threshold is long: the recovered job must not stall again (and open a
    # second incident) while a loaded host takes more than 2 s over the checks below.
    with live_server(jobs_dir, stall_threshold=2.0, stage_thresholds={"tts": 3600}, **POLLING) as server:
        jobs = {job_id: _stalled_job(jobs_dir, job_id) for job_id in ends}
        wait_for(lambda: _incidents(server.url, open="true")["count"] == len(ends), what="five open incidents")
        for job_id, (status, _) in ends.items():
            job = jobs[job_id]
            job.status = status
            job.write_progress(time.time(), "TTS", 50)
        for job_id, (_, resolution) in ends.items():
            wait_for(
                lambda job_id=job_id, resolution=resolution: (
                    (_one(server.url, job_id) or {}).get("resolution") == resolution
                ),
                what=f"{job_id} closed as {resolution}",
            )
        assert _incidents(server.url, open="false")["count"] == len(ends)
        assert _incidents(server.url, open="true")["count"] == 0
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert 'aura_incidents_total{stage="script",verdict="no_progress"} 5.0' in metrics


def test_stats_answer_per_stage_duration_quantiles_and_stall_rates(jobs_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    store = SQLiteStore(path)
    now = time.time()
    durations = [10.0, 20.0, 30.0, 40.0, 100.0]
    store.apply(
        [StageDone(f"job-{i}", 1, "node-a", "render", now - 600, now - 600 + d, 5, 2.0, 1.0, 30.0)
         for i, d in enumerate(durations)]
        + [StageDone("old", 1, "node-a", "render", now - 10 * 86400, now - 10 * 86400 + 5, 1, None, None, None)]
    )  # fmt: skip
    store.close()
    with live_server(jobs_dir, history=f"sqlite:///{path}", **POLLING) as server:
        answer = httpx.get(f"{server.url}/api/stats", params={"window": "1h"}, timeout=10)
        assert answer.status_code == 200, answer.text
        render = answer.json()["stages"]["render"]
        assert render["runs"] == 5  # the 10-day-old run lies outside the window
        assert render["durationSeconds"] == {"p50": 30.0, "p95": 100.0}
        assert render["stallRate"] == 0.0 and render["incidentsByVerdict"] == {}
        wide = httpx.get(f"{server.url}/api/stats", params={"window": "30d"}, timeout=10).json()
        assert wide["stages"]["render"]["runs"] == 6


def test_bad_history_queries_are_400_problems_and_an_unknown_incident_is_404(jobs_dir: Path) -> None:
    with live_server(jobs_dir) as server:
        for route, params in [
            ("/api/incidents", {"verdict": "sleepy"}),
            ("/api/incidents", {"since": "yesterday-ish"}),
            ("/api/incidents", {"limit": "0"}),
            ("/api/incidents", {"open": "maybe"}),
            ("/api/stats", {"window": "-5m"}),
        ]:
            answer = httpx.get(f"{server.url}{route}", params=params, timeout=10)
            assert answer.status_code == 400, (params, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
        missing = httpx.get(f"{server.url}/api/incidents/nope", timeout=10)
        assert missing.status_code == 404 and "GET /api/incidents" in missing.json()["detail"]


def test_the_default_history_lives_in_the_state_dir_never_in_the_jobs_dir(
    jobs_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.delenv("AURA_MONITOR_HISTORY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    from aura_monitor.exceptions import ConfigError
    from aura_monitor.history.url import open_store

    store = open_store(load_settings(jobs_dir=jobs_dir))
    assert store.description == f"sqlite:///{tmp_path / 'data' / 'aura-monitor' / 'history.db'}"
    assert open_store(load_settings(jobs_dir=jobs_dir, state_dir=tmp_path / "st")).description.endswith(
        "/st/history.db"
    )
    try:
        open_store(load_settings(jobs_dir=jobs_dir, history=f"sqlite:///{jobs_dir / 'h.db'}"))
    except ConfigError as exc:
        assert "inside the jobs dir" in str(exc)
    else:
        raise AssertionError("a history inside the jobs dir was accepted")


def test_incidents_left_open_by_a_crash_end_at_restart_as_their_jobs_records_now_say(
    jobs_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "history.db"
    store = SQLiteStore(path)
    began = time.time() - 600
    store.apply([IncidentOpened(job_id, "node-a", 1, "script", began, Verdict.NO_PROGRESS)
                 for job_id in ("moving-again", "finished", "gone")])  # fmt: skip
    store.close()
    now = time.time()
    moving = AuraJob(jobs_dir, id="moving-again", status=RUNNING, created=now - 100, started=now - 90)
    moving.progress(now - 1, "Script", 60)
    moving.write()
    finished = AuraJob(jobs_dir, id="finished", status=DONE, created=now - 100, started=now - 90)
    finished.progress(now - 5, "Render", 100)
    finished.write()
    with live_server(jobs_dir, history=f"sqlite:///{path}", node="node-a", **POLLING) as server:
        wait_for(
            lambda: (
                {i["jobId"]: i["resolution"] for i in _incidents(server.url)["incidents"]}
                == {"moving-again": "recovered", "finished": "completed", "gone": "open"}
            ),
            what="the stale incidents closed, the one without a record left open",
        )

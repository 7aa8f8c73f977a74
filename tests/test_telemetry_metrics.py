"""Metrics from the snapshot and from transitions, read back from a fresh registry."""

from __future__ import annotations

import socket
from pathlib import Path

from prometheus_client import CollectorRegistry

from aura_monitor import __version__
from aura_monitor.clock import FakeClock
from aura_monitor.config import load_settings
from aura_monitor.jobs.model import JobStatus
from aura_monitor.jobs.stall import Thresholds
from aura_monitor.jobs.tracker import Tracker
from aura_monitor.sidecar import Sidecar
from aura_monitor.telemetry.metrics import render_job_series
from tests.support import sample, scraped
from tests.test_jobs_tracker import record


def sidecar_at(tmp_path: Path, clock: FakeClock) -> tuple[Sidecar, CollectorRegistry]:
    registry = CollectorRegistry()
    return Sidecar(load_settings(jobs_dir=tmp_path), clock=clock, registry=registry), registry


def test_the_stalled_gauge_keeps_its_labels_while_the_verdict_series_beside_it_changes(
    tmp_path: Path, clock: FakeClock
) -> None:
    sc, registry = sidecar_at(tmp_path, clock)
    sc.tracker.apply("/j/a/job.json", record(id="a", last_progress_at=clock.now()), clock.now())
    sc.tracker.apply("/j/b/job.json", record(id="b", status=JobStatus.COMPLETED, percent=100.0), clock.now())
    sc.tracker.tick(clock.advance(46))
    assert registry.get_sample_value("aura_jobs", {"status": "running"}) == 1
    assert registry.get_sample_value("aura_jobs", {"status": "completed"}) == 1
    assert registry.get_sample_value("aura_jobs", {"status": "failed"}) == 0
    text = sc.exposition().decode()
    assert sample(text, "aura_job_stalled", job_id="a", stage="tts") == 1
    # Stalled but not diagnosed yet: no verdict is published, not even the placeholder no_progress.
    assert "aura_job_stall_reason{" not in text
    sc.tracker.set_verdict("a", "no_progress", "nothing specific found", clock.now())
    assert sample(sc.exposition().decode(), "aura_job_stall_reason", job_id="a", reason="no_progress") == 1
    sc.tracker.set_verdict("a", "process_hung", "ffmpeg stopped", clock.now())
    text = sc.exposition().decode()
    assert sample(text, "aura_job_stalled", job_id="a", stage="tts") == 1
    assert sample(text, "aura_job_stall_reason", job_id="a", reason="process_hung") == 1
    assert sample(text, "aura_job_stall_reason", job_id="a", reason="no_progress") is None
    assert registry.get_sample_value("aura_job_stalls_total", {"stage": "tts"}) == 1
    assert registry.get_sample_value("aura_job_verdicts_total", {"verdict": "process_hung"}) == 1


def test_a_recovered_job_loses_its_verdict_and_a_new_stall_waits_for_a_new_diagnosis(
    tmp_path: Path, clock: FakeClock
) -> None:
    sc, _ = sidecar_at(tmp_path, clock)
    sc.tracker.apply("/j/a/job.json", record(id="a", last_progress_at=clock.now()), clock.now())
    sc.tracker.tick(clock.advance(46))
    sc.tracker.set_verdict("a", "process_hung", "ffmpeg stopped", clock.now())
    sc.tracker.apply("/j/a/job.json", record(id="a", percent=40.0, last_progress_at=clock.now()), clock.now())
    text = sc.exposition().decode()
    assert "aura_job_stalled{" not in text and "aura_job_stall_reason{" not in text
    sc.tracker.tick(clock.advance(46))
    text = sc.exposition().decode()
    assert sample(text, "aura_job_stalled", job_id="a", stage="tts") == 1
    assert "aura_job_stall_reason{" not in text


def test_the_sidecar_info_names_the_node_and_the_urls_links_are_built_from(tmp_path: Path, clock: FakeClock) -> None:
    settings = load_settings(jobs_dir=tmp_path, node="render-7", external_url="https://render-7.example.com/aura/")
    sc = Sidecar(settings, clock=clock, registry=CollectorRegistry())
    text = sc.exposition().decode()
    assert (
        sample(
            text,
            "aura_sidecar_info",
            node="render-7",
            external_url="https://render-7.example.com/aura",
            runbook_url="https://render-7.example.com/aura/runbooks",
            version=__version__,
        )
        == 1
    )
    wiki = load_settings(jobs_dir=tmp_path, runbook_url="https://wiki.example.com/aura/", port=9999)
    text = Sidecar(wiki, clock=clock, registry=CollectorRegistry()).exposition().decode()
    [labels] = [dict(key) for name, key in scraped(text) if name == "aura_sidecar_info"]
    assert labels["runbook_url"] == "https://wiki.example.com/aura"
    assert labels["external_url"] == "http://127.0.0.1:9999"
    assert labels["node"] == socket.gethostname()


def test_per_job_series_exist_only_for_active_jobs(tmp_path: Path, clock: FakeClock) -> None:
    sc, _ = sidecar_at(tmp_path, clock)
    sc.tracker.apply("/j/a/job.json", record(id="a", last_progress_at=clock.now()), clock.now())
    sc.tracker.apply("/j/b/job.json", record(id="b", status=JobStatus.FAILED), clock.now())
    text = sc.exposition().decode()
    assert 'job_id="a"' in text and 'job_id="b"' not in text
    assert sample(text, "aura_job_threshold_seconds", job_id="a", kind="default") == 45
    assert sample(text, "aura_job_last_progress_timestamp_seconds", job_id="a", stage="tts") == clock.now()
    assert sample(text, "aura_job_seconds_since_progress", job_id="a", stage="tts") == 0
    assert sample(text, "aura_job_percent", job_id="a", stage="tts") == 30


def test_stage_durations_and_outcomes_come_from_transitions(tmp_path: Path, clock: FakeClock) -> None:
    sc, registry = sidecar_at(tmp_path, clock)
    sc.tracker.apply("/j/a/job.json", record(id="a", stage="TTS"), clock.now())
    sc.tracker.apply("/j/a/job.json", record(id="a", stage="Images", percent=60.0), clock.advance(12))
    sc.tracker.apply(
        "/j/a/job.json",
        record(id="a", stage="Complete", percent=100.0, status=JobStatus.COMPLETED),
        clock.advance(3),
    )
    assert registry.get_sample_value("aura_job_stage_duration_seconds_sum", {"stage": "tts"}) == 12
    assert registry.get_sample_value("aura_job_stage_duration_seconds_count", {"stage": "images"}) == 1
    assert registry.get_sample_value("aura_job_outcomes_total", {"status": "completed"}) == 1
    assert registry.get_sample_value("aura_job_transitions_total", {"kind": "stage"}) == 2


def test_configured_thresholds_and_watcher_health_are_exported(tmp_path: Path, clock: FakeClock) -> None:
    registry = CollectorRegistry()
    Sidecar(load_settings(jobs_dir=tmp_path, stage_thresholds={"tts": 90}), clock=clock, registry=registry)
    assert registry.get_sample_value("aura_stall_threshold_seconds", {"kind": "finalizing", "stage": ""}) == 180
    assert registry.get_sample_value("aura_stall_threshold_seconds", {"kind": "stage", "stage": "tts"}) == 90
    assert registry.get_sample_value("aura_watcher_up") == 0  # not started
    assert registry.get_sample_value("aura_record_parse_failures_total") == 0


def test_cached_per_job_lines_follow_every_change_and_a_finished_job_loses_its_series(clock: FakeClock) -> None:
    tracker = Tracker(Thresholds(default=45.0))
    start = clock.now()
    tracker.apply("/j/a/job.json", record(id="a", last_progress_at=start), start)
    tracker.apply("/j/b/job.json", record(id="b", last_progress_at=start, percent=10.0), start)
    text = render_job_series(tracker, start + 5)
    assert sample(text, "aura_job_seconds_since_progress", job_id="a", stage="tts") == 5.0
    assert sample(text, "aura_job_percent", job_id="b", stage="tts") == 10.0
    # The same jobs, unchanged: their lines come from the cache, and only the age moves with the clock.
    assert (
        sample(render_job_series(tracker, start + 9), "aura_job_seconds_since_progress", job_id="a", stage="tts") == 9
    )
    tracker.apply("/j/b/job.json", record(id="b", last_progress_at=start + 10, percent=20.0), start + 10)
    tracker.apply("/j/a/job.json", record(id="a", status=JobStatus.COMPLETED, percent=100.0), start + 10)
    tracker.tick(start + 60)  # b: 50 s without progress, past its 45 s threshold
    text = render_job_series(tracker, start + 60)
    assert sample(text, "aura_job_percent", job_id="b", stage="tts") == 20.0
    assert sample(text, "aura_job_stalled", job_id="b", stage="tts") == 1
    assert sample(text, "aura_job_seconds_since_progress", job_id="b", stage="tts") == 50.0
    assert 'job_id="a"' not in text

"""The retry policy as a pure function of history, time and settings; the service's persisted history."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from aura_monitor.clock import FakeClock
from aura_monitor.config import load_settings
from aura_monitor.control import ControlService, RetryPolicy, RetryStore, decide_retry, wait_before
from aura_monitor.exceptions import BackoffActive, NotRetryable
from aura_monitor.jobs.model import JobRecord, JobStatus, RecordFormat
from aura_monitor.jobs.stall import Thresholds
from aura_monitor.jobs.tracker import Tracker

POLICY = RetryPolicy(max_retries=3, backoff=5.0, backoff_cap=300.0, window=86_400.0)


def test_the_first_retry_is_immediate(clock: FakeClock) -> None:
    decision = decide_retry([], clock.now(), POLICY)
    assert decision.allowed and decision.retry_after == 0 and decision.retries_remaining == 2


def test_the_second_retry_waits_5_s_after_the_first_and_not_a_millisecond_less(clock: FakeClock) -> None:
    first = clock.now()
    clock.advance(4.999)
    early = decide_retry([first], clock.now(), POLICY)
    assert not early.allowed and early.retry_after == pytest.approx(0.001, abs=1e-6) and early.retries_remaining == 2
    clock.advance(0.001)
    assert decide_retry([first], clock.now(), POLICY).allowed


def test_the_third_waits_10_s_after_the_second(clock: FakeClock) -> None:
    history = [clock.now(), clock.advance(5)]
    clock.advance(9.9)
    early = decide_retry(history, clock.now(), POLICY)
    assert not early.allowed and early.retry_after == pytest.approx(0.1, abs=1e-6)
    clock.advance(0.1)
    allowed = decide_retry(history, clock.now(), POLICY)
    assert allowed.allowed and allowed.retries_remaining == 0


def test_a_fourth_retry_is_refused_until_the_oldest_one_leaves_the_window(clock: FakeClock) -> None:
    history = [clock.now(), clock.advance(5), clock.advance(10)]
    clock.advance(3600)
    used_up = decide_retry(history, clock.now(), POLICY)
    assert not used_up.allowed and used_up.retries_remaining == 0
    assert used_up.retry_after == pytest.approx(history[0] + 86_400 - clock.now())
    clock.set(history[0] + 86_400)
    later = decide_retry(history, clock.now(), POLICY)
    assert later.allowed and later.retries_remaining == 0


def test_waits_double_from_5_s_and_stop_at_the_cap() -> None:
    many = RetryPolicy(max_retries=20)
    assert [wait_before(n, many) for n in range(9)] == [0, 5, 10, 20, 40, 80, 160, 300, 300]


def test_every_knob_comes_from_the_settings(tmp_path: Path) -> None:
    settings = load_settings(jobs_dir=tmp_path, retry_max=5, retry_backoff=2, retry_backoff_cap=7, retry_window=60)
    assert RetryPolicy.from_settings(settings) == RetryPolicy(max_retries=5, backoff=2, backoff_cap=7, window=60)


def test_no_retries_at_all_when_the_limit_is_zero(clock: FakeClock) -> None:
    decision = decide_retry([], clock.now(), RetryPolicy(max_retries=0))
    assert not decision.allowed and decision.retries_remaining == 0 and decision.retry_after > 0


def _service(jobs_dir: Path, clock: FakeClock, status: JobStatus = JobStatus.FAILED) -> ControlService:
    tracker = Tracker(Thresholds())
    record = JobRecord(
        id="job", format=RecordFormat.NATIVE, status=status, stage="Render", percent=80, raw_status=status.value
    )
    (jobs_dir / "job").mkdir(exist_ok=True)
    tracker.apply(str(jobs_dir / "job" / "job.json"), record, clock.now())
    return ControlService(tracker, load_settings(jobs_dir=jobs_dir), clock, CollectorRegistry())


def test_backoff_and_the_limit_are_kept_on_disk_across_restarts(jobs_dir: Path, clock: FakeClock) -> None:
    _service(jobs_dir, clock).retry("job")
    clock.advance(3)
    with pytest.raises(BackoffActive) as refused:
        _service(jobs_dir, clock).retry("job")  # a restarted sidecar: new service, same files
    assert refused.value.retry_after == pytest.approx(2) and refused.value.retries_remaining == 2
    clock.advance(2)
    assert _service(jobs_dir, clock).retry("job").retries_remaining == 1
    clock.advance(10)
    assert _service(jobs_dir, clock).retry("job").retries_remaining == 0
    with pytest.raises(BackoffActive) as used_up:
        _service(jobs_dir, clock).retry("job")
    assert used_up.value.retries_remaining == 0
    entries = RetryStore(jobs_dir).load("job")
    assert [e.attempt for e in entries] == [2, 2, 2] and all(e.channel == "request-file" for e in entries)
    assert (jobs_dir / "job" / "monitor" / "retries.json").is_file()
    assert len(_service(jobs_dir, clock).history("job")) == 3


def test_a_state_dir_keeps_the_history_outside_the_jobs_dir(tmp_path: Path, clock: FakeClock) -> None:
    store = RetryStore(tmp_path / "jobs", tmp_path / "state")
    assert store.path_of("job") == tmp_path / "state" / "job" / "retries.json"


def test_an_unreadable_history_file_is_reported_and_read_as_empty(jobs_dir: Path) -> None:
    path = RetryStore(jobs_dir).path_of("job")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert RetryStore(jobs_dir).load("job") == []


def test_only_failed_or_cancelled_jobs_can_be_retried(jobs_dir: Path, clock: FakeClock) -> None:
    for status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.COMPLETED):
        with pytest.raises(NotRetryable, match=status.value):
            _service(jobs_dir, clock, status).retry("job")
    assert _service(jobs_dir, clock, JobStatus.CANCELLED).retry("job").attempt == 2

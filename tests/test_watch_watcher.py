"""The watcher against real files and real inotify: in-place and atomic writers, bursts, vanishing dirs."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, WatchDescriptor
from watchdog.observers.polling import PollingObserverVFS

from aura_monitor.config import load_settings
from aura_monitor.jobs.transitions import Transition, TransitionKind
from aura_monitor.sidecar import Sidecar
from tests.support import HANG_S, wait_for, write_native
from tests.support.aura_writer import RUNNING, AuraJob


def make_sidecar(jobs_dir: Path, **settings: object) -> Sidecar:
    return Sidecar(load_settings(jobs_dir=jobs_dir, **settings))


@pytest.fixture
def sidecar(jobs_dir: Path) -> Iterator[Sidecar]:
    sc = make_sidecar(jobs_dir)
    sc.start()
    wait_for(lambda: sc.ready, what="sidecar ready")
    yield sc
    sc.stop()


def percent_of(sidecar: Sidecar, job_id: str) -> float | None:
    state = sidecar.tracker.get(job_id)
    return state.record.percent if state and state.record else None


def stage_of(sidecar: Sidecar, job_id: str) -> str | None:
    state = sidecar.tracker.get(job_id)
    return state.record.stage if state and state.record else None


def test_an_in_place_writer_never_produces_a_state_that_was_never_written(sidecar: Sidecar, jobs_dir: Path) -> None:
    seen: list[Transition] = []
    sidecar.tracker.subscribe(lambda batch: seen.extend(t for t in batch if t.kind is TransitionKind.STAGE))
    job = AuraJob(jobs_dir, id="inplace", status=RUNNING, created=time.time())
    rewrites = 3000
    for i in range(rewrites):
        job.stage = f"Step-{i:05d}"
        job.percent = min(99, i // 30)
        job.write()
    wait_for(lambda: stage_of(sidecar, "inplace") == f"Step-{rewrites - 1:05d}", what="final in-place state")
    written = {f"Step-{i:05d}" for i in range(rewrites)}
    observed = [t.new for t in seen]
    assert observed and set(observed) <= written
    assert observed == sorted(observed), "states must appear in the order they were written"
    assert sidecar.watcher.observer_alive
    assert percent_of(sidecar, "inplace") == 99


def test_an_atomic_writer_is_seen_through_moved_events(sidecar: Sidecar, jobs_dir: Path) -> None:
    for i in range(1, 1001):
        write_native(jobs_dir, "atomic", revision=i, percent=i / 10)
    wait_for(lambda: percent_of(sidecar, "atomic") == 100.0, what="last atomic write")
    assert sidecar.watcher.stats.events > 0


def test_a_job_dir_renamed_inside_the_jobs_dir_is_heard_under_its_new_name(sidecar: Sidecar, jobs_dir: Path) -> None:
    write_native(jobs_dir, "before", percent=1.0)
    wait_for(lambda: percent_of(sidecar, "before") == 1.0, what="job under its first name")
    (jobs_dir / "before").rename(jobs_dir / "after")
    wait_for(lambda: sidecar.tracker.get("before") is None, what="the old name dropped")
    wait_for(lambda: percent_of(sidecar, "after") == 1.0, what="the job under its new name")
    write_native(jobs_dir, "after", percent=2.0, revision=2)
    wait_for(lambda: percent_of(sidecar, "after") == 2.0, what="an update in the renamed dir")


def test_files_beside_the_record_never_reach_the_handler(sidecar: Sidecar, jobs_dir: Path) -> None:
    write_native(jobs_dir, "beside", revision=1, percent=1.0)
    wait_for(lambda: percent_of(sidecar, "beside") == 1.0, what="first record")
    before = sidecar.watcher.stats.events
    for i in range(200):
        (jobs_dir / "beside" / f"frame-{i}.png").write_bytes(b"x")
    write_native(jobs_dir, "beside", revision=2, percent=2.0)  # its temp file is dropped as well
    wait_for(lambda: percent_of(sidecar, "beside") == 2.0, what="second record")
    assert sidecar.watcher.stats.events - before == 1  # the record moved into place, nothing else


@pytest.mark.reliability
def test_two_thousand_jobs_created_updated_and_deleted_in_bursts_end_right(sidecar: Sidecar, jobs_dir: Path) -> None:
    ids = [f"burst-{i:04d}" for i in range(2000)]
    for job_id in ids:
        write_native(jobs_dir, job_id, percent=10.0)
    for job_id in ids:
        write_native(jobs_dir, job_id, percent=20.0, revision=2)
    for job_id in ids[::2]:
        shutil.rmtree(jobs_dir / job_id)
    survivors = set(ids[1::2])

    def settled() -> bool:
        states = sidecar.tracker.jobs()
        return {s.id for s in states} == survivors and all(s.record and s.record.percent == 20.0 for s in states)

    wait_for(settled, timeout=30, what="1,000 surviving jobs at 20%")


def test_our_own_reads_generate_no_events(sidecar: Sidecar, jobs_dir: Path) -> None:
    write_native(jobs_dir, "quiet", percent=1.0)
    wait_for(lambda: percent_of(sidecar, "quiet") == 1.0, what="job seen")
    assert sidecar.ingestor.wait_idle(5)
    before = sidecar.watcher.stats.events
    for _ in range(20):
        (jobs_dir / "quiet" / "job.json").read_bytes()
    write_native(jobs_dir, "quiet", percent=2.0)  # a real change, to know the events have been delivered
    wait_for(lambda: percent_of(sidecar, "quiet") == 2.0, what="second write")
    assert sidecar.watcher.stats.events - before <= 4  # created/modified/closed/moved of the one write


def test_a_missing_jobs_dir_means_not_ready_then_watching_once_it_appears(tmp_path: Path) -> None:
    jobs_dir = tmp_path / "later" / "jobs"
    sc = make_sidecar(jobs_dir)
    sc.start()
    try:
        wait_for(lambda: sc.watcher.stats.rescans >= 1, what="the supervisor's first look at the missing dir")
        assert not sc.ready
        jobs_dir.mkdir(parents=True)
        write_native(jobs_dir, "early", percent=5.0)
        wait_for(lambda: sc.ready, what="ready once the dir exists")
        wait_for(lambda: percent_of(sc, "early") == 5.0, what="job in the new dir")
        write_native(jobs_dir, "early", percent=6.0)
        wait_for(lambda: percent_of(sc, "early") == 6.0, what="inotify events in the new dir")
    finally:
        sc.stop()


@pytest.mark.reliability
def test_a_deleted_and_recreated_jobs_dir_is_rescanned(sidecar: Sidecar, jobs_dir: Path) -> None:
    write_native(jobs_dir, "old", percent=5.0)
    wait_for(lambda: percent_of(sidecar, "old") == 5.0, what="old job")
    shutil.rmtree(jobs_dir)
    wait_for(lambda: sidecar.tracker.get("old") is None, what="old job dropped")
    jobs_dir.mkdir()
    write_native(jobs_dir, "new", percent=7.0)
    wait_for(lambda: percent_of(sidecar, "new") == 7.0, timeout=HANG_S, what="job in the recreated dir")
    write_native(jobs_dir, "new", percent=8.0)
    wait_for(lambda: percent_of(sidecar, "new") == 8.0, what="events from the recreated dir")
    assert sidecar.watcher.stats.observer_restarts >= 1 and sidecar.ready


def test_the_polling_backend_sees_changes_without_inotify(jobs_dir: Path) -> None:
    sc = make_sidecar(jobs_dir, watch="polling", poll_interval=0.05)
    sc.start()
    try:
        write_native(jobs_dir, "polled", percent=3.0)
        wait_for(lambda: percent_of(sc, "polled") == 3.0, what="polled job")
        write_native(jobs_dir, "polled", percent=4.0, revision=2)
        wait_for(lambda: percent_of(sc, "polled") == 4.0, what="polled update")
        shutil.rmtree(jobs_dir / "polled")
        wait_for(lambda: sc.tracker.get("polled") is None, what="polled removal")
        assert sc.ready
    finally:
        sc.stop()


def test_the_polling_backend_is_watchdogs_observer_and_follows_a_recreated_jobs_dir(jobs_dir: Path) -> None:
    sc = make_sidecar(jobs_dir, watch="polling", poll_interval=0.05, rescan_interval=60)
    sc.start()
    try:
        wait_for(lambda: sc.ready, what="polling watcher ready")
        assert isinstance(sc.watcher._poller, PollingObserverVFS)
        write_native(jobs_dir, "before", percent=1.0)
        wait_for(lambda: percent_of(sc, "before") == 1.0, what="a job seen by the poller (no rescan for 60 s)")
        shutil.rmtree(jobs_dir)
        # The loss is seen (readiness drops) before the dir comes back: a poll that lands only after the
        # mkdir sees a dir that never left and needs no restart (a loaded stress run did just that).
        wait_for(lambda: not sc.ready, what="the removed jobs dir noticed (not ready)")
        wait_for(lambda: sc.tracker.get("before") is None, what="the job of the removed jobs dir dropped")
        jobs_dir.mkdir()
        write_native(jobs_dir, "after", percent=2.0)
        wait_for(lambda: percent_of(sc, "after") == 2.0, timeout=HANG_S, what="a job in the recreated jobs dir")
        write_native(jobs_dir, "after", percent=3.0, revision=2)
        wait_for(lambda: percent_of(sc, "after") == 3.0, what="an update polled in the recreated jobs dir")
        assert sc.ready and sc.watcher.stats.observer_restarts >= 1
    finally:
        sc.stop()


def test_garbage_keeps_the_last_good_state_and_is_counted(sidecar: Sidecar, jobs_dir: Path) -> None:
    path = write_native(jobs_dir, "flaky", percent=42.0)
    wait_for(lambda: percent_of(sidecar, "flaky") == 42.0, what="good state")
    # Garbage arrives atomically: this test is about bad JSON, not about in-place rewrites (whose empty
    # read is a different, also-counted failure that a wait for "any failure" would stop at).
    tmp = path.with_name("job.json.garbage.tmp")
    tmp.write_text('{"schema": "aura-monitor/job@1", "id": "flaky", "percent": 9')
    os.replace(tmp, path)

    def json_error() -> str | None:
        state = sidecar.tracker.get("flaky")
        error = state.last_parse_error if state else None
        return error if error and "JSON" in error else None

    wait_for(json_error, what="the garbage's JSON error")
    assert sidecar.ingestor.stats.parse_failures > 0
    state = sidecar.tracker.get("flaky")
    assert state is not None and state.record is not None and state.record.percent == 42.0
    write_native(jobs_dir, "flaky", percent=43.0)
    wait_for(lambda: percent_of(sidecar, "flaky") == 43.0, what="recovery")


def test_a_stall_is_flagged_by_the_timer_thread_without_any_file_event(jobs_dir: Path) -> None:
    sc = make_sidecar(jobs_dir, stall_threshold=0.3)
    stalled = threading.Event()
    sc.tracker.subscribe(lambda b: any(t.kind is TransitionKind.STALLED for t in b) and stalled.set())
    sc.start()
    try:
        write_native(jobs_dir, "sleepy", stage="TTS", percent=30.0)
        assert stalled.wait(5)
        state = sc.tracker.get("sleepy")
        assert state is not None and state.stalled
    finally:
        sc.stop()


def test_an_inotify_queue_overflow_triggers_an_immediate_rescan(sidecar: Sidecar, jobs_dir: Path) -> None:
    rescans = sidecar.watcher.stats.rescans
    watches = sidecar.watcher._watches
    assert watches is not None
    # The event the kernel queues when it drops events (wd -1, IN_Q_OVERFLOW), through watchdog's reader.
    overflow = InotifyEvent(WatchDescriptor(-1), InotifyConstants.IN_Q_OVERFLOW, 0, b"")
    watches.inotify.handle_event(overflow)
    wait_for(lambda: sidecar.watcher.stats.rescans > rescans, timeout=HANG_S, what="rescan after the overflow")
    assert sidecar.watcher.stats.overflows == 1


def _rewrite_behind_inotify(record: Path, elsewhere: Path, **fields: object) -> None:
    """Rewrite `record` in place through a hard link in another dir: its job dir's watch hears nothing.

    (inotify reports a child's change to the watch of the dir the writer named it through.) The new text is
    padded to at least the old length and written in one call, so no reader ever sees it empty or mixed.
    """
    link = elsewhere / f"{record.parent.name}.json"
    if not link.exists():
        os.link(record, link)
    doc = json.loads(record.read_text()) | fields
    old = record.stat().st_size
    text = json.dumps(doc).encode()
    with open(link, "r+b") as out:
        out.write(text.ljust(old + 1))  # trailing spaces are valid JSON
    assert record.stat().st_ino == link.stat().st_ino


def _rescans_pass(sc: Sidecar, count: int) -> None:
    first = sc.watcher.stats.rescans
    wait_for(lambda: sc.watcher.stats.rescans >= first + count, what=f"{count} more rescans")


def test_between_sweeps_the_rescan_stats_only_active_jobs_and_a_sweep_finds_what_inotify_missed(
    jobs_dir: Path, tmp_path: Path
) -> None:
    for i in range(3):
        write_native(jobs_dir, f"done-{i}", status="completed", percent=100.0)
    for i in range(2):
        write_native(jobs_dir, f"live-{i}", percent=10.0)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sc = make_sidecar(jobs_dir, rescan_interval=0.2)
    sc.watcher.sweep_interval = 3600.0  # no sweep but the first, unless kicked
    sc.start()
    try:
        wait_for(lambda: sc.ready and percent_of(sc, "live-1") == 10.0, what="the five jobs")
        _rescans_pass(sc, 2)
        assert sc.watcher.stats.sweeps == 1 and sc.watcher.stats.last_rescan_stats == 2  # the two running jobs
        # An active job changed behind inotify's back: the next periodic rescan reads it.
        _rewrite_behind_inotify(jobs_dir / "live-0" / "job.json", elsewhere, revision=2, percent=40.0)
        wait_for(lambda: percent_of(sc, "live-0") == 40.0, what="the active job's hidden change, by the rescan")
        # A finished one (a retry written through a link): periodic rescans leave it to the sweep.
        _rewrite_behind_inotify(jobs_dir / "done-1" / "job.json", elsewhere, revision=2, status="running", percent=5.0)
        _rescans_pass(sc, 3)
        assert percent_of(sc, "done-1") == 100.0
        sc.watcher.rescan_now()
        wait_for(lambda: percent_of(sc, "done-1") == 5.0, what="the finished job's hidden change, by the sweep")
        assert sc.watcher.stats.sweeps == 2
        _rescans_pass(sc, 1)
        assert sc.watcher.stats.last_rescan_stats == 3  # done-1 is active again
    finally:
        sc.stop()


def test_the_full_sweep_comes_round_on_its_own_interval(jobs_dir: Path, tmp_path: Path) -> None:
    write_native(jobs_dir, "done", status="completed", percent=100.0)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sc = make_sidecar(jobs_dir, rescan_interval=0.2)
    sc.watcher.sweep_interval = 1.0
    sc.start()
    try:
        wait_for(lambda: sc.ready and percent_of(sc, "done") == 100.0, what="the finished job")
        _rewrite_behind_inotify(jobs_dir / "done" / "job.json", elsewhere, revision=2, status="running", percent=7.0)
        wait_for(lambda: percent_of(sc, "done") == 7.0, what="the hidden change, by the next sweep")
        assert sc.watcher.stats.sweeps >= 2
    finally:
        sc.stop()


def test_with_the_polling_backend_every_rescan_is_a_full_sweep(jobs_dir: Path) -> None:
    write_native(jobs_dir, "done", status="completed", percent=100.0)
    sc = make_sidecar(jobs_dir, watch="polling", poll_interval=0.5, rescan_interval=0.2)
    sc.watcher.sweep_interval = 3600.0
    sc.start()
    try:
        wait_for(lambda: sc.ready and percent_of(sc, "done") == 100.0, what="the finished job")
        _rescans_pass(sc, 3)
        assert sc.watcher.stats.sweeps == sc.watcher.stats.rescans
    finally:
        sc.stop()


def test_a_record_moved_in_while_the_sweep_adds_its_dirs_watch_is_seen(
    jobs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job dir made before the sidecar started, its record moved in just as the first sweep watches it.

    The sweep lists the dir (its creation was never heard), and the record lands right before the dir's
    watch is added: the watch cannot hear it, so the sweep must stat it after watching. (It stat'ed first:
    the job stayed invisible until the next full sweep, 10 minutes; a quiet stress run caught a job written
    as a test's sidecar started and never seen.)
    """
    from aura_monitor.watch.inotify import JobDirWatches

    (jobs_dir / "late").mkdir()
    ensure = JobDirWatches.ensure
    moved: list[str] = []

    def ensure_after_a_move(self: JobDirWatches, names: list[str], *, refresh: bool = False) -> None:
        if "late" in names and not moved:
            moved.append("late")
            write_native(jobs_dir, "late", percent=33.0)  # temp file + rename, before the watch exists
        ensure(self, names, refresh=refresh)

    monkeypatch.setattr(JobDirWatches, "ensure", ensure_after_a_move)
    sc = make_sidecar(jobs_dir, rescan_interval=0.2)
    sc.watcher.sweep_interval = 3600.0  # the first sweep only: periodic rescans stat tracked jobs alone
    sc.start()
    try:
        wait_for(lambda: moved, what="the first sweep to watch the job dir")
        wait_for(lambda: percent_of(sc, "late") == 33.0, what="the record moved in as its dir was watched")
        assert sc.watcher.stats.sweeps == 1
    finally:
        sc.stop()

"""Stage-aware thresholds and the deadline heap, as pure functions of their inputs; the stall timer's pause
handling on its real thread."""

from __future__ import annotations

from dataclasses import replace

from aura_monitor.clock import FakeClock
from aura_monitor.config import load_settings
from aura_monitor.jobs.model import JobRecord, JobStatus, RecordFormat
from aura_monitor.jobs.stall import DeadlineHeap, ThresholdKind, Thresholds, is_stalled
from aura_monitor.jobs.tracker import Tracker
from aura_monitor.jobs.transitions import TransitionKind
from aura_monitor.watch.timer import StallTimer
from tests.support import HANG_S, wait_for

RUNNING = JobStatus.RUNNING


def test_the_default_threshold_is_45_seconds_and_strict() -> None:
    threshold, kind = Thresholds().for_job(RUNNING, "TTS", 40) or (0, None)
    assert (threshold, kind) == (45, ThresholdKind.DEFAULT)
    assert not is_stalled(1000.0, threshold, 1000.0 + 44.9)
    assert not is_stalled(1000.0, threshold, 1000.0 + 45.0)
    assert is_stalled(1000.0, threshold, 1000.0 + 45.1)


def test_reaching_90_percent_switches_to_the_finalizing_threshold() -> None:
    assert Thresholds().for_job(RUNNING, "Rendering", 89) == (45, ThresholdKind.DEFAULT)
    assert Thresholds().for_job(RUNNING, "Rendering", 90) == (180, ThresholdKind.FINALIZING)


def test_finalization_stages_get_180_seconds_whatever_the_percent() -> None:
    for stage in ("PostProcess", "Finalize", "Complete"):
        assert Thresholds().for_job(RUNNING, stage, 10) == (180, ThresholdKind.FINALIZING)


def test_a_queued_job_has_its_own_threshold() -> None:
    assert Thresholds().for_job(JobStatus.QUEUED, "", 0) == (600, ThresholdKind.QUEUED)


def test_terminal_jobs_never_stall() -> None:
    for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        assert Thresholds().for_job(status, "Rendering", 50) is None


def test_a_paused_job_has_the_stall_clock_of_a_running_one() -> None:
    # Aura's Pause only flips the Status field; the pipeline runs on (AURA_FORMAT.md).
    for stage, percent in (("Images", 60), ("Rendering", 95), ("PostProcess", 97)):
        assert Thresholds().for_job(JobStatus.PAUSED, stage, percent) == Thresholds().for_job(RUNNING, stage, percent)
    assert Thresholds().for_job(JobStatus.PAUSED, "Images", 60) == (45, ThresholdKind.DEFAULT)


def test_stage_overrides_match_names_and_canonical_stages() -> None:
    thresholds = Thresholds(stages={"tts": 90, "rendering": 30})
    assert thresholds.for_job(RUNNING, "Voice", 30) == (90, ThresholdKind.STAGE)
    assert thresholds.for_job(RUNNING, "Rendering", 92) == (30, ThresholdKind.STAGE)


def test_thresholds_come_from_settings() -> None:
    settings = load_settings(stall_threshold=5, finalizing_threshold=9, stage_thresholds={"TTS": 7})
    thresholds = Thresholds.from_settings(settings)
    assert (thresholds.default, thresholds.finalizing, thresholds.stages) == (5, 9, {"tts": 7})


def test_the_heap_returns_due_jobs_in_order_and_forgets_rearmed_ones() -> None:
    heap = DeadlineHeap()
    heap.arm("a", 10)
    heap.arm("b", 5)
    heap.arm("a", 20)
    assert heap.next_deadline() == 5
    assert heap.pop_due(15) == ["b"]
    assert heap.pop_due(15) == []
    assert heap.pop_due(21) == ["a"]
    assert heap.next_deadline() is None


def test_the_heap_stays_small_when_one_job_is_rearmed_many_times() -> None:
    heap = DeadlineHeap()
    for i in range(10_000):
        heap.arm("busy", float(i))
    assert len(heap) == 1
    assert len(heap._heap) < 200
    assert heap.pop_due(1e9) == ["busy"]


def _running(percent: float) -> JobRecord:
    return JobRecord("job", RecordFormat.NATIVE, JobStatus.RUNNING, "Render", percent, "running")


def test_after_a_pause_the_timer_lets_the_ingest_catch_up_before_it_judges() -> None:
    clock = FakeClock()
    tracker = Tracker(Thresholds(default=3), monotonic=clock.monotonic)
    tracker.apply("p", _running(10.0), clock.now())
    caught_up: list[float] = []

    def catch_up(timeout: float) -> bool:
        # What the ingest would find on disk: the writer progressed while the sidecar was stopped.
        tracker.apply(
            "p", JobRecord("job", RecordFormat.NATIVE, JobStatus.RUNNING, "Render", 20.0, "running"), clock.now()
        )
        caught_up.append(timeout)
        return True

    timer = StallTimer(tracker, clock, catch_up=catch_up)
    timer.start()
    try:
        clock.advance(10)  # the process "did not run" for 10 s: the job's 3 s deadline passed meanwhile
        wait_for(lambda: timer.pauses == 1, timeout=HANG_S, what="the timer to notice the pause")
        wait_for(lambda: caught_up, timeout=HANG_S, what="the catch-up")
        state = tracker.get("job")
        assert state is not None and not state.stalled and state.record is not None and state.record.percent == 20.0
    finally:
        timer.stop()


def test_the_tracker_flags_a_paused_job_that_stops_changing(clock: FakeClock) -> None:
    tracker = Tracker(Thresholds())
    running = JobRecord(
        id="job",
        format=RecordFormat.AURA,
        status=RUNNING,
        stage="Images",
        percent=60.0,
        raw_status="Running (1)",
        last_progress_at=clock.now(),
    )
    tracker.apply("/jobs/job/job.json", running, clock.now())
    clock.advance(10)
    paused = replace(running, status=JobStatus.PAUSED, raw_status="Paused (2)")
    tracker.apply("/jobs/job/job.json", paused, clock.now())  # the status flip is a change: the clock restarts
    clock.advance(44.9)
    assert tracker.tick(clock.now()) == []
    clock.advance(0.2)
    assert [t.kind for t in tracker.tick(clock.now())] == [TransitionKind.STALLED]
    state = tracker.get("job")
    assert state is not None and state.stalled and state.record is not None
    assert state.record.status is JobStatus.PAUSED

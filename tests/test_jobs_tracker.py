"""The tracker: transitions, stall and recovery, start-up stalls, unreadable files; time is injected."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aura_monitor.clock import FakeClock
from aura_monitor.jobs.model import JobRecord, JobStatus, RecordFormat
from aura_monitor.jobs.stall import Thresholds
from aura_monitor.jobs.tracker import Tracker
from aura_monitor.jobs.transitions import Transition
from aura_monitor.jobs.transitions import TransitionKind as K


def record(**fields: Any) -> JobRecord:
    base: dict[str, Any] = {
        "id": "job",
        "format": RecordFormat.NATIVE,
        "status": JobStatus.RUNNING,
        "stage": "TTS",
        "percent": 30.0,
        "raw_status": "running",
    }
    base.update(fields)
    return JobRecord(**base)


class Recorder:
    def __init__(self, tracker: Tracker) -> None:
        self.seen: list[Transition] = []
        tracker.subscribe(self.seen.extend)

    def kinds(self) -> list[K]:
        return [t.kind for t in self.seen]


def started(clock: FakeClock, **fields: Any) -> tuple[Tracker, Recorder]:
    tracker = Tracker(Thresholds())
    rec = Recorder(tracker)
    tracker.apply("/jobs/job/job.json", record(last_progress_at=clock.now(), **fields), clock.now())
    return tracker, rec


def test_a_job_is_not_stalled_at_44_9_seconds_and_is_at_45_1(clock: FakeClock) -> None:
    tracker, _rec = started(clock)
    clock.advance(44.9)
    assert tracker.tick(clock.now()) == []
    clock.advance(0.2)
    stalled = tracker.tick(clock.now())
    assert [t.kind for t in stalled] == [K.STALLED]
    assert stalled[0].new == "no_progress"
    state = tracker.get("job")
    assert state is not None and state.stalled and state.verdict == "no_progress"


def test_progress_resumed_recovers_a_stalled_job(clock: FakeClock) -> None:
    tracker, rec = started(clock)
    clock.advance(50)
    tracker.tick(clock.now())
    tracker.apply("/jobs/job/job.json", record(percent=31.0), clock.advance(1))
    assert rec.kinds()[-2:] == [K.PROGRESS, K.RECOVERED]
    recovered = rec.seen[-1]
    assert recovered.elapsed is not None and recovered.elapsed > 0
    state = tracker.get("job")
    assert state is not None and not state.stalled and state.verdict is None


def test_a_heartbeat_alone_is_not_progress(clock: FakeClock) -> None:
    tracker, _ = started(clock)
    for _ in range(4):
        clock.advance(10)
        tracker.apply("/jobs/job/job.json", record(heartbeat_at=clock.now(), revision=int(clock.now())), clock.now())
    assert [t.kind for t in tracker.tick(clock.advance(5.1))] == [K.STALLED]


def test_reaching_90_percent_moves_the_deadline_to_180_seconds(clock: FakeClock) -> None:
    tracker, _ = started(clock, percent=89.0)
    tracker.apply("/jobs/job/job.json", record(percent=90.0), clock.advance(10))
    assert tracker.tick(clock.advance(100)) == []
    state = tracker.get("job")
    assert state is not None and state.threshold == 180
    assert [t.kind for t in tracker.tick(clock.advance(80.2))] == [K.STALLED]


def test_a_queued_job_stalls_as_queued_too_long(clock: FakeClock) -> None:
    tracker, _ = started(clock, status=JobStatus.QUEUED, stage="Queued", percent=0.0, queued_at=clock.now())
    assert tracker.tick(clock.advance(599)) == []
    stalled = tracker.tick(clock.advance(2))
    assert [(t.kind, t.new) for t in stalled] == [(K.STALLED, "queued_too_long")]


def test_terminal_jobs_never_stall_and_recover_when_they_end(clock: FakeClock) -> None:
    tracker, rec = started(clock)
    tracker.tick(clock.advance(46))
    tracker.apply(
        "/jobs/job/job.json",
        record(status=JobStatus.COMPLETED, stage="Complete", percent=100.0),
        clock.advance(1),
    )
    assert K.RECOVERED in rec.kinds()
    assert tracker.tick(clock.advance(10_000)) == []
    assert tracker.next_deadline() is None


def test_a_job_already_stalled_at_start_up_is_flagged_at_once_with_its_true_duration(
    clock: FakeClock,
) -> None:
    tracker = Tracker(Thresholds())
    rec = Recorder(tracker)
    tracker.apply("/jobs/job/job.json", record(last_progress_at=clock.now() - 300), clock.now())
    assert rec.kinds() == [K.DISCOVERED, K.STALLED]
    assert rec.seen[-1].elapsed == 300
    state = tracker.get("job")
    assert state is not None and state.seconds_since_progress(clock.now()) == 300
    assert state.stalled_since == clock.now() - 300 + 45


def test_without_a_record_timestamp_the_file_mtime_is_the_last_progress(clock: FakeClock) -> None:
    tracker = Tracker(Thresholds())
    tracker.apply("/jobs/job/job.json", record(), clock.now(), mtime=clock.now() - 50)
    state = tracker.get("job")
    assert state is not None and state.stalled


def test_a_record_stamp_from_the_future_is_not_trusted(clock: FakeClock) -> None:
    tracker = Tracker(Thresholds())
    tracker.apply("/jobs/job/job.json", record(last_progress_at=clock.now() + 3600), clock.now())
    state = tracker.get("job")
    assert state is not None and state.last_progress_at == clock.now()


def test_status_stage_and_progress_changes_each_make_one_transition(clock: FakeClock) -> None:
    tracker, rec = started(clock, status=JobStatus.QUEUED, stage="Queued", percent=0.0)
    tracker.apply("/jobs/job/job.json", record(status=JobStatus.RUNNING, stage="Script", percent=5.0), clock.advance(3))
    changes = [(t.kind, t.old, t.new) for t in rec.seen[1:]]
    assert changes == [(K.STATUS, "queued", "running"), (K.STAGE, "Queued", "Script"), (K.PROGRESS, "0", "5")]
    assert rec.seen[2].elapsed == 3


def test_an_unreadable_file_keeps_the_last_good_state_and_is_reported_after_the_grace(
    clock: FakeClock,
) -> None:
    tracker, rec = started(clock, percent=40.0)
    tracker.record_failure("job", "/jobs/job/job.json", "record is empty", clock.advance(1))
    state = tracker.get("job")
    assert state is not None and state.record is not None and state.record.percent == 40.0
    assert state.parse_failures == 1
    assert tracker.tick(clock.advance(5)) == []
    unreadable = tracker.tick(clock.advance(5.1))
    assert [t.kind for t in unreadable] == [K.UNREADABLE]
    assert "record is empty" in unreadable[0].reason
    tracker.apply("/jobs/job/job.json", record(percent=40.0), clock.advance(1))
    assert rec.kinds()[-1] == K.READABLE


def test_a_transient_half_write_is_never_reported(clock: FakeClock) -> None:
    tracker, rec = started(clock)
    tracker.record_failure("job", "/jobs/job/job.json", "not valid JSON", clock.advance(0.01))
    tracker.apply("/jobs/job/job.json", record(percent=31.0), clock.advance(0.01))
    tracker.tick(clock.advance(30))
    assert K.UNREADABLE not in rec.kinds()


def test_new_inconsistencies_produce_a_transition(clock: FakeClock) -> None:
    tracker, rec = started(clock)
    tracker.apply("/jobs/job/job.json", record(inconsistencies=("Status=1 contradicts CompletedUtc",)), clock.now())
    assert rec.kinds()[-1] == K.INCONSISTENT


def test_removing_a_job_disarms_its_deadline(clock: FakeClock) -> None:
    tracker, rec = started(clock)
    tracker.remove("job", clock.now())
    assert rec.kinds()[-1] == K.REMOVED
    assert tracker.tick(clock.advance(1000)) == []
    assert tracker.get("job") is None


def test_a_refined_verdict_is_one_transition(clock: FakeClock) -> None:
    tracker, rec = started(clock)
    tracker.tick(clock.advance(46))
    tracker.set_verdict("job", "process_hung", "ffmpeg is stopped", clock.now())
    tracker.set_verdict("job", "process_hung", "ffmpeg is stopped", clock.now())
    assert [(t.kind, t.old, t.new) for t in rec.seen if t.kind is K.VERDICT] == [
        (K.VERDICT, "no_progress", "process_hung")
    ]


def test_transition_sequence_numbers_grow(clock: FakeClock) -> None:
    tracker, rec = started(clock)
    for pct in range(31, 40):
        tracker.apply("/jobs/job/job.json", replace(record(), percent=float(pct)), clock.advance(1))
    seqs = [t.seq for t in rec.seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def _monotonic_tracker(clock: FakeClock) -> tuple[Tracker, Recorder]:
    tracker = Tracker(Thresholds(default=45), monotonic=clock.monotonic)
    return tracker, Recorder(tracker)


def test_stepping_the_wall_clock_back_does_not_delay_a_stall_on_the_monotonic_clock(clock: FakeClock) -> None:
    tracker, rec = _monotonic_tracker(clock)
    tracker.apply("p", record(last_progress_at=clock.now()), clock.now())
    clock.step(-600)
    clock.advance(46)
    tracker.tick(clock.now())
    assert rec.kinds()[-1] is K.STALLED
    state = tracker.get("job")
    assert state is not None and state.seconds_since_progress(clock.now()) == 46


def test_stepping_the_wall_clock_forward_invents_no_stall_and_no_long_silence(clock: FakeClock) -> None:
    tracker, rec = _monotonic_tracker(clock)
    tracker.apply("p", record(last_progress_at=clock.now()), clock.now())
    clock.step(600)
    clock.advance(10)
    assert tracker.tick(clock.now()) == []
    state = tracker.get("job")
    assert state is not None and not state.stalled and state.seconds_since_progress(clock.now()) == 10
    assert K.STALLED not in rec.kinds()

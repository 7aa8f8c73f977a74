"""Verdict hysteresis: refinements are taken at once, flapping is not; the timeline and the ETA follow."""

from __future__ import annotations

from aura_monitor.clock import FakeClock
from aura_monitor.jobs.model import JobRecord, JobStatus, ProgressPoint, RecordFormat
from aura_monitor.jobs.settle import CONFIRM_S, VerdictHold
from aura_monitor.jobs.stall import Thresholds
from aura_monitor.jobs.tracker import Tracker
from aura_monitor.jobs.transitions import TransitionKind as K
from aura_monitor.jobs.verdicts import Verdict
from aura_monitor.views import job_view, progress_view

# Strengths as diagnosis/findings.py computes them: (2 - basis) * 3 + severity weight.
OBSERVED_WARNING, INFERRED_CRITICAL, DEFAULT_WARNING = 7, 5, 1


def hold_on(placeholder: Verdict = Verdict.NO_PROGRESS) -> VerdictHold:
    hold = VerdictHold()
    hold.start(placeholder)
    return hold


def test_the_first_diagnosis_refines_the_placeholder_at_once(clock: FakeClock) -> None:
    hold = hold_on()
    assert hold.propose(Verdict.PROCESS_HUNG, INFERRED_CRITICAL, clock.now())
    assert hold.held is Verdict.PROCESS_HUNG


def test_no_progress_is_refined_to_a_specific_cause_at_once_even_when_it_was_diagnosed(clock: FakeClock) -> None:
    hold = hold_on()
    assert not hold.propose(Verdict.NO_PROGRESS, DEFAULT_WARNING, clock.now())
    assert hold.propose(Verdict.UPSTREAM_ERRORS, OBSERVED_WARNING, clock.advance(2))
    assert hold.held is Verdict.UPSTREAM_ERRORS


def test_one_diagnosis_that_misses_the_evidence_does_not_flip_the_verdict(clock: FakeClock) -> None:
    hold = hold_on()
    hold.propose(Verdict.PROCESS_HUNG, INFERRED_CRITICAL, clock.now())
    for _ in range(20):  # hung, no_progress, hung, no_progress...: the old stderr-deadlock flapping
        assert not hold.propose(Verdict.NO_PROGRESS, DEFAULT_WARNING, clock.advance(2))
        assert not hold.propose(Verdict.PROCESS_HUNG, INFERRED_CRITICAL, clock.advance(2))
    assert hold.held is Verdict.PROCESS_HUNG


def test_a_weaker_verdict_takes_over_after_two_diagnoses_spanning_the_confirmation_time(clock: FakeClock) -> None:
    hold = hold_on()
    hold.propose(Verdict.PROCESS_HUNG, INFERRED_CRITICAL, clock.now())
    assert not hold.propose(Verdict.NO_PROGRESS, DEFAULT_WARNING, clock.advance(1))
    assert not hold.propose(Verdict.NO_PROGRESS, DEFAULT_WARNING, clock.advance(1))  # two, but only 1 s apart
    assert hold.propose(Verdict.NO_PROGRESS, DEFAULT_WARNING, clock.advance(CONFIRM_S))
    assert hold.held is Verdict.NO_PROGRESS


def test_a_stronger_finding_takes_over_at_once(clock: FakeClock) -> None:
    hold = hold_on()
    hold.propose(Verdict.PROCESS_HUNG, INFERRED_CRITICAL, clock.now())
    assert hold.propose(Verdict.UPSTREAM_ERRORS, OBSERVED_WARNING, clock.advance(2))  # fresh errors: observed
    assert hold.held is Verdict.UPSTREAM_ERRORS
    # ...and the guess it displaced needs confirming to come back.
    assert not hold.propose(Verdict.PROCESS_HUNG, INFERRED_CRITICAL, clock.advance(2))
    assert hold.held is Verdict.UPSTREAM_ERRORS


def test_a_challenger_that_changes_starts_its_confirmation_over(clock: FakeClock) -> None:
    hold = hold_on()
    hold.propose(Verdict.UPSTREAM_ERRORS, OBSERVED_WARNING, clock.now())
    assert not hold.propose(Verdict.NO_PROGRESS, DEFAULT_WARNING, clock.advance(CONFIRM_S))
    assert not hold.propose(Verdict.ABANDONED, DEFAULT_WARNING, clock.advance(CONFIRM_S))
    assert not hold.propose(Verdict.NO_PROGRESS, DEFAULT_WARNING, clock.advance(CONFIRM_S))
    assert hold.held is Verdict.UPSTREAM_ERRORS


def record(percent: float = 30.0) -> JobRecord:
    return JobRecord(
        id="job",
        format=RecordFormat.NATIVE,
        status=JobStatus.RUNNING,
        stage="TTS",
        percent=percent,
        raw_status="running",
    )


def stalled_tracker(clock: FakeClock) -> Tracker:
    tracker = Tracker(Thresholds())
    tracker.apply("/jobs/job/job.json", record(), clock.now())
    for step in range(1, 4):  # steady progress, so the job has a velocity and an ETA
        tracker.apply("/jobs/job/job.json", record(30.0 + step), clock.advance(1))
    clock.advance(50)
    tracker.tick(clock.now())
    return tracker


def test_the_tracker_keeps_the_held_verdicts_timeline_and_emits_only_real_changes(clock: FakeClock) -> None:
    tracker = stalled_tracker(clock)
    stalled_at = clock.now()
    refined = tracker.propose_verdict("job", Verdict.PROCESS_HUNG, INFERRED_CRITICAL, "idle", clock.advance(1))
    flap = tracker.propose_verdict("job", Verdict.NO_PROGRESS, DEFAULT_WARNING, "missed", clock.advance(2))
    stronger = tracker.propose_verdict("job", Verdict.UPSTREAM_ERRORS, OBSERVED_WARNING, "429s", clock.advance(2))

    assert [t.kind for t in refined] == [K.VERDICT] and flap == [] and [t.new for t in stronger] == ["upstream_errors"]
    state = tracker.get("job")
    assert state is not None and state.verdict is Verdict.UPSTREAM_ERRORS
    assert list(state.verdicts) == [
        (stalled_at, Verdict.NO_PROGRESS),
        (stalled_at + 1, Verdict.PROCESS_HUNG),
        (stalled_at + 5, Verdict.UPSTREAM_ERRORS),
    ]
    view = job_view(state, record(33.0), clock.now())
    assert [(v.code, v.at) for v in view.verdicts][-1][0] == "upstream_errors"


def test_a_new_stall_starts_a_new_timeline(clock: FakeClock) -> None:
    tracker = stalled_tracker(clock)
    tracker.propose_verdict("job", Verdict.PROCESS_HUNG, INFERRED_CRITICAL, "idle", clock.advance(1))
    tracker.apply("/jobs/job/job.json", record(40.0), clock.advance(1))  # recovers
    clock.advance(50)
    tracker.tick(clock.now())
    state = tracker.get("job")
    assert state is not None and [code for _, code in state.verdicts] == [Verdict.NO_PROGRESS]


def test_the_eta_is_null_while_the_job_is_stalled_and_comes_back_with_progress(clock: FakeClock) -> None:
    tracker = Tracker(Thresholds())
    tracker.apply("/jobs/job/job.json", record(), clock.now())
    for step in range(1, 4):
        tracker.apply("/jobs/job/job.json", record(30.0 + step), clock.advance(1))
    state = tracker.get("job")
    assert state is not None
    assert job_view(state, record(33.0), clock.now()).eta_seconds is not None  # moving: 1 %/s

    clock.advance(50)
    tracker.tick(clock.now())
    assert state.stalled and state.samples[-1] == ProgressPoint(state.samples[-1].at, 33.0, "TTS")
    assert job_view(state, record(33.0), clock.now()).eta_seconds is None
    assert progress_view(state, record(33.0), clock.now()).eta_seconds is None

    tracker.apply("/jobs/job/job.json", record(34.0), clock.advance(1))
    assert not state.stalled and job_view(state, record(34.0), clock.now()).eta_seconds is not None

"""The demo judges a job over its whole life: its verdict must come soon after the stall and then hold."""

from __future__ import annotations

from aura_monitor.cli.demo_judge import HOLD_S, Expectation, JobJudgement, Sample
from aura_monitor.jobs.verdicts import Verdict

T0 = 1_000_000.0


def _stalled(at: float, verdict: Verdict, stalled_since: float = T0) -> Sample:
    return Sample(at=at, verdict=verdict, stalled=True, stalled_since=stalled_since, terminal=False, status="running")


def _hung() -> JobJudgement:
    return JobJudgement("hang-encoder", Verdict.PROCESS_HUNG, Expectation.STALLS)


def _feed(job: JobJudgement, verdicts: list[Verdict], start: float = T0, step: float = 1.0) -> float:
    at = start
    for verdict in verdicts:
        job.observe(_stalled(at, verdict))
        at += step
    return at


def test_a_verdict_reached_once_and_then_lost_does_not_pass() -> None:
    job = _hung()
    # Right at the first diagnosis, then flipping to no_progress in most samples (the bug the demo hid).
    end = _feed(job, [Verdict.NO_PROGRESS, Verdict.PROCESS_HUNG] + [Verdict.NO_PROGRESS, Verdict.PROCESS_HUNG] * 20)
    assert job.latency == 1.0
    assert not job.passed(end)
    failure = job.failure(end)
    assert failure is not None and "held in 51% of 41 samples" in failure and "no_progress x20" in failure


def test_a_verdict_reached_late_does_not_pass_even_if_it_holds() -> None:
    job = _hung()
    end = _feed(job, [Verdict.NO_PROGRESS] * 25 + [Verdict.PROCESS_HUNG] * 40)
    assert job.latency == 25.0 and job.share == 1.0
    assert job.failure(end) == "reached 25 s after stalling (limit 20 s)"
    assert job.decided(end)


def test_a_job_that_never_reaches_its_verdict_fails_20_s_after_stalling() -> None:
    job = _hung()
    _feed(job, [Verdict.NO_PROGRESS] * 15)
    assert job.failure(T0 + 15) is None and not job.decided(T0 + 15)
    assert job.failure(T0 + 21) == "process_hung not reached within 20 s of the fault showing; showed no_progress x15"
    assert job.decided(T0 + 21)


def test_a_verdict_held_in_95_percent_of_the_samples_passes_once_watched_long_enough() -> None:
    job = _hung()
    verdicts = [Verdict.NO_PROGRESS] * 3 + [Verdict.PROCESS_HUNG] * 38 + [Verdict.NO_PROGRESS] + [Verdict.PROCESS_HUNG]
    end = _feed(job, verdicts)
    assert job.latency == 3.0 and job.after == 40 and job.held == 39
    assert job.passed(end) and job.result(end, finished=True) == "ok"
    assert job.decided(end, hold_s=HOLD_S) and not job.decided(T0 + 20, hold_s=HOLD_S)


def test_samples_after_the_job_ended_do_not_count() -> None:
    job = JobJudgement("slow-finalize", Verdict.FINALIZING, Expectation.QUIET_NOT_STALLED)
    quiet = Sample(T0, Verdict.FINALIZING, False, None, False, "running", quiet_finalizing=True)
    job.observe(quiet)
    job.observe(Sample(T0 + 1, Verdict.COMPLETED, False, None, True, "completed"))
    job.observe(Sample(T0 + 2, Verdict.COMPLETED, False, None, True, "completed"))
    assert (job.held, job.after, job.ended_as) == (1, 1, "completed")
    assert job.passed(T0 + 2) and job.decided(T0 + 2)


def test_the_judging_of_a_stall_ends_when_its_progress_resumes() -> None:
    job = _hung()
    _feed(job, [Verdict.NO_PROGRESS] + [Verdict.PROCESS_HUNG] * 30)
    job.observe(Sample(T0 + 31, None, False, None, False, "running"))  # progress resumed: no verdict served
    job.observe(Sample(T0 + 32, None, False, None, False, "running"))
    assert (job.held, job.after, job.ended_as) == (30, 30, "recovered (progress resumed)")
    assert job.passed(T0 + 32) and job.decided(T0 + 32)


def test_a_stall_that_ends_before_its_verdict_came_fails() -> None:
    job = _hung()
    _feed(job, [Verdict.NO_PROGRESS] * 3)
    job.observe(Sample(T0 + 3, None, False, None, False, "running"))
    assert job.failure(T0 + 3) == (
        "the job recovered (progress resumed) before showing process_hung; showed no_progress x3"
    )


def test_a_capped_job_is_judged_from_when_it_is_quiet_while_finalizing_and_may_stall() -> None:
    job = JobJudgement("cap-progress", Verdict.PROGRESS_CAPPED, Expectation.QUIET)
    job.observe(Sample(T0, Verdict.HEALTHY, False, None, False, "running"))  # still progressing: not judged
    assert job.onset_at is None
    job.observe(Sample(T0 + 1, Verdict.HEALTHY, False, None, False, "running", quiet_finalizing=True))
    job.observe(Sample(T0 + 2, Verdict.PROGRESS_CAPPED, True, T0 + 2, False, "running", quiet_finalizing=True))
    assert (job.onset_at, job.latency, job.failure(T0 + 2)) == (T0 + 1, 1.0, None)
    # The render ends and the record moves to Finalize: progress, so the capped spell (and its judging) is over.
    job.observe(Sample(T0 + 3, Verdict.FINALIZING, False, None, False, "running"))
    assert (job.held, job.after, job.ended_as) == (1, 1, "recovered (progress resumed)") and job.passed(T0 + 3)


def test_a_finalizing_job_that_stalls_fails_whatever_its_verdict() -> None:
    job = JobJudgement("slow-finalize", Verdict.FINALIZING, Expectation.QUIET_NOT_STALLED)
    job.observe(Sample(T0, Verdict.FINALIZING, False, None, False, "running", quiet_finalizing=True))
    job.observe(Sample(T0 + 1, Verdict.FINALIZING, True, T0 + 1, False, "running", quiet_finalizing=True))
    assert job.failure(T0 + 1) == "stalled, but it should not have" and job.decided(T0 + 1)


def test_a_faulty_job_that_ends_before_showing_its_verdict_fails() -> None:
    job = JobJudgement("crash-worker", Verdict.PROCESS_DEAD, Expectation.STALLS)
    job.observe(Sample(T0, None, False, None, True, "failed"))
    assert job.failure(T0) == "the job failed before showing process_dead"


def test_a_healthy_job_passes_when_it_completes_without_stalling() -> None:
    job = JobJudgement("healthy-1", Verdict.COMPLETED, Expectation.COMPLETES)
    job.observe(Sample(T0, None, False, None, False, "running"))
    assert job.result(T0, finished=False) == "…" and job.result(T0, finished=True) == "MISSED: never showed its fault"
    job.observe(Sample(T0 + 5, Verdict.COMPLETED, False, None, True, "completed"))
    assert job.passed(T0 + 5) and job.decided(T0 + 5) and job.share == 1.0

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from aura_monitor.clock import FakeClock, SystemClock
from aura_monitor.pipeline import JobWorkspace, RenderRequest, enqueue_job
from aura_monitor.pipeline.queue import claim_job, claim_token, native_records, queued_jobs
from aura_monitor.reporter import JobReporter


def test_queued_jobs_come_by_priority_then_creation_time(jobs_dir: Path) -> None:
    clock = FakeClock()
    for job_id, priority in (("b-old", 5), ("c-low", 9), ("a-new", 5), ("z-urgent", 0)):
        enqueue_job(jobs_dir, RenderRequest(), clock=clock, priority=priority, job_id=job_id)
        clock.advance(0.5)
    JobReporter.create(jobs_dir, "running", clock=clock).start()
    (jobs_dir / "garbage").mkdir()
    (jobs_dir / "garbage" / "job.json").write_text("{half a rec")

    order = [entry.job_id for entry in queued_jobs(native_records(jobs_dir))]

    assert order == ["z-urgent", "b-old", "a-new", "c-low"]


def test_jobs_created_in_the_same_instant_keep_a_stable_order(jobs_dir: Path) -> None:
    clock = FakeClock()
    for job_id in ("job-b", "job-a"):
        enqueue_job(jobs_dir, RenderRequest(), clock=clock, job_id=job_id)

    assert [entry.job_id for entry in queued_jobs(native_records(jobs_dir))] == ["job-a", "job-b"]


def test_a_missing_jobs_dir_is_an_empty_queue(tmp_path: Path) -> None:
    assert queued_jobs(native_records(tmp_path / "nowhere")) == []


def test_only_one_of_two_claims_wins_until_it_is_released(jobs_dir: Path) -> None:
    enqueue_job(jobs_dir, RenderRequest(), clock=SystemClock(), job_id="job-1")
    workspace = JobWorkspace.of(jobs_dir, "job-1")

    first = claim_job(workspace, owner_pid=1, clock=SystemClock())  # pid 1 is always alive
    second = claim_job(workspace, owner_pid=1, clock=SystemClock())

    assert first is not None and second is None
    assert claim_token(workspace.claim) == first.token
    first.release()
    assert not workspace.claim.exists()
    assert claim_job(workspace, owner_pid=1, clock=SystemClock()) is not None


def test_a_claim_left_by_a_dead_process_is_taken_over(jobs_dir: Path) -> None:
    enqueue_job(jobs_dir, RenderRequest(), clock=SystemClock(), job_id="job-1")
    workspace = JobWorkspace.of(jobs_dir, "job-1")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = claim_job(workspace, owner_pid=int(dead.stdout), clock=SystemClock())
    assert stale is not None

    taken = claim_job(workspace, owner_pid=1, clock=SystemClock())

    assert taken is not None and taken.token != stale.token
    assert json.loads(workspace.claim.read_text())["pid"] == 1
    stale.release()  # the old owner's release must not remove the new claim
    assert workspace.claim.exists()
    assert sorted(p.name for p in workspace.job_dir.iterdir() if "claim" in p.name) == ["claim.lock"]

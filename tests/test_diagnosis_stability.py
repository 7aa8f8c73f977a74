"""Over a stall's life: a live sidecar watching real fault jobs reaches the right verdict and holds it.

The reference worker (`aura-monitor worker`, as the demo runs it) renders the demo's faults for real; a
real uvicorn server with the demo's scaled-down thresholds samples each job's verdict every 0.5 s for at
least 30 s after it first reaches its verdict.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from aura_monitor.clock import SystemClock
from aura_monitor.jobs.verdicts import Verdict
from aura_monitor.pipeline import Fault, RenderRequest, enqueue_job
from tests.support.live_server import LiveServer, live_server
from tests.support.pipeline import kill_pid, kill_session, record

EXPECTED = {
    Fault.UPSTREAM_ERRORS: Verdict.UPSTREAM_ERRORS,
    Fault.STDERR_DEADLOCK: Verdict.PROCESS_HUNG,
    Fault.HANG_ENCODER: Verdict.PROCESS_HUNG,
}
SAMPLE_EVERY_S = 0.5
HOLD_FOR_S = 30.0  # sampled for this long after each job first reaches its verdict
REACH_WITHIN_S = 20.0
HOLD_SHARE = 0.95
DEADLINE_S = 150.0
FAULT_SCALE = 0.4  # the demo's: a provider timeout of 0.8 s between the 429s and 503s


@dataclass
class Samples:
    """One job's verdict over time: (seconds since the test started, stalled, verdict)."""

    name: str
    points: list[tuple[float, bool, str | None]] = field(default_factory=list)

    def stalled_at(self) -> float | None:
        return next((t for t, stalled, _ in self.points if stalled), None)

    def reached_at(self, expected: Verdict) -> float | None:
        return next((t for t, _, verdict in self.points if verdict == expected), None)

    def after(self, start: float) -> list[str | None]:
        return [verdict for t, _, verdict in self.points if t >= start]


def stop_worker(worker: subprocess.Popen[bytes], jobs_dir: Path) -> None:
    """SIGTERM the worker (it stops its render processes), then kill whatever a fault left behind."""
    worker.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.wait(20)
    kill_session(worker)
    for job_dir in jobs_dir.iterdir():  # render processes run in sessions of their own
        with contextlib.suppress(OSError, ValueError):
            job = record(job_dir)
            for part in ("worker", "encoder"):
                kill_pid((job.get(part) or {}).get("pid"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[LiveServer, Path]]:
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    # The demo's thresholds (cli/demo.py): production's 45 s stall threshold scaled down.
    with live_server(jobs_dir, stall_threshold=8.0, rediagnose_interval=2.0) as live:
        yield live, jobs_dir


def test_fault_jobs_reach_their_verdict_within_20_s_of_stalling_and_hold_it_in_95_percent_of_samples(
    server: tuple[LiveServer, Path],
) -> None:
    live, jobs_dir = server
    samples = {fault: Samples(fault.value) for fault in EXPECTED}
    for fault in EXPECTED:
        request = RenderRequest(duration_s=4, fault=fault, fault_scale=FAULT_SCALE)
        enqueue_job(jobs_dir, request, clock=SystemClock(), job_id=fault.value)
    began = time.monotonic()
    with open(jobs_dir.parent / "worker.log", "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "aura_monitor", "worker", "--jobs-dir", str(jobs_dir),
             "--concurrency", str(len(EXPECTED)), "--output-dir", str(jobs_dir.parent / "videos")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        with httpx.Client(base_url=live.url, timeout=10) as client:
            while time.monotonic() - began < DEADLINE_S:
                now = time.monotonic() - began
                for fault, seen in samples.items():
                    response = client.get(f"/api/jobs/{fault.value}")
                    if response.status_code == 200:
                        body = response.json()
                        seen.points.append((now, bool(body["stalled"]), body["verdict"]))
                reached = [s.reached_at(EXPECTED[f]) for f, s in samples.items()]
                if all(r is not None and now - r >= HOLD_FOR_S for r in reached):
                    break
                time.sleep(max(0.0, SAMPLE_EVERY_S - (time.monotonic() - began - now)))
    finally:
        stop_worker(worker, jobs_dir)

    report = {fault: judge(seen, EXPECTED[fault]) for fault, seen in samples.items()}
    for fault, (stalled, reached, held) in report.items():
        seen, expected = samples[fault], EXPECTED[fault]
        assert stalled is not None, f"{fault} never stalled: {seen.points[-3:]}"
        assert reached is not None, f"{fault} never reached {expected}: {[v for *_, v in seen.points][-20:]}"
        assert reached - stalled <= REACH_WITHIN_S, f"{fault} took {reached - stalled:.1f} s to reach {expected}"
        share = sum(verdict == expected for verdict in held) / len(held)
        assert len(held) >= HOLD_FOR_S / SAMPLE_EVERY_S * 0.9, f"{fault}: only {len(held)} samples after reaching"
        assert share >= HOLD_SHARE, f"{fault} held {expected} in {share:.1%} of samples: {held}"


def judge(seen: Samples, expected: Verdict) -> tuple[float | None, float | None, list[str | None]]:
    """When the job stalled and first reached `expected`, and the verdicts sampled from then on (printed)."""
    stalled, reached = seen.stalled_at(), seen.reached_at(expected)
    after_stall = seen.after(stalled) if stalled is not None else []
    held = seen.after(reached) if reached is not None else []
    share = sum(verdict == expected for verdict in after_stall) / max(1, len(after_stall))
    print(f"{seen.name}: after stalling {Counter(after_stall).most_common()} ({share:.1%} {expected})")
    if stalled is not None and reached is not None:
        kept = sum(verdict == expected for verdict in held) / len(held)
        print(f"{seen.name}: reached {reached - stalled:.1f} s after stalling, then held in {kept:.1%} of {len(held)}")
    return stalled, reached, held

"""Record written -> SSE event received, under DESIGN's load: 1,000 active jobs updating once a second,
200 clients on per-job streams and 5 on /api/events; baseline: a client polling /api/jobs every 500 ms.
Then issue 17's fan-out figure on the same sidecar: one per-job stream for each of the 1,000 jobs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .harness import (
    COSTLY_PROBE_S,
    QUICK,
    percentile,
    run_load,
    served,
    sse_streams_open,
    tracked_jobs,
    wait_until,
)
from .scenarios import Figures

JOBS = 1000
PER_JOB_CLIENTS = 200
ALL_CLIENTS = 5
# After the last write, how long the 1,000-stream clients keep listening: an event later than this is lost
# (the p99 is then past it, far past the 50 ms target, and sse_delivered_pct_1000_streams says so).
LAST_EVENTS_S = 2.0


def _writes(log: Path) -> dict[tuple[str, str], float]:
    written = {}
    for line in log.read_text().splitlines():
        job, revision, at = line.split()
        written[(job, f"w{revision}")] = float(at)
    return written


def _latencies(received: Path, written: dict[tuple[str, str], float]) -> list[float]:
    out = []
    for line in received.read_text().splitlines():
        if not line.strip():
            continue
        job, message, at = line.split()
        if (job, message) in written:
            out.append(1000 * (float(at) - written[(job, message)]))
    return out


def _poll(url: str, seconds: float, out: Path) -> None:
    """The baseline client: GET /api/jobs every 500 ms, noting when each job's message changes."""
    seen: dict[str, str] = {}
    lines = []
    stop_at = time.time() + seconds
    with httpx.Client(base_url=url, timeout=10) as client:
        next_at = time.monotonic()
        while time.time() < stop_at:
            jobs = client.get("/api/jobs", params={"limit": JOBS}).json()["jobs"]
            now = time.time()
            for job in jobs:
                if job["message"] != seen.get(job["id"]):
                    seen[job["id"]] = job["message"]
                    lines.append(f"{job['id']} {job['message']} {now!r}")
            next_at += 0.5
            time.sleep(max(0.0, next_at - time.monotonic()))
    out.write_text("\n".join(lines) + "\n")


def _warm_up(jobs_dir: Path, attempts: int = 5) -> None:
    """Write every job's record once, flat out, and check that each one is there. (A writer given half a second
    instead reached only the first ~600 jobs on a slow disk, and the same ~600 again at every retry.)"""
    missing: list[str] = []
    for _ in range(attempts):
        warm = run_load(jobs_dir, jobs=JOBS, rate=0, seconds=60, prefix="sse", writes=JOBS)
        json.loads(warm.communicate(timeout=120)[0])
        missing = [f"sse-{i:05d}" for i in range(JOBS) if not (jobs_dir / f"sse-{i:05d}" / "job.json").is_file()]
        if not missing:
            return
    raise RuntimeError(f"bench: the SSE warm-up left {len(missing)} of {JOBS} records unwritten after {attempts} tries")


def _every_job_streamed(url: str, jobs_dir: Path, work: Path, seconds: float) -> tuple[list[float], int]:
    """Latencies with one per-job stream for each of the JOBS jobs (two client processes), at 1 update/s each;
    and the writes made (what arrived is compared with it: a lost event is not in the latencies)."""
    wait_until(lambda: sse_streams_open(url) == 0, 30, "the earlier SSE clients gone", COSTLY_PROBE_S)
    ids = [f"sse-{i:05d}" for i in range(JOBS)]
    outs = [work / f"sse-every-job-{k}.txt" for k in range(2)]
    # Generous: they are stopped (SIGTERM: they write what they received) once the writer is done.
    lasting = str(seconds + 120)
    command = [sys.executable, "-m", "bench.sse_client", url, "--seconds", lasting]
    clients = [
        subprocess.Popen([*command, "--jobs", ",".join(ids[k::2]), "--out", str(out)]) for k, out in enumerate(outs)
    ]
    wait_until(lambda: sse_streams_open(url) >= JOBS, 120, f"{JOBS} per-job SSE clients connected", COSTLY_PROBE_S)
    log = work / "sse-every-job-writes.txt"
    run_load(jobs_dir, jobs=JOBS, rate=JOBS, seconds=seconds, prefix="sse", write_log=log).communicate(
        timeout=seconds + 30
    )
    time.sleep(LAST_EVENTS_S)
    for client in clients:
        client.terminate()
        client.wait(timeout=30)
    written = _writes(log)
    return [latency for out in outs for latency in _latencies(out, written)], len(written)


def sse_latency(work: Path, *, baseline: bool = True, every_job: bool = True) -> tuple[Figures, Figures]:
    """The SSE figures; `baseline`: also the 500 ms polling client; `every_job`: also 1,000 per-job streams."""
    seconds = 8.0 if QUICK else 20.0
    jobs_dir = work / "sse-jobs"
    jobs_dir.mkdir()
    _warm_up(jobs_dir)
    with served(jobs_dir) as (_, url):
        wait_until(
            lambda: tracked_jobs(url) >= JOBS,
            60,
            "jobs tracked",
        )
        ids = [f"sse-{i:05d}" for i in range(PER_JOB_CLIENTS)]
        outs = [work / f"sse-client-{k}.txt" for k in range(3)]
        client_args = [["--jobs", ",".join(ids[:100])], ["--jobs", ",".join(ids[100:])], ["--all", str(ALL_CLIENTS)]]
        clients = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.sse_client", url, *args, "--seconds", str(seconds + 2), "--out", str(out)]
            )
            for args, out in zip(client_args, outs, strict=True)
        ]

        wait_until(
            lambda: sse_streams_open(url) >= PER_JOB_CLIENTS + ALL_CLIENTS,
            30,
            "all SSE clients connected",
            COSTLY_PROBE_S,
        )
        log = work / "sse-writes.txt"
        writer = run_load(jobs_dir, jobs=JOBS, rate=JOBS, seconds=seconds, prefix="sse", write_log=log)
        writer.communicate(timeout=seconds + 30)
        for client in clients:
            client.wait(timeout=seconds + 30)
        every = _every_job_streamed(url, jobs_dir, work, seconds) if every_job else None
        polling = None
        if baseline:
            # The polling baseline runs on its own afterwards: its 1,000-job responses would otherwise load
            # the same server while the streams are measured.
            poll_log = work / "sse-poll-writes.txt"
            writer = run_load(jobs_dir, jobs=JOBS, rate=JOBS, seconds=seconds, prefix="sse", write_log=poll_log)
            polled = work / "sse-poll.txt"
            _poll(url, seconds + 1, polled)
            writer.communicate(timeout=seconds + 30)
            polling = _latencies(polled, _writes(poll_log))
    written = _writes(log)
    per_job = _latencies(outs[0], written) + _latencies(outs[1], written)
    all_jobs = _latencies(outs[2], written)
    figures: Figures = {
        "sse_latency_p99_ms": round(percentile(per_job, 99), 2),
        "sse_latency_p50_ms": round(percentile(per_job, 50), 2),
        "sse_all_latency_p99_ms": round(percentile(all_jobs, 99), 2),
        "sse_events_measured": len(per_job) + len(all_jobs),
    }
    if every is not None:
        latencies, writes = every
        figures["sse_latency_p99_ms_1000_streams"] = round(percentile(latencies, 99), 2)
        figures["sse_delivered_pct_1000_streams"] = round(100 * len(latencies) / writes, 2) if writes else math.nan
    base: Figures = {}
    if polling is not None:
        base = {
            "sse_latency_p99_ms": round(percentile(polling, 99), 2),
            "sse_latency_p50_ms": round(percentile(polling, 50), 2),
        }
    return figures, base

"""Explain under a burst: 50 concurrent explains of running jobs while /metrics is scraped and SSE streams flow.

    python -m bench.explain_burst            # prints the figures (median and spread) as JSON

Each of the 50 jobs names a live worker pid and its own output video, so every diagnosis samples CPU and
probes a file. Meanwhile one client times /metrics in a loop and 20 per-job SSE streams follow jobs updated
20 times a second. The burst client and the SSE client are separate processes (in this one they would
compete for the GIL and measure the bench, not the sidecar).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from .harness import (
    COSTLY_PROBE_S,
    QUICK,
    percentile,
    py_spy,
    run_load,
    served,
    sse_streams_open,
    tracked_jobs,
    wait_until,
)
from .scenarios import Figures, _native, render_video
from .sse import _latencies, _writes

EXPLAINS = 50
SSE_JOBS = 20
REPEATS = 3

BURST = """
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
import httpx
url, count, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_connections=count)) as client:
    client.get("/healthz")
    def one(i):
        began = time.monotonic()
        r = client.get(f"/api/jobs/{prefix}-{i}/explain")
        return {"status": r.status_code, "took": time.monotonic() - began}
    print("ready", flush=True)
    sys.stdin.readline()
    with ThreadPoolExecutor(count) as pool:
        for answer in pool.map(one, range(count)):
            print(json.dumps(answer), flush=True)
"""


def _one_burst(url: str, work: Path, jobs_dir: Path, prefix: str, pid: int, tag: str) -> Figures:
    """One burst of EXPLAINS explains of `prefix`-N, with /metrics timed and SSE measured meanwhile."""
    seconds = 6.0
    ids = [f"sse-{i:05d}" for i in range(SSE_JOBS)]
    received = work / f"{prefix}-{tag}-sse.txt"
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.sse_client",
            url,
            "--jobs",
            ",".join(ids),
            "--seconds",
            str(seconds + 2),
            "--out",
            str(received),
        ]
    )

    wait_until(lambda: sse_streams_open(url) >= SSE_JOBS, 30, "SSE clients connected", COSTLY_PROBE_S)
    burst = subprocess.Popen(
        [sys.executable, "-c", BURST, url, str(EXPLAINS), prefix],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert burst.stdout is not None and burst.stdin is not None
    burst.stdout.readline()  # "ready": its Python and httpx are loaded, so the burst starts at once
    log = work / f"{prefix}-{tag}-writes.txt"
    writer = run_load(jobs_dir, jobs=SSE_JOBS, rate=SSE_JOBS * 20, seconds=seconds, prefix="sse", write_log=log)
    metrics: list[float] = []
    done = threading.Event()

    def scrape() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not done.is_set():
                began = time.perf_counter()
                client.get("/metrics")
                metrics.append(1000 * (time.perf_counter() - began))
                time.sleep(0.02)

    scraper = threading.Thread(target=scrape)
    profile = os.environ.get("BENCH_PROFILE")  # a directory: py-spy records the sidecar during each burst
    spy = py_spy(pid, Path(profile) / f"{prefix}-{tag}.txt", 8, idle=True) if profile else None
    time.sleep(0.5)  # the SSE writes are flowing before the burst
    began = time.time()
    scraper.start()
    burst.stdin.write("go\n")
    burst.stdin.flush()
    out, _ = burst.communicate(timeout=120)
    ended = time.time()
    done.set()
    scraper.join()
    writer.communicate(timeout=seconds + 30)
    follower.wait(timeout=seconds + 30)
    if spy is not None:
        spy.wait(timeout=30)
    answers = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    took = [1000 * a["took"] for a in answers]
    written = {k: v for k, v in _writes(log).items() if began <= v <= ended}
    sse = _latencies(received, written)
    return {
        f"explain_burst{tag}_p95_ms": round(percentile(took, 95), 1),
        f"explain_burst{tag}_ok": float(sum(1 for a in answers if a["status"] == 200)),
        f"metrics_ms_during_explain_burst{tag}": round(statistics.median(metrics), 1) if metrics else float("nan"),
        f"sse_latency_p99_ms_during_explain_burst{tag}": round(percentile(sse, 99), 1),
    }


def _revised(url: str, prefix: str) -> bool:
    jobs = httpx.get(f"{url}/api/jobs", params={"limit": 1000}, timeout=10).json()["jobs"]
    return sum(1 for j in jobs if j["id"].startswith(f"{prefix}-") and j.get("message") == "r2") == EXPLAINS


def explain_burst(work: Path, repeats: int = REPEATS) -> list[Figures]:
    """`repeats` bursts on one sidecar, each of new jobs (so no diagnosis is cached from the last one)."""
    jobs_dir = work / "burst-jobs"
    jobs_dir.mkdir()
    video = render_video(work / "burst.mp4")
    worker = subprocess.Popen(["sleep", "600"])  # the live worker pid every job names
    try:
        videos = work / "videos"
        videos.mkdir()
        for r in range(repeats):
            for i in range(EXPLAINS):
                output = shutil.copy(video, videos / f"b{r}-{i}.mp4")
                _native(jobs_dir, f"b{r}-{i}", outputPath=str(output), worker={"pid": worker.pid})
        run_load(jobs_dir, jobs=SSE_JOBS, rate=0, seconds=0.3, prefix="sse").communicate(timeout=60)
        runs = []
        with served(jobs_dir) as (process, url):
            wait_until(lambda: tracked_jobs(url) >= repeats * EXPLAINS + SSE_JOBS, 60, "jobs tracked")
            for r in range(repeats):
                # Cold: the first explain of each job, every output never probed before.
                figures = _one_burst(url, work, jobs_dir, f"b{r}", process.pid, "_cold")
                # Then the records change (a new revision: no diagnosis is reused) and the outputs do not,
                # as with stalled jobs or a dashboard re-explaining them: the headline figures.
                for i in range(EXPLAINS):
                    _native(
                        jobs_dir,
                        f"b{r}-{i}",
                        revision=2,
                        message="r2",
                        outputPath=str(videos / f"b{r}-{i}.mp4"),
                        worker={"pid": worker.pid},
                    )
                wait_until(lambda r=r: _revised(url, f"b{r}"), 60, "the new revisions read", COSTLY_PROBE_S)
                figures |= _one_burst(url, work, jobs_dir, f"b{r}", process.pid, "")
                runs.append(figures)
        return runs
    finally:
        worker.kill()
        worker.wait()


def summary(runs: list[Figures]) -> dict[str, dict[str, float]]:
    """min / median / max of each figure over the runs."""
    keys = runs[0].keys()
    return {
        k: {
            "min": min(r[k] for r in runs),
            "median": statistics.median(r[k] for r in runs),
            "max": max(r[k] for r in runs),
        }
        for k in keys
    }


def scenario(work: Path) -> tuple[dict[str, list[float]], Figures]:
    """The `explain_burst` scenario of `make bench`: BENCH_REPEATS bursts on one sidecar, each figure as its runs."""
    runs = explain_burst(work, max(1, int(os.environ.get("BENCH_REPEATS", str(REPEATS)))))
    return {key: [run[key] for run in runs] for key in runs[0]}, {}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="aura-bench-burst-") as tmp:
        runs = explain_burst(Path(tmp), REPEATS if not QUICK else 3)
    print(json.dumps({"runs": runs, "spread": summary(runs)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

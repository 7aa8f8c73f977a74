"""100,000 tracked jobs (80% finished, 18% running, 2% stalled): start-up, memory, idle CPU and request costs.

    python -m bench.scale [JOBS [DIR]]  # JSON on stdout (also the `scale` scenario of `make bench`);
                                        # DIR: reuse (or write once) that fleet, to compare two builds on it

Every figure is a list of repeats (the caller reports min / median / max). The probe that waits for the
sidecar asks `/api/jobs?limit=1` for its `total`: O(1) since the tracker keeps its indexes, so waiting does
not load the process being measured.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from .harness import QUICK, served
from .load import SCHEMA, iso_time

JOBS = 100_000
QUICK_JOBS = 25_000  # BENCH_QUICK: its figures are keyed `_25k`, beside (not instead of) the 100k targets
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))  # >= 3 for the reported figures
Figures = dict[str, list[float]]


def write_fleet(jobs_dir: Path, total: int) -> None:
    """`total` native records: 80% completed, 18% running (progressing now), 2% stalled two hours ago."""
    now = time.time()
    fresh, old, created = iso_time(now), iso_time(now - 7200), iso_time(now - 900)
    done = {"status": "completed", "stage": "Complete", "percent": 100.0, "completedAt": iso_time(now - 600)}
    running = {"status": "running", "stage": "Render", "percent": 85.0, "lastProgressAt": fresh}
    stalled = {"status": "running", "stage": "TTS", "percent": 30.0, "lastProgressAt": old}
    for i in range(total):
        kind = i % 50
        fields = done if kind < 40 else running if kind < 49 else stalled
        job_id = f"j{i:06d}"
        doc = {"schema": SCHEMA, "id": job_id, "revision": 1, "createdAt": created, **fields}
        folder = jobs_dir / job_id
        folder.mkdir()
        # Setup, not a measured write: the sidecar only starts once every record is in place.
        (folder / "job.json").write_text(json.dumps(doc))


def visible(url: str) -> int:
    """Jobs the sidecar has read (an O(1) request: the tracker's index knows its size)."""
    try:
        return int(httpx.get(f"{url}/api/jobs?limit=1", timeout=30).json()["total"])
    except (httpx.HTTPError, ValueError, KeyError):
        return -1


def timed_get(client: httpx.Client, path: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    response = client.get(path)
    elapsed = 1000 * (time.perf_counter() - t0)
    response.raise_for_status()
    return elapsed, len(response.content)


def connected_frame(url: str) -> tuple[float, int]:
    """Milliseconds and bytes from opening /api/events to the end of its `connected` frame."""
    t0 = time.perf_counter()
    received = 0
    buffer = b""
    with httpx.stream("GET", f"{url}/api/events", timeout=httpx.Timeout(60, read=60)) as response:
        for chunk in response.iter_raw():
            received += len(chunk)
            buffer = (buffer + chunk)[-8:]
            if b"\n\n" in buffer or b"\r\n\r\n" in buffer:
                break
    return 1000 * (time.perf_counter() - t0), received


def one_run(jobs_dir: Path, total: int, idle_window: float) -> dict[str, float]:
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    # A 1 h threshold: the running jobs (no writer updates them here) stay healthy during the run.
    with served(jobs_dir, "--stall-threshold", "3600") as (process, url):
        proc = psutil.Process(process.pid)
        deadline = time.monotonic() + 600
        # Once a second: fine enough for a 10 s target, and light even on a sidecar without the index.
        while visible(url) != total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"bench: {total} jobs not visible after 600 s")
            time.sleep(1.0)
        out["visible_s"] = time.perf_counter() - t0
        cpu = proc.cpu_times()
        out["visible_cpu_s"] = cpu.user + cpu.system  # the start-up's CPU: what a loaded host cannot inflate
        time.sleep(5)  # the first diagnosis round of the stalled jobs: the steady state starts after it
        with httpx.Client(base_url=url, timeout=60) as client:
            metrics = [timed_get(client, "/metrics")[0] for _ in range(5 if QUICK else 10)]
            jobs = [timed_get(client, "/api/jobs?limit=100")[0] for _ in range(10)]
            queue = [timed_get(client, "/api/queue?limit=100")[0] for _ in range(10)]
        frames = [connected_frame(url) for _ in range(3)]
        out["rss_mb"] = proc.memory_info().rss / 2**20
        proc.cpu_percent(None)
        time.sleep(idle_window)  # measuring idle CPU *is* waiting: nothing may happen meanwhile
        out["idle_cpu_pct"] = proc.cpu_percent(None)
        out["metrics_ms"] = statistics.median(metrics)
        out["page_jobs_ms"] = statistics.median(jobs)
        out["page_queue_ms"] = statistics.median(queue)
        out["page_ms"] = max(out["page_jobs_ms"], out["page_queue_ms"])
        out["events_connected_ms"] = statistics.median(f[0] for f in frames)
        out["events_connected_kb"] = statistics.median(f[1] for f in frames) / 1024
    return out


def scale(work: Path, total: int | None = None, jobs_dir: Path | None = None) -> tuple[Figures, Figures]:
    """The `scale` scenario: REPEATS sidecar starts on one 100k-job dir; each figure as its repeats."""
    total = total if total is not None else QUICK_JOBS if QUICK else JOBS
    if jobs_dir is None:
        jobs_dir = work / "scale"
        jobs_dir.mkdir()
        write_fleet(jobs_dir, total)
        os.sync()
    # 35 s covers one 30 s periodic rescan; quick mode measures the steady state between rescans.
    idle_window = 10.0 if QUICK else 35.0
    runs = [one_run(jobs_dir, total, idle_window) for _ in range(REPEATS)]
    suffix = "100k" if total == JOBS else f"{total // 1000}k"
    figures: Figures = {f"{key}_{suffix}": [round(run[key], 2) for run in runs] for key in runs[0]}
    return figures, {}


def main() -> int:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else JOBS
    if len(sys.argv) > 2:  # an existing fleet (written by an earlier run's write_fleet): compare builds on it
        jobs_dir = Path(sys.argv[2])
        if not jobs_dir.is_dir():
            jobs_dir.mkdir(parents=True)
            write_fleet(jobs_dir, total)
        figures, _ = scale(jobs_dir.parent, total, jobs_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="aura-scale-") as tmp:
            figures, _ = scale(Path(tmp), total)
    json.dump(figures, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

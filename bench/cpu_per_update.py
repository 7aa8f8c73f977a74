"""Sidecar CPU per record update at a steady rate, beside the floor measured in the same run.

    python -m bench.cpu_per_update [--rate 1000] [--seconds 10]

The `cpu_per_update` scenario of `make bench`. Starts `aura-monitor serve` on 1,000 jobs, has a writer
process update them at `--rate` atomic writes/s (below saturation, so the figure is the cost of an update
and not of contention) and takes the sidecar's user + system CPU divided by the writes. Then the same
writer runs again beside bench/cpu_floor.py (one thread: inotify read + open/read + json.loads, nothing
else) on the same jobs: `cpu_floor_us`, and `cpu_per_update_ratio` = the two divided (target <= 2).
`BENCH_PROFILE=DIR` records the sidecar's window with py-spy (summary: `python -m bench.profile_summary FILE`).
Also the tool for A/B runs of two checkouts: run it alternately in each, this VM's speed drifts by 2x
over an hour and interleaving keeps the comparison fair.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from .harness import QUICK, py_spy, run_load, served, tracked_jobs, wait_until

JOBS = 1000
RATE = 1000.0
SECONDS = 5.0 if QUICK else 10.0
Figures = dict[str, float]


def _warm_up(jobs_dir: Path, attempts: int = 5) -> None:
    """Every job's first record, checked: a flat-out writer on a busy host reaches only some jobs in 2 s."""
    for _ in range(attempts):
        run_load(jobs_dir, jobs=JOBS, rate=0, seconds=2, prefix="cpu").communicate(timeout=120)
        missing = sum(1 for i in range(JOBS) if not (jobs_dir / f"cpu-{i:05d}" / "job.json").is_file())
        if not missing:
            return
    raise RuntimeError(f"bench: the cpu_per_update warm-up left {missing} of {JOBS} records unwritten")


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _updates(pid: int, jobs_dir: Path, rate: float, seconds: float, profile: Path | None = None) -> tuple[float, int]:
    """CPU seconds that `pid` spends while the writer updates the jobs at `rate` for `seconds`; the writes.

    With `profile`, py-spy records `pid` over the same window (`bench/profile_summary.py` reads it)."""
    process = psutil.Process(pid)
    spy = py_spy(pid, profile, seconds + 1, idle=False) if profile is not None else None
    before = _cpu_s(process)
    out, _ = run_load(jobs_dir, jobs=JOBS, rate=rate, seconds=seconds, prefix="cpu").communicate(timeout=seconds + 60)
    time.sleep(1.0)  # the last updates go through (an idle reader spends nothing meanwhile)
    cpu = _cpu_s(process) - before
    if spy is not None:
        spy.wait(timeout=60)
    return cpu, int(json.loads(out)["writes"])


def _floor(jobs_dir: Path, rate: float, seconds: float) -> tuple[float, int]:
    """The floor reader's CPU seconds and the writes, for the same writer; it must have parsed every write."""
    reader = subprocess.Popen(
        [sys.executable, "-m", "bench.cpu_floor", str(jobs_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdin is not None and reader.stdout is not None
    try:
        if reader.stdout.readline().strip() != "ready":
            raise RuntimeError("bench: the floor reader (bench.cpu_floor) failed to start; see its stderr")
        cpu, writes = _updates(reader.pid, jobs_dir, rate, seconds)
        reader.stdin.close()
        counts = json.loads(reader.stdout.readline())
    finally:
        reader.kill()
        reader.wait()
    if counts["parsed"] < writes:
        raise RuntimeError(
            f"bench: the floor reader parsed {counts['parsed']} records for {writes} writes (an inotify queue "
            "overflow on a stalled host?); its CPU would understate the floor: rerun on a quieter host"
        )
    return cpu, writes


def cpu_per_update(work: Path, rate: float = RATE, seconds: float = SECONDS) -> tuple[Figures, Figures]:
    """One repeat: the sidecar's CPU per update, then the floor's, on the same jobs and writer."""
    jobs_dir = work / "cpu-jobs"
    jobs_dir.mkdir()
    _warm_up(jobs_dir)
    with served(jobs_dir) as (process, url):
        wait_until(lambda: tracked_jobs(url) >= JOBS, 60, "jobs tracked")
        profile = os.environ.get("BENCH_PROFILE")  # a directory: py-spy records the sidecar's window
        spy_output = Path(profile) / f"cpu_per_update-{time.strftime('%H%M%S')}.txt" if profile else None
        sidecar_cpu, sidecar_writes = _updates(process.pid, jobs_dir, rate, seconds, spy_output)
    floor_cpu, floor_writes = _floor(jobs_dir, rate, seconds)
    per_update = 1e6 * sidecar_cpu / sidecar_writes
    floor = 1e6 * floor_cpu / floor_writes
    return (
        {
            "cpu_per_update_us": round(per_update, 1),
            "cpu_floor_us": round(floor, 1),
            "cpu_per_update_ratio": round(per_update / floor, 2) if floor else float("nan"),
        },
        {},
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aura-bench-cpu-"))
    try:
        figures, _ = cpu_per_update(work, args.rate, args.seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Sidecar CPU per record update at a steady rate, for A/B comparisons between two checkouts.

    python -m bench.cpu_per_update [--rate 1000] [--seconds 10]

Starts `aura-monitor serve` from the current directory's code on 1,000 jobs, has a writer process update
them at `--rate` atomic writes/s (below saturation, so the figure is the cost of an update and not of
contention), and prints the sidecar's user + system CPU divided by the writes. Run it alternately in
both checkouts: this VM's speed drifts by 2x over an hour, interleaving keeps the comparison fair.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import psutil

from .harness import run_load, served, tracked_jobs, wait_until

JOBS = 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aura-bench-cpu-"))
    try:
        jobs_dir = work / "jobs"
        jobs_dir.mkdir()
        run_load(jobs_dir, jobs=JOBS, rate=0, seconds=2, prefix="cpu").communicate()
        with served(jobs_dir) as (process, url):
            wait_until(lambda: tracked_jobs(url) >= JOBS, 60, "jobs tracked")
            sidecar = psutil.Process(process.pid)
            before = sidecar.cpu_times()
            out, _ = run_load(jobs_dir, jobs=JOBS, rate=args.rate, seconds=args.seconds, prefix="cpu").communicate()
            time.sleep(1.0)  # let the last updates through
            after = sidecar.cpu_times()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    writes = json.loads(out)["writes"]
    user = 1e6 * (after.user - before.user) / writes
    system = 1e6 * (after.system - before.system) / writes
    print(f"{user + system:.0f} us of sidecar CPU per update ({user:.0f} user, {system:.0f} system), {writes} writes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Load generator (run as a separate process): rewrites native job records at a target rate for a while.

    python -m bench.load JOBS_DIR --jobs N --rate R --seconds S [--writes W] [--write-log FILE]

Every write is atomic (temp + os.replace, as the reporter SDK does). Each job's percent is its own write
counter, so a reader can check that the final state of every job is the last one written. Each record carries
the wall time of its write (`writtenAt`); --write-log also logs each write, for latency measurement. It stops
after S seconds, or after W writes when --writes is given. Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = "aura-monitor/job@1"


def iso_time(epoch: float) -> str:
    """A record's timestamp: UTC ISO-8601 to the microsecond (the stall scenario times lags in microseconds)."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_TEMPLATE = (
    '{{"schema": "{schema}", "id": "{id}", "revision": {rev}, "status": "running", "stage": "{stage}", '
    '"percent": {pct}, "message": "w{rev}", "writtenAt": {at}}}'
)


def write(tmp: bytes, target: bytes, data: bytes) -> None:
    """One atomic write with the fewest syscalls Python allows (the generator must outrun the sidecar)."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("jobs_dir", type=Path)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0, help="writes per second in total (0 = flat out)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writes", type=int, default=0, help="stop after this many writes too (0 = no limit)")
    parser.add_argument("--prefix", default="load")
    parser.add_argument("--stage", default="Render")
    parser.add_argument("--write-log", type=Path, default=None, help="append 'job revision time' per write")
    args = parser.parse_args(argv)
    log = open(args.write_log, "w") if args.write_log else None  # noqa: SIM115 - closed at the end
    folders = []
    paths = []
    for i in range(args.jobs):
        folder = args.jobs_dir / f"{args.prefix}-{i:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        folders.append(folder)
        paths.append((bytes(folder / "job.json.load.tmp"), bytes(folder / "job.json")))
    counters = [0] * args.jobs
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    start = time.perf_counter()
    writes = 0
    next_at = start
    while True:
        now = time.perf_counter()
        if now - start >= args.seconds or (args.writes and writes >= args.writes):
            break
        if interval and now < next_at:
            time.sleep(min(next_at - now, 0.005))
            continue
        i = writes % args.jobs
        counters[i] += 1
        at = time.time()
        data = _TEMPLATE.format(
            schema=SCHEMA,
            id=folders[i].name,
            rev=counters[i],
            stage=args.stage,
            pct=min(100.0, counters[i] / 1000.0),
            at=at,
        )
        write(*paths[i], data.encode())
        if log is not None:
            log.write(f"{folders[i].name} {counters[i]} {at!r}\n")
        writes += 1
        next_at += interval
    elapsed = time.perf_counter() - start
    if log is not None:
        log.close()
    final = {folder.name: counters[i] for i, folder in enumerate(folders)}
    json.dump({"writes": writes, "seconds": elapsed, "final_revisions": final}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

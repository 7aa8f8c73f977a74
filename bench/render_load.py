"""The sidecar on a busy render node: SSE latency and stall lag beside two full-CPU libx264 encodes.

    python -m bench.render_load        # quiet, encoders at nice 10, encoders at nice 0; JSON on stdout

The `render_load` scenario of `make bench`. Each repeat measures the three conditions in turn, in one run,
so the figures share the host's state: quiet (`sse_latency_p99_ms`, ...: the whole SSE scenario, with its
polling baseline and its 1,000-stream figure, so `make bench` does not run that scenario a second time),
the encoders at nice 10 as farms run them (`..._render_load`) and at nice 0 (`..._render_load_nice0`).
The sidecar itself runs at the bench's priority (nice 0), as a default service would. Each encode is
`ffmpeg -f lavfi -i testsrc2 -c:v libx264 -f null -`, which keeps a core busy on its own (libx264's
threads on 720p30).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from .harness import QUICK, percentile
from .scenarios import Figures, _stall_lags
from .sse import JOBS as SSE_JOBS
from .sse import sse_latency

ENCODES = 2
CONDITIONS = (("", None), ("_render_load", 10), ("_render_load_nice0", 0))  # key suffix, encoder nice


@contextmanager
def encoders(nice: int | None, after: Path | None = None) -> Iterator[list[subprocess.Popen[bytes]]]:
    """ENCODES libx264 encodes at `nice`, killed after the block (None: none).

    With `after`, they start once that directory holds the SSE scenario's 1,000 warm-up records: its
    warm-up writes them flat out within half a second, which an encode-loaded host fails to do (it says so
    and gives up); the measured part (connect, 1,000 updates/s) then runs beside the encodes.
    """
    procs: list[subprocess.Popen[bytes]] = []
    done = threading.Event()
    starter = threading.Thread(target=_start, args=(procs, nice, after, done), daemon=True)
    starter.start()
    try:
        if after is None:
            starter.join()
        yield procs
    finally:
        done.set()
        starter.join()
        for proc in procs:
            proc.kill()
            proc.wait()


def _start(procs: list[subprocess.Popen[bytes]], nice: int | None, after: Path | None, done: threading.Event) -> None:
    if nice is None:
        return
    if after is not None:
        while len(list(after.glob("*/job.json"))) < SSE_JOBS:
            if done.wait(0.1):
                return
    for _ in range(ENCODES):
        procs.append(
            subprocess.Popen(
                [
                    "nice",
                    "-n",
                    str(nice),
                    "ffmpeg",
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=size=1280x720:rate=30",
                    "-t",
                    "3600",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "medium",
                    "-f",
                    "null",
                    "-",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )


def _one(work: Path, suffix: str, nice: int | None, stall: bool) -> tuple[Figures, Figures]:
    """One condition; quiet (no encodes) also gives the SSE scenario's baseline and 1,000-stream figure."""
    quiet = nice is None
    with encoders(nice, after=work / "sse-jobs") as procs:
        sse, base = sse_latency(work, baseline=quiet, every_job=quiet)
        lags = None
        if stall:
            (work / "stall").mkdir()
            lags = _stall_lags("sidecar", work / "stall", 100 if QUICK else 300, threshold=2.0)
        used = sum(_cpu(p.pid) for p in procs)
    if quiet:
        figures = dict(sse)  # the SSE scenario's keys, unchanged
    else:
        figures = {
            f"sse_latency_p99_ms{suffix}": sse["sse_latency_p99_ms"],
            f"sse_latency_p50_ms{suffix}": sse["sse_latency_p50_ms"],
            f"sse_all_latency_p99_ms{suffix}": sse["sse_all_latency_p99_ms"],
        }
        figures[f"encoder_cpu_s{suffix}"] = round(used, 1)  # evidence the encodes did load the host
    if lags is not None:
        figures[f"stall_lag_p99_ms{suffix}"] = round(percentile(lags, 99), 2)
    return figures, base


def _cpu(pid: int) -> float:
    """CPU seconds of the encode `pid` (nice execs ffmpeg in place: the same pid)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def render_load(work: Path, quiet_stall: bool = True) -> tuple[Figures, Figures]:
    """One repeat: every condition, quiet first; figures and the quiet SSE's polling baseline.

    `quiet_stall=False` leaves the quiet stall lag to the stall scenario of the same `make bench` run
    (which measures it with its own polling baseline); the loaded stall lags are always measured.
    """
    figures: Figures = {}
    baseline: Figures = {}
    for suffix, nice in CONDITIONS:
        sub = work / (suffix.strip("_") or "quiet")
        sub.mkdir()
        measured, base = _one(sub, suffix, nice, stall=quiet_stall or nice is not None)
        figures |= measured
        baseline |= base
    return figures, baseline


def main() -> int:
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="aura-bench-render-") as tmp:
            runs.append(render_load(Path(tmp))[0])
    spread = {
        key: [min(r[key] for r in runs), statistics.median(r[key] for r in runs), max(r[key] for r in runs)]
        for key in runs[0]
    }
    print(json.dumps({"runs": runs, "spread (min, median, max)": spread}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

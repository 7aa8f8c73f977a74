"""Shared pieces of the benchmarks: percentiles, a sidecar in a subprocess, free ports, deadlines."""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

QUICK = os.environ.get("BENCH_QUICK") == "1"


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[rank]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# How often a probe that costs the sidecar O(jobs) may ask (one that reads /metrics to count SSE streams,
# the only place that count is served): a quarter second keeps it from loading what it waits on.
COSTLY_PROBE_S = 0.25


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll `predicate` every `interval` s until it holds; TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"bench: timed out after {timeout} s waiting for {what}")


def tracked_jobs(url: str) -> int:
    """How many jobs the sidecar at `url` has read: `total` of a one-row page, O(1) from the tracker's index,
    so polling it every 20 ms does not load the sidecar it waits on (/api/queue used to build every view)."""
    return int(httpx.get(f"{url}/api/jobs?limit=1", timeout=5).json()["total"])


def sse_streams_open(url: str) -> float:
    """Open SSE streams as the sidecar at `url` counts them (aura_sse_clients summed), -1 when it does not
    answer within 30 s (a sidecar accepting 1,000 streams on a saturated host can be that slow: keep waiting).

    /metrics is the only place the count is served and costs O(jobs): poll it every COSTLY_PROBE_S."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=30).text
    except httpx.HTTPError:
        return -1.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("aura_sse_clients{"))


def py_spy(pid: int, output: Path, seconds: float, *, idle: bool) -> subprocess.Popen[bytes]:
    """py-spy recording `pid` for `seconds` into `output` (raw collapsed stacks, one root frame per thread).

    `idle=True` keeps the samples of threads the OS has asleep (a wait for a lock, the GIL or I/O shows, at
    the line it waits on); `idle=False` keeps only running threads: what spends the CPU. `--nonblocking`:
    the sidecar is not paused per sample.
    py-spy is not a dependency: `.venv/bin/pip install py-spy` (`bench/profile_summary.py` reads the output)."""
    binary = Path(sys.executable).parent / "py-spy"
    if not binary.exists():
        raise RuntimeError(f"bench: BENCH_PROFILE needs py-spy beside {sys.executable}: pip install py-spy")
    argv = ["record", "--pid", str(pid), "--threads", "--nonblocking", "--format", "raw", *(["--idle"] if idle else [])]
    argv += ["--rate", "200", "--duration", str(math.ceil(seconds)), "--output", str(output)]
    spy = subprocess.Popen([str(binary), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches
    return spy


@contextmanager
def served(jobs_dir: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`aura-monitor serve` on a free loopback port, ready, stopped at the end.

    Its history goes to a fresh temp dir: the user's default one (~/.local/share/aura-monitor) would keep
    every benched job (100,000 per scale run) and teach later sidecars thresholds from them."""
    port = free_port()
    history = Path(tempfile.mkdtemp(prefix="aura-bench-history-")) / "history.db"
    cmd = [
        sys.executable,
        "-m",
        "aura_monitor",
        "serve",
        "--jobs-dir",
        str(jobs_dir),
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--history",
        f"sqlite:///{history}",
        *extra,
    ]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 60, "sidecar ready")
        yield process, url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(history.parent, ignore_errors=True)


def run_load(
    jobs_dir: Path,
    *,
    jobs: int,
    rate: float,
    seconds: float,
    prefix: str,
    stage: str = "Render",
    write_log: Path | None = None,
    writes: int = 0,
) -> subprocess.Popen[str]:
    """The load generator (bench/load.py) in its own process; its JSON summary comes on stdout. With `writes`,
    it stops after that many writes (or `seconds`, whichever comes first)."""
    args = [
        sys.executable,
        "-m",
        "bench.load",
        str(jobs_dir),
        "--jobs",
        str(jobs),
        "--rate",
        str(rate),
        "--seconds",
        str(seconds),
        "--prefix",
        prefix,
        "--stage",
        stage,
        "--writes",
        str(writes),
    ]
    if write_log is not None:
        args += ["--write-log", str(write_log)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)

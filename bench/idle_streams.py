"""Fan-out memory: what one idle SSE stream costs the sidecar, from its RSS over 2,000 held streams.

    python -m bench.idle_streams          # JSON: kb_per_idle_stream per repeat, and its spread

The streams are held by a separate client process on raw sockets (one request each, the response head
read, then nothing), so the figure is the server's cost alone: the RSS delta of the served sidecar between
before the streams opened and after all of them were counted open (`aura_sse_clients`), divided by their
number. Half the streams follow one job each, half /api/events.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from .harness import COSTLY_PROBE_S, served, sse_streams_open, tracked_jobs, wait_until
from .scenarios import Figures, _native

STREAMS = 2000
JOBS = 100

HOLDER = """
import selectors, socket, sys, time
port, count, jobs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
held = []
for i in range(count):
    path = f"/api/jobs/idle-{i % jobs}/events" if i % 2 else "/api/events"
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nAccept: text/event-stream\\r\\n\\r\\n".encode())
    sock.setblocking(False)
    held.append(sock)
# Read what arrives (the head, the connected frame), as a browser's EventSource would, until every stream
# has answered, then two seconds more (heartbeats keep arriving): an unread frame would sit in the server's
# buffers instead.
selector = selectors.DefaultSelector()
for sock in held:
    selector.register(sock, selectors.EVENT_READ)
heads = set()
all_in = None
while all_in is None or time.monotonic() - all_in < 2.0:
    ready = selector.select(timeout=0.2)
    for key, _ in ready:
        data = key.fileobj.recv(1 << 20)
        if data.startswith(b"HTTP/1.1 "):
            if not data.startswith(b"HTTP/1.1 200"):
                sys.exit("a stream was refused: " + data[:200].decode(errors="replace"))
            heads.add(key.fileobj)
            if len(heads) == count:
                all_in = time.monotonic()
print("held", flush=True)
sys.stdin.readline()
"""


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def idle_streams(work: Path, streams: int = STREAMS) -> Figures:
    """One measurement on a new sidecar."""
    jobs_dir = work / "idle-jobs"
    jobs_dir.mkdir()
    for i in range(JOBS):
        _native(jobs_dir, f"idle-{i}")
    with served(jobs_dir, "--max-streams", str(streams + 100)) as (process, url):
        wait_until(lambda: tracked_jobs(url) >= JOBS, 60, "jobs tracked")
        port = url.rsplit(":", 1)[1]
        # Warm: every route once, so the delta is the streams' and not first-use imports and caches.
        warm = subprocess.run(
            [sys.executable, "-c", HOLDER, port, "20", str(JOBS)],
            input="\n",
            text=True,
            stdout=subprocess.DEVNULL,  # its "held" is for a reader that waits on it; nobody does here
            timeout=60,
        )
        assert warm.returncode == 0
        wait_until(lambda: sse_streams_open(url) == 0, 30, "the warm-up streams closed", COSTLY_PROBE_S)
        time.sleep(1.0)
        before = _rss(process.pid)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, port, str(streams), str(JOBS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdin is not None
            if holder.stdout.readline().strip() != "held":
                raise RuntimeError("bench: the stream holder failed; see its stderr")
            wait_until(lambda: sse_streams_open(url) >= streams, 60, f"{streams} streams counted open", COSTLY_PROBE_S)
            time.sleep(1.0)  # let the last frames go out
            after = _rss(process.pid)
            holder.stdin.write("\n")
            holder.stdin.flush()
        finally:
            holder.wait(timeout=30)
    return {
        "kb_per_idle_stream": round((after - before) / streams / 1024, 2),
        "rss_mb_idle_streams": round(after / 2**20, 1),
    }


def raise_fd_limit() -> None:
    """Enough descriptors for STREAMS: the sidecar (a child) inherits the limit and caps its streams by it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = STREAMS * 2 + 1024
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


def scenario(work: Path) -> tuple[Figures, Figures]:
    """The `idle_streams` scenario of `make bench` (one repeat)."""
    raise_fd_limit()
    return idle_streams(work), {}


def main() -> int:
    raise_fd_limit()
    runs = []
    for _ in range(int(os.environ.get("BENCH_REPEATS", "3"))):
        with tempfile.TemporaryDirectory(prefix="aura-bench-idle-") as tmp:
            runs.append(idle_streams(Path(tmp)))
    values = [r["kb_per_idle_stream"] for r in runs]
    print(json.dumps({"runs": runs, "kb_per_idle_stream": [min(values), statistics.median(values), max(values)]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

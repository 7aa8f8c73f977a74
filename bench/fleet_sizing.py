"""Fleet sizing, measured: series and bytes one sidecar exposes on /metrics with 0 and 100 active jobs.

Run: `.venv/bin/python -m bench.fleet_sizing` (JSON on stdout; about a minute on 2 cores). docs/fleet.md
multiplies these per-node figures out to 1,000 nodes; nothing here is extrapolated except the `fleet` block.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from aura_monitor import __version__
from aura_monitor.records.native import SCHEMA

from .harness import served, tracked_jobs, wait_until
from .load import iso_time

JOBS = 100
NODES = 1_000
SCRAPE_INTERVAL_S = 15.0
SCRAPES = 20
# Native stage names, spread over the jobs so the `stage`-labelled families show several label values.
STAGES = ("Plan", "Script", "TTS", "Images", "Render", "Finalize")


def write_jobs(jobs_dir: Path, count: int, *, stalled: bool) -> None:
    """`count` running native records; stalled ones last progressed two hours ago, the others just now."""
    now = time.time()
    since = 7200.0 if stalled else 0.0
    for i in range(count):
        job_id = f"fleet-{i:03d}"
        doc = {
            "schema": SCHEMA,
            "id": job_id,
            "revision": 1,
            "status": "running",
            "stage": STAGES[i % len(STAGES)],
            "percent": 40.0,
            "createdAt": iso_time(now - since - 60),
            "lastProgressAt": iso_time(now - since),
        }
        folder = jobs_dir / job_id
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "job.json.tmp"
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, folder / "job.json")  # atomic, as the reporter SDK writes


def series_of(text: str) -> dict[str, int]:
    """Series per metric name (sample lines; `_bucket`, `_sum`, `_count`, `_created` counted under their own names)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            counts[name] = counts.get(name, 0) + 1
    return counts


def count_prefixed(counts: dict[str, int], prefix: str) -> int:
    return sum(n for name, n in counts.items() if name.startswith(prefix))


def scrape(url: str) -> dict[str, Any]:
    """Series, bytes (plain and gzip'd as Prometheus asks for it) and time of GET /metrics, median of SCRAPES."""
    times: list[float] = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(SCRAPES):
            t0 = time.perf_counter()
            response = client.get("/metrics", headers={"Accept-Encoding": "identity"})
            times.append(1000 * (time.perf_counter() - t0))
            response.raise_for_status()
        body = response.content
        # What Prometheus itself sends: it asks for gzip; the wire size is what the server returns then.
        raw = client.build_request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        streamed = client.send(raw, stream=True)
        wire_bytes = sum(len(chunk) for chunk in streamed.iter_raw())
        encoding = streamed.headers.get("content-encoding", "identity")
        streamed.close()
    counts = series_of(body.decode())
    return {
        "series": sum(counts.values()),
        "aura_series": count_prefixed(counts, "aura_"),
        "families": dict(sorted(counts.items())),
        "bytes": len(body),
        "gzip_bytes": len(gzip.compress(body, compresslevel=6)),
        "wire_bytes": wire_bytes,
        "wire_encoding": encoding,
        "scrape_ms_median": round(statistics.median(times), 2),
    }


def measure(jobs: int, *, stalled: bool) -> dict[str, Any]:
    """One sidecar on a fresh jobs dir with `jobs` running jobs (all stalled and diagnosed, or all healthy)."""
    with tempfile.TemporaryDirectory(prefix="aura-fleet-") as tmp:
        jobs_dir = Path(tmp) / "jobs"
        jobs_dir.mkdir()
        write_jobs(jobs_dir, jobs, stalled=stalled)
        # A 1 h threshold keeps the healthy jobs healthy for the whole measurement.
        threshold = "45" if stalled else "3600"
        with served(jobs_dir, "--node", "bench-node", "--stall-threshold", threshold) as (process, url):
            wait_until(lambda: tracked_jobs(url) == jobs, 60, f"{jobs} jobs tracked")
            if stalled:
                # Worst case: every job stalled and its verdict exported (aura_job_stall_reason present).
                wait_until(
                    lambda: (
                        series_of(httpx.get(f"{url}/metrics", timeout=10).text).get("aura_job_stall_reason", 0) == jobs
                    ),
                    180,
                    f"{jobs} diagnosed stalls",
                )
            result = scrape(url)
            result["rss_mib"] = round(psutil.Process(process.pid).memory_info().rss / 2**20, 1)
    result["jobs"] = jobs
    result["stalled"] = jobs if stalled else 0
    return result


def fleet(per_node: dict[str, Any]) -> dict[str, Any]:
    """The measured worst case (every job stalled) multiplied out to NODES nodes at SCRAPE_INTERVAL_S."""
    series = per_node["series"] + 5  # + up and the 4 other synthetic scrape_* series Prometheus adds per target
    return {
        "nodes": NODES,
        "scrape_interval_s": SCRAPE_INTERVAL_S,
        "active_series": series * NODES,
        "samples_per_s": round(series * NODES / SCRAPE_INTERVAL_S),
        "scrapes_per_s": round(NODES / SCRAPE_INTERVAL_S, 1),
        "ingress_bytes_per_s_as_served": round(per_node["wire_bytes"] * NODES / SCRAPE_INTERVAL_S),
        "ingress_bytes_per_s_if_gzip": round(per_node["gzip_bytes"] * NODES / SCRAPE_INTERVAL_S),
    }


def main() -> None:
    started = time.time()
    idle = measure(0, stalled=False)
    running = measure(JOBS, stalled=False)
    stalled = measure(JOBS, stalled=True)
    per_job = {
        "series_per_running_job": round((running["series"] - idle["series"]) / JOBS, 2),
        "series_per_stalled_job": round((stalled["series"] - idle["series"]) / JOBS, 2),
        "bytes_per_stalled_job": round((stalled["bytes"] - idle["bytes"]) / JOBS),
    }
    report = {
        "command": "python -m bench.fleet_sizing",
        "aura_monitor": __version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "idle": idle,
        "running_100": running,
        "stalled_100": stalled,
        "per_job": per_job,
        "fleet_1000_nodes_worst_case": fleet(stalled),
        "seconds": round(time.time() - started, 1),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

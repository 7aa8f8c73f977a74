"""`make bench`: every figure of DESIGN section 3 beside its baseline, as JSON and a markdown table.

BENCH_QUICK=1 runs a reduced version for checks. Every scenario runs BENCH_REPEATS times (3 by default,
quick mode too); each figure is reported as the median with its spread (min / median / max), never as the
best run: this machine is shared and noisy. The scale and explain_burst scenarios repeat inside, on one
costly setup (writing 100,000 records takes minutes; the burst's jobs and videos are written once).
BENCH_ONLY=a,b picks scenarios.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import explain_burst, idle_streams
from .cpu_per_update import cpu_per_update
from .harness import QUICK
from .render_load import render_load
from .scale import JOBS as SCALE_JOBS
from .scale import QUICK_JOBS as SCALE_QUICK_JOBS
from .scale import scale
from .scenarios import fleet, ingest, sdk, stall_lag
from .sse import sse_latency
from .thresholds import scenario as learned_thresholds

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PERFORMANCE_DOC = ROOT / "docs" / "performance.md"
TABLE_START, TABLE_END = "<!-- bench:start -->", "<!-- bench:end -->"

# figure -> (target, comparison, unit, what it measures)
TARGETS: dict[str, tuple[float, str, str, str]] = {
    "sse_latency_p99_ms": (20, "<=", "ms", "record written -> per-job SSE event, p99 (1,000 jobs at 1/s, 200 clients)"),
    "sse_latency_p50_ms": (math.inf, "<=", "ms", "same, p50"),
    "sse_all_latency_p99_ms": (50, "<=", "ms", "record written -> /api/events event, p99 (5 clients)"),
    "stall_lag_p99_ms": (250, "<=", "ms", "threshold passed -> stall visible in the API, p99"),
    "ingest_per_s": (5000, ">=", "/s", "sustained atomic record updates, every final state correct"),
    "metrics_ms_10k": (50, "<=", "ms", "GET /metrics with 10,000 tracked jobs (median)"),
    "rss_mb_10k": (200, "<=", "MB", "sidecar RSS with 10,000 tracked jobs"),
    "idle_cpu_pct_10k": (1, "<=", "%", "sidecar CPU while idle with 10,000 tracked jobs"),
    "explain_ms": (300, "<=", "ms", "GET /explain, p95, including ffprobe"),
    "sdk_update_ms": (1, "<=", "ms", "one reporter SDK update, p99"),
    "visible_s_100k": (10, "<=", "s", "start-up: every one of 100,000 jobs visible in the API"),
    "rss_mb_100k": (500, "<=", "MB", "sidecar RSS with 100,000 tracked jobs"),
    "idle_cpu_pct_100k": (1, "<=", "%", "sidecar CPU while idle with 100,000 tracked jobs"),
    "metrics_ms_100k": (50, "<=", "ms", "GET /metrics with 100,000 tracked jobs (median)"),
    "page_ms_100k": (20, "<=", "ms", "GET /api/jobs?limit=100 and /api/queue?limit=100, the slower median"),
    "events_connected_ms_100k": (100, "<=", "ms", "/api/events opened -> its `connected` frame received"),
    "events_connected_kb_100k": (1024, "<=", "KB", "size of that `connected` frame"),
    "sse_latency_p99_ms_1000_streams": (50, "<=", "ms", "per-job SSE p99 with one stream on each of 1,000 jobs at 1/s"),
    "cpu_per_update_us": (math.inf, "<=", "us", "sidecar CPU (user + system) per record update, 1,000 jobs at 1,000/s"),
    "cpu_floor_us": (math.inf, "<=", "us", "same writes, one thread doing inotify read + open/read + json.loads"),
    "cpu_per_update_ratio": (2, "<=", "x", "sidecar CPU per update / that floor, measured in the same repeat"),
    "sse_latency_p99_ms_render_load": (20, "<=", "ms", "per-job SSE p99 beside two full-CPU x264 encodes at nice 10"),
    "sse_all_latency_p99_ms_render_load": (50, "<=", "ms", "/api/events p99 beside the encodes at nice 10"),
    "stall_lag_p99_ms_render_load": (250, "<=", "ms", "stall lag p99 beside the encodes at nice 10"),
    "sse_latency_p99_ms_render_load_nice0": (100, "<=", "ms", "per-job SSE p99 beside the encodes at nice 0"),
    "sse_all_latency_p99_ms_render_load_nice0": (100, "<=", "ms", "/api/events p99 beside the encodes at nice 0"),
    "stall_lag_p99_ms_render_load_nice0": (250, "<=", "ms", "stall lag p99 beside the encodes at nice 0"),
    "explain_burst_p95_ms": (1000, "<=", "ms", "50 concurrent explains (live worker, ffprobe'd output), p95"),
    "metrics_ms_during_explain_burst": (50, "<=", "ms", "GET /metrics during that burst (median)"),
    "sse_latency_p99_ms_during_explain_burst": (50, "<=", "ms", "per-job SSE p99 during that burst (20 streams)"),
    "kb_per_idle_stream": (20, "<=", "KB", "sidecar RSS per idle SSE stream (2,000 held, half per-job)"),
}
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
# scale and explain_burst repeat inside, sharing their costly setup; thresholds runs in simulated time from a
# seed (a repeat is identical)
SELF_REPEATING = {"scale", "thresholds", "explain_burst"}
# scenario -> the one whose run measures the same keys: skipped when that one is selected too
COVERED_BY = {"sse": "render_load"}
# quick mode writes the scale figures for fewer jobs, keyed `_25k`: shown against the 100k targets
QUICK_SUFFIX = f"_{SCALE_QUICK_JOBS // 1000}k"
FULL_SUFFIX = f"_{SCALE_JOBS // 1000}k"

Figures = dict[str, float]
Runs = dict[str, list[float]]


def _spread(values: list[float]) -> list[float]:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return [math.nan] * 3
    return [round(min(finite), 3), round(statistics.median(finite), 3), round(max(finite), 3)]


def _add(runs: Runs, figures: dict[str, Any]) -> None:
    for key, value in figures.items():
        runs.setdefault(key, []).extend(value if isinstance(value, list) else [value])


def _meets(value: float, target: float, comparison: str) -> bool:
    return value <= target if comparison == "<=" else value >= target


def _shown(key: str, results: Figures) -> str | None:
    """The key that `results` holds for the target `key`: itself, or in quick mode its `_25k` variant."""
    if key in results:
        return key
    if key.endswith(FULL_SUFFIX):
        quick = key.removesuffix(FULL_SUFFIX) + QUICK_SUFFIX
        if quick in results:
            return quick
    return None


def table(results: Figures, baseline: Figures, spread: dict[str, list[float]] | None = None) -> str:
    spread = spread or {}
    lines = [
        "| figure | median (min - max) | target | baseline (500 ms polling) | ratio | what |",
        "|---|---|---|---|---|---|",
    ]
    shown_keys: set[str] = set()
    for target_key, (target, comparison, unit, what) in TARGETS.items():
        key = _shown(target_key, results)
        if key is None:
            continue
        shown_keys.add(key)
        if key != target_key:
            what = f"{what.replace('100,000', f'{SCALE_QUICK_JOBS:,}')} (quick mode; the 100k target)"
        value = results[key]
        base = baseline.get(key)
        ratio = ""
        if base is not None and value:
            if comparison != "<=":
                ratio = f"{value / base:.2f}x"
            else:  # a loaded host can make the sidecar slower than the poller: say so, not "0.7x better"
                ratio = f"{base / value:.1f}x better" if base >= value else f"{value / base:.1f}x worse"
        mark = "" if target == math.inf else (" ✅" if _meets(value, target, comparison) else " ❌")
        shown_target = "-" if target == math.inf else f"{comparison} {target:g} {unit}"
        low, _, high = spread.get(key, [value, value, value])
        shown = f"{value:g} {unit}{mark} ({low:g} - {high:g})"
        lines.append(
            f"| `{key}` | {shown} | {shown_target} | {'' if base is None else f'{base:g} {unit}'} | {ratio} | {what} |"
        )
    if "prometheus_rule_stall_lag_p99_ms" in baseline:
        lines.append(
            f"\nA Prometheus-rule setup (15 s scrape and evaluation) notices a stall "
            f"{baseline['prometheus_rule_stall_lag_p99_ms'] / 1000:.1f} s after its threshold at p99 "
            f"(modelled from the two intervals)."
        )
    extra = {k: v for k, v in results.items() if k not in shown_keys}
    if extra:
        also: list[str] = []
        for k, v in sorted(extra.items()):
            low, _, high = spread.get(k, [v, v, v])
            also.append(f"`{k}` = {v:g} ({low:g} - {high:g})" if low != high else f"`{k}` = {v:g}")
        lines.append("\nAlso measured (median, min - max): " + ", ".join(also) + ".")
    return "\n".join(lines)


def main() -> int:
    scenarios: list[tuple[str, Callable[[Path], tuple[Any, Any]]]] = [
        ("sdk", sdk),
        ("stall", stall_lag),
        ("ingest", ingest),
        ("fleet", fleet),
        ("scale", scale),
        ("thresholds", learned_thresholds),
        ("sse", sse_latency),
        ("cpu_per_update", cpu_per_update),
        # The quiet stall lag comes from the stall scenario when it runs too (with its polling baseline).
        ("render_load", lambda work: render_load(work, quiet_stall=not selected("stall"))),
        ("explain_burst", explain_burst.scenario),
        ("idle_streams", idle_streams.scenario),
    ]
    only = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
    unknown = only - {name for name, _ in scenarios}
    if unknown:
        print(f"bench: unknown BENCH_ONLY scenario(s) {sorted(unknown)}; choose from {[n for n, _ in scenarios]}")
        return 2

    def selected(name: str) -> bool:
        return not only or name in only

    runs: Runs = {}
    baseline_runs: Runs = {}
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="aura-bench-"))
    try:
        for name, scenario in scenarios:
            if not selected(name):
                continue
            cover = COVERED_BY.get(name)
            if cover is not None and selected(cover):
                print(f"bench: {name}: measured by {cover} in this run", flush=True)
                continue
            for repeat in range(1 if name in SELF_REPEATING else REPEATS):
                t0 = time.perf_counter()
                print(f"bench: {name} (run {repeat + 1}) ...", flush=True)
                folder = work / f"{name}-{repeat}"
                folder.mkdir()
                figures, base = scenario(folder)
                _add(runs, figures)
                _add(baseline_runs, base)
                print(f"bench: {name} done in {time.perf_counter() - t0:.0f} s: {figures}", flush=True)
                shutil.rmtree(folder, ignore_errors=True)  # 100,000 job dirs must not pile up on /tmp
    finally:
        shutil.rmtree(work, ignore_errors=True)
    spread = {key: _spread(values) for key, values in runs.items()}
    results: Figures = {key: s[1] for key, s in spread.items()}
    baseline: Figures = {key: _spread(values)[1] for key, values in baseline_runs.items()}
    payload = {
        **results,
        "baseline": baseline,
        "spread": spread,  # figure -> [min, median, max] over the repeats; the figure itself is the median
        "meta": {
            "repeats": REPEATS,
            "quick": QUICK,
            "started": started,
            "seconds": round(time.time() - started, 1),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
    markdown = table(results, baseline, spread)
    (RESULTS / "latest.md").write_text(markdown + "\n")
    # Only a full run speaks for the project: BENCH_ONLY and BENCH_QUICK runs leave the docs alone.
    if not only and not QUICK and PERFORMANCE_DOC.exists() and TABLE_START in PERFORMANCE_DOC.read_text():
        text = PERFORMANCE_DOC.read_text()
        head, _, rest = text.partition(TABLE_START)
        _, _, tail = rest.partition(TABLE_END)
        PERFORMANCE_DOC.write_text(f"{head}{TABLE_START}\n{markdown}\n{TABLE_END}{tail}")
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`make bench`: every figure of DESIGN section 3 beside its baseline, as JSON and a markdown table.

BENCH_QUICK=1 runs a reduced version (under 2 minutes) for checks.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .harness import QUICK
from .scenarios import Figures, fleet, ingest, sdk, stall_lag

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
}


def _meets(value: float, target: float, comparison: str) -> bool:
    return value <= target if comparison == "<=" else value >= target


def table(results: Figures, baseline: Figures) -> str:
    lines = ["| figure | measured | target | baseline (500 ms polling) | ratio | what |", "|---|---|---|---|---|---|"]
    for key, (target, comparison, unit, what) in TARGETS.items():
        if key not in results:
            continue
        value = results[key]
        base = baseline.get(key)
        ratio = ""
        if base is not None and value:
            ratio = f"{base / value:.1f}x better" if comparison == "<=" else f"{value / base:.2f}x"
        mark = "" if target == math.inf else (" ✅" if _meets(value, target, comparison) else " ❌")
        shown_target = "-" if target == math.inf else f"{comparison} {target:g} {unit}"
        lines.append(
            f"| `{key}` | {value:g} {unit}{mark} | {shown_target} | "
            f"{'' if base is None else f'{base:g} {unit}'} | {ratio} | {what} |"
        )
    if "prometheus_rule_stall_lag_p99_ms" in baseline:
        lines.append(
            f"\nA Prometheus-rule setup (15 s scrape and evaluation) notices a stall "
            f"{baseline['prometheus_rule_stall_lag_p99_ms'] / 1000:.1f} s after its threshold at p99 "
            f"(modelled from the two intervals)."
        )
    extra = {k: v for k, v in results.items() if k not in TARGETS}
    if extra:
        lines.append("\nAlso measured: " + ", ".join(f"`{k}` = {v:g}" for k, v in sorted(extra.items())) + ".")
    return "\n".join(lines)


def main() -> int:
    scenarios: list[tuple[str, Callable[[Path], tuple[Figures, Figures]]]] = [
        ("sdk", sdk),
        ("stall", stall_lag),
        ("ingest", ingest),
        ("fleet", fleet),
    ]
    try:
        from .sse import sse_latency  # the SSE scenario needs the event streams of the sidecar
    except ImportError:
        pass
    else:
        scenarios.append(("sse", sse_latency))
    only = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
    results: Figures = {}
    baseline: Figures = {}
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="aura-bench-"))
    try:
        for name, scenario in scenarios:
            if only and name not in only:
                continue
            t0 = time.perf_counter()
            print(f"bench: {name} ...", flush=True)
            figures, base = scenario(work / name if (work / name).mkdir() is None else work)
            results.update(figures)
            baseline.update(base)
            print(f"bench: {name} done in {time.perf_counter() - t0:.0f} s: {figures}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    payload = {
        **results,
        "baseline": baseline,
        "meta": {
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
    markdown = table(results, baseline)
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

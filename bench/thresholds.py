"""Bench scenario `thresholds`: configured vs learned stall thresholds, replayed in simulated time.

`python -m bench.thresholds` (or `make bench`, scenario `thresholds`). The corpus (bench/threshold_corpus.py)
is split: half the healthy runs train, the rest (plus slow-but-steady healthy runs and every fault) test.
Training replays runs through the real Tracker and the real HistoryRecorder (what the sidecar stores),
so the learned table comes from the same stage rows the history would hold. Every test run is replayed
through a real Tracker on a fake monotonic clock, once with the configured thresholds and once with the
learned ones; the stall timer's wake-ups are simulated at each deadline. Writes bench/results/thresholds.json
and the section between the thresholds markers of docs/performance.md.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from aura_monitor.history.ops import IncidentOpened, Op, RunSeen, StageDone
from aura_monitor.history.recorder import HistoryRecorder
from aura_monitor.jobs.learned import FACTOR, LearnedTable, LearnSettings, StageSample, learn, quantile
from aura_monitor.jobs.model import JobRecord, JobStatus, RecordFormat
from aura_monitor.jobs.stages import stage_key
from aura_monitor.jobs.stall import Thresholds
from aura_monitor.jobs.tracker import Tracker
from aura_monitor.jobs.transitions import TransitionKind

from .harness import QUICK
from .threshold_corpus import Timeline, corpus

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "bench" / "results" / "thresholds.json"
DOC = ROOT / "docs" / "performance.md"
START, END = "<!-- thresholds:start -->", "<!-- thresholds:end -->"
EPOCH = 1_800_000_000.0
HORIZON_S = 3600.0  # a stall that never resumes is followed this long
TIMER_LAG_S = 0.001  # the stall timer wakes a hair after a deadline (watch/timer.py)
FREQUENT_S = 5.0  # "stages that report at least every 5 s"
SENSITIVITY = (3.0, 4.0, 5.0)  # safety factors compared


class _Clock:
    def __init__(self) -> None:
        self.now = EPOCH

    def __call__(self) -> float:
        return self.now


def _record(t: Timeline, stage: str, percent: float, status: JobStatus, at: float) -> JobRecord:
    return JobRecord(
        id=t.job_id, format=RecordFormat.NATIVE, status=status, stage=stage, percent=percent, raw_status=status.value,
        last_progress_at=at, expected_duration_s=t.media_s, completed_at=at if status.terminal else None,
    )  # fmt: skip


def replay(t: Timeline, thresholds: Thresholds, ops: list[Op] | None = None) -> list[tuple[float, str]]:
    """Replay one timeline; the (seconds from start, stage key) of every stall the tracker flagged."""
    clock = _Clock()
    tracker = Tracker(thresholds, monotonic=clock)
    stalls: list[tuple[float, str]] = []
    if ops is not None:
        recorder = HistoryRecorder(tracker, "bench", ops.append, lambda verdict, stage: None)
        tracker.subscribe(recorder.observe)
    events = [(p.at, _record(t, p.stage, p.percent, JobStatus.RUNNING, EPOCH + p.at)) for p in t.points]
    if t.completed_at is not None:
        events.append((t.completed_at, _record(t, "Finalize", 100.0, JobStatus.COMPLETED, EPOCH + t.completed_at)))
    end = events[-1][0] + HORIZON_S

    def until(moment: float) -> None:
        while (deadline := tracker.next_deadline()) is not None and deadline - EPOCH < moment:
            clock.now = deadline + TIMER_LAG_S
            for transition in tracker.tick(clock.now):
                if transition.kind is TransitionKind.STALLED:
                    state = tracker.get(t.job_id)
                    stage = stage_key(state.record.stage) if state and state.record else "unknown"
                    stalls.append((clock.now - EPOCH, stage))

    for at, record in events:
        until(at)
        clock.now = EPOCH + at
        tracker.apply(f"/{t.job_id}/job.json", record, at=clock.now)
    until(end)
    return stalls


def healthy_samples(runs: list[Timeline]) -> list[StageSample]:
    """The stage rows the history would hold for runs that completed without a stall."""
    samples: list[StageSample] = []
    for t in runs:
        ops: list[Op] = []
        replay(t, Thresholds(), ops)
        completed = any(isinstance(op, RunSeen) and str(op.status) == "completed" for op in ops)
        if not completed or any(isinstance(op, IncidentOpened) for op in ops):
            continue
        samples += [
            StageSample(op.stage, op.max_gap_s, op.expected_media_s)
            for op in ops
            if isinstance(op, StageDone) and op.max_gap_s is not None
        ]
    return samples


def p99_gaps(samples: list[StageSample]) -> dict[str, float]:
    by_stage: dict[str, list[float]] = {}
    for sample in samples:
        by_stage.setdefault(sample.stage, []).append(sample.max_gap_s)
    return {stage: quantile(gaps, 0.99) for stage, gaps in by_stage.items()}


def train(samples: list[StageSample], factor: float = FACTOR) -> LearnedTable:
    return learn(samples, Thresholds().configured_for_stage, LearnSettings(factor=factor))


def _pct(values: list[float], q: float) -> float | None:
    return round(quantile(values, q), 2) if values else None


def evaluate(runs: list[Timeline], thresholds: Thresholds) -> dict[str, dict[str, Any]]:
    """Per stage: detection delays of real stalls (p50, p95), missed stalls, false stalls on healthy runs."""
    stages: dict[str, dict[str, Any]] = {}

    def row(stage: str) -> dict[str, Any]:
        return stages.setdefault(
            stage, {"delays": [], "missed": 0, "stalls": 0, "false": 0, "falseSlow": 0, "falseInFaultRuns": 0}
        )

    for t in runs:
        flagged = replay(t, thresholds)
        if t.stall_start is None:
            for _, stage in flagged[:1]:
                row(stage)["falseSlow" if t.kind == "slow" else "false"] += 1
            continue
        stall_stage = stage_key(t.stall_stage or "")
        entry = row(stall_stage)
        entry["stalls"] += 1
        early = [f for f in flagged if f[0] < t.stall_start]
        for _, stage in early[:1]:
            row(stage)["falseInFaultRuns"] += 1
        real = [at for at, _ in flagged if at >= t.stall_start and (t.stall_end is None or at <= t.stall_end)]
        if real:
            entry["delays"].append(real[0] - t.stall_start)
        else:
            entry["missed"] += 1
    for entry in stages.values():
        delays = entry.pop("delays")
        entry["detected"] = len(delays)
        entry["delayP50"] = _pct(delays, 0.5)
        entry["delayP95"] = _pct(delays, 0.95)
    return stages


def run(seed: int = 18, healthy: int = 400, slow: int = 60, per_fault: int = 20) -> dict[str, Any]:
    timelines = corpus(seed, healthy, slow, per_fault)
    healthy = [t for t in timelines if t.kind == "healthy"]
    training, held_out = healthy[::2], healthy[1::2]
    tests = held_out + [t for t in timelines if t.kind != "healthy"]
    samples = healthy_samples(training)
    p99_gap = p99_gaps(samples)
    table = train(samples)
    configured = evaluate(tests, Thresholds())
    learned = evaluate(tests, Thresholds(learned=table))
    sensitivity = {}
    for factor in SENSITIVITY:
        other = learned if factor == FACTOR else evaluate(tests, Thresholds(learned=train(samples, factor)))
        sensitivity[f"x{factor:g}"] = {
            "falseStalls": sum(x.get("false", 0) + x.get("falseSlow", 0) for x in other.values()),
            "missed": sum(x.get("missed", 0) for x in other.values()),
            "delayP50": {k: x.get("delayP50") for k, x in sorted(other.items()) if x.get("delayP50") is not None},
        }
    stages: dict[str, Any] = {}
    for key in sorted({*configured, *learned, *table.stages}):
        c, lrn = configured.get(key, {}), learned.get(key, {})
        info = table.get(key)
        frequent = p99_gap.get(key, float("inf")) <= FREQUENT_S
        delay_ok = None
        if frequent and c.get("delayP50") and lrn.get("delayP50") is not None:
            delay_ok = lrn["delayP50"] <= c["delayP50"] / 3
        false_ok = (lrn.get("false", 0) + lrn.get("falseSlow", 0)) <= (c.get("false", 0) + c.get("falseSlow", 0))
        stages[key] = {
            "p99HealthyMaxGapSeconds": round(p99_gap[key], 3) if key in p99_gap else None,
            "reportsAtLeastEvery5s": frequent,
            "learnedSeconds": None if info is None else round(info.seconds, 2),
            "learnedPerMediaSecond": None if info is None or info.per_media_second is None else info.per_media_second,
            "basis": None if info is None else info.basis,
            "configured": c,
            "learned": lrn,
            "delayTargetMet": delay_ok,
            "falseStallTargetMet": false_ok and lrn.get("falseSlow", 0) == 0,
        }
    return {
        "seed": seed,
        "runs": {
            "training": len(training),
            "testHealthy": len(held_out),
            "testSlowSteady": sum(t.kind == "slow" for t in timelines),
            "faults": sum(t.stall_start is not None for t in timelines),
        },
        "method": "timing model of the reference pipeline (bench/threshold_corpus.py), replayed in simulated time",
        "stages": stages,
        "factor": FACTOR,
        "sensitivity": sensitivity,
        "configuredTotals": {
            "falseStalls": sum(x.get("false", 0) + x.get("falseSlow", 0) for x in configured.values()),
            "missed": sum(x.get("missed", 0) for x in configured.values()),
        },
    }


def markdown(result: dict[str, Any]) -> str:
    r = result["runs"]
    lines = [
        f"Corpus (seed {result['seed']}): {r['training']} healthy runs train; tested on {r['testHealthy']} other "
        f"healthy runs, {r['testSlowSteady']} slow-but-steady healthy runs (2-3x slower at every step) and "
        f"{r['faults']} fault runs (every fault of pipeline/faults.py). Delays are from the last progress to the flag.",
        "",
        "| stage | learned threshold | detection p50 / p95, configured | learned | missed (c / l) "
        "| false stalls healthy+slow (c / l) | targets |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, s in result["stages"].items():
        c, lrn = s["configured"], s["learned"]

        def delays(x: dict[str, Any]) -> str:
            return "-" if x.get("delayP50") is None else f"{x['delayP50']:g} / {x['delayP95']:g} s"

        if s["learnedPerMediaSecond"] is not None:
            learned = f"{s['learnedPerMediaSecond']:.3g} s per media s"
        elif s["learnedSeconds"] is not None:
            learned = f"{s['learnedSeconds']:g} s"
        else:
            learned = "configured"
        marks = []
        if s["delayTargetMet"] is not None:
            marks.append("delay ✅" if s["delayTargetMet"] else "delay ❌")
        marks.append("false ✅" if s["falseStallTargetMet"] else "false ❌")
        false_c = c.get("false", 0) + c.get("falseSlow", 0)
        false_l = lrn.get("false", 0) + lrn.get("falseSlow", 0)
        lines.append(
            f"| {key} | {learned} | {delays(c)} | {delays(lrn)} | {c.get('missed', 0)} / {lrn.get('missed', 0)} "
            f"| {false_c} / {false_l} | {', '.join(marks)} |"
        )
    bases = "; ".join(f"{k}: {s['basis']}" for k, s in result["stages"].items() if s["basis"])
    lines += ["", f"Basis per stage: {bases}.", "", "Safety factor (configured thresholds: "
              f"{result['configuredTotals']['falseStalls']} false stalls, {result['configuredTotals']['missed']} "
              "stalls missed):", "", "| factor | false stalls (healthy + slow) | missed | detection p50 by stage |",
              "|---|---|---|---|"]  # fmt: skip
    for factor, row in result["sensitivity"].items():
        by_stage = ", ".join(f"{k} {v:g} s" for k, v in row["delayP50"].items())
        lines.append(f"| {factor} | {row['falseStalls']} | {row['missed']} | {by_stage} |")
    return "\n".join(lines)


def write(result: dict[str, Any], doc: bool = True) -> None:
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    if not doc:
        return
    section = f"{START}\n{markdown(result)}\n{END}"
    if DOC.exists():
        text = DOC.read_text()
        if START in text:
            head, _, rest = text.partition(START)
            _, _, tail = rest.partition(END)
            DOC.write_text(f"{head}{section}{tail}")


def scenario(_folder: Path) -> tuple[dict[str, float], dict[str, float]]:
    """For bench/__main__: headline figures (learned vs configured), the configured ones as the baseline."""
    result = run()
    # As bench/__main__ does: only a full `make bench` run rewrites the docs (the JSON is always written).
    write(result, doc=not QUICK and not os.environ.get("BENCH_ONLY"))
    frequent = [s for s in result["stages"].values() if s["reportsAtLeastEvery5s"] and s["learned"].get("delayP50")]
    learned_p50 = statistics.median([s["learned"]["delayP50"] for s in frequent]) if frequent else float("nan")
    configured_p50 = statistics.median([s["configured"]["delayP50"] for s in frequent]) if frequent else float("nan")
    false_learned = result["sensitivity"][f"x{FACTOR:g}"]["falseStalls"]
    false_configured = result["configuredTotals"]["falseStalls"]
    return (
        {"thresholds_learned_delay_p50_s": learned_p50, "thresholds_learned_false_stalls": false_learned},
        {"thresholds_learned_delay_p50_s": configured_p50, "thresholds_learned_false_stalls": false_configured},
    )


def main() -> int:
    result = run()
    write(result)
    print(markdown(result))
    print(f"\nwritten: {RESULT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Seeding a history with healthy runs, so a sidecar started on it learns a stage's stall threshold."""

from __future__ import annotations

import time
from pathlib import Path

from aura_monitor.history.ops import Op, RunSeen, StageDone
from aura_monitor.history.sqlite import SQLiteStore


def seed_healthy_runs(path: Path, stage: str, runs: int, max_gap: float, node: str = "node-a") -> None:
    """`runs` completed runs without an incident whose `stage` (a canonical key) had `max_gap` as largest gap."""
    start = time.time() - 3600
    ops: list[Op] = []
    for i in range(runs):
        job = f"seed-{stage}-{i}"
        ops.append(RunSeen(job, 1, node, "completed", start, start, start + 60, None, start + 60))
        ops.append(StageDone(job, 1, node, stage, start + 10, start + 40, 30, max_gap, max_gap / 2, None))
    store = SQLiteStore(path)
    try:
        store.apply(ops)
    finally:
        store.close()

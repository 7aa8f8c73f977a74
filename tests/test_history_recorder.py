"""The history recorder in-process: a stage's typical gap over its last GAPS_KEPT gaps, in bounded memory."""

from __future__ import annotations

import statistics
import sys
from typing import Any

from aura_monitor.history.ops import Op, StageDone
from aura_monitor.history.recorder import GAPS_KEPT, HistoryRecorder
from aura_monitor.jobs.model import JobRecord, JobStatus, RecordFormat
from aura_monitor.jobs.stall import Thresholds
from aura_monitor.jobs.tracker import Tracker


def record(**fields: Any) -> JobRecord:
    base: dict[str, Any] = {
        "id": "job",
        "format": RecordFormat.NATIVE,
        "status": JobStatus.RUNNING,
        "stage": "Render",
        "percent": 0.0,
        "raw_status": "running",
    }
    return JobRecord(**(base | fields))


def test_the_typical_gap_is_the_median_of_the_stages_last_gaps_and_a_run_without_gaps_stays_small() -> None:
    tracker = Tracker(Thresholds(default=3600))
    ops: list[Op] = []
    recorder = HistoryRecorder(tracker, "node-1", ops.append, lambda verdict, stage: None)
    tracker.subscribe(recorder.observe)
    at = 1_000.0
    tracker.apply("/jobs/job/job.json", record(last_progress_at=at), at)
    # A finished job found at start-up keeps a run with no gap: it must cost next to nothing (a deque: 624 bytes).
    assert sys.getsizeof(recorder._runs["job"].gaps) < 120
    gaps = [1.0 + (i % 7) * 0.5 + i / 100 for i in range(GAPS_KEPT + 60)]
    for i, gap in enumerate(gaps):
        at += gap
        tracker.apply("/jobs/job/job.json", record(percent=(i + 1) / 10, last_progress_at=at), at)
    at += 1
    tracker.apply("/jobs/job/job.json", record(stage="Finalize", percent=99.0, last_progress_at=at), at)
    done = [op for op in ops if isinstance(op, StageDone)]
    assert [op.stage for op in done] == ["render"]
    assert done[0].progress_updates == len(gaps) + 1
    assert done[0].typical_gap_s is not None
    assert abs(done[0].typical_gap_s - statistics.median([*gaps, 1.0][-GAPS_KEPT:])) < 1e-9
    assert done[0].max_gap_s is not None and abs(done[0].max_gap_s - max(gaps)) < 1e-9

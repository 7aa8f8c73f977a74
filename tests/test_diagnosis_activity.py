"""CPU over the last few seconds, from the totals earlier diagnoses noted (a real process, and by hand)."""

from __future__ import annotations

import subprocess
import sys

import psutil

from aura_monitor.diagnosis.activity import BUSY_CPU_S, HISTORY_S, RHYTHM_S, CpuMemory
from aura_monitor.diagnosis.evidence import ProcessEvidence
from tests.support import wait_for


def test_nothing_is_judged_until_a_note_is_at_least_the_rhythm_old() -> None:
    memory = CpuMemory()
    assert memory.note((1, 0.0), 1.0, at=100.0) is None
    assert memory.note((1, 0.0), 1.0, at=100.0 + RHYTHM_S - 0.1) is None
    span = memory.note((1, 0.0), 1.02, at=100.0 + RHYTHM_S)
    assert span is not None and span.window_s == RHYTHM_S and span.busy


def test_the_span_starts_at_the_newest_note_old_enough_so_work_before_a_block_drops_out() -> None:
    memory = CpuMemory()
    memory.note((1, 0.0), 5.0, at=0.0)  # busy until it blocked
    memory.note((1, 0.0), 9.0, at=10.0)  # blocked from here on: no more CPU
    span = memory.note((1, 0.0), 9.0, at=20.0)
    assert span is not None and span.window_s == 10.0 and span.cpu_s == 0.0 and not span.busy


def test_a_pid_reused_by_a_new_process_starts_a_new_history_and_old_notes_are_forgotten() -> None:
    memory = CpuMemory()
    memory.note((1, 0.0), 5.0, at=0.0)
    assert memory.note((1, 50.0), 0.0, at=60.0) is None  # same pid, another start time
    assert memory.note((1, 0.0), 5.0, at=HISTORY_S + 10.0) is None  # the only older note is forgotten


def test_a_real_sleeping_retry_loop_is_busy_over_the_rhythm_though_idle_in_most_short_windows() -> None:
    loop = subprocess.Popen(
        [sys.executable, "-c", "import time\nwhile True:\n    sum(range(300000))\n    time.sleep(1)\n"],
        stdin=subprocess.DEVNULL,
    )
    try:
        process = psutil.Process(loop.pid)
        evidence = ProcessEvidence("worker", loop.pid, exists=True, started_at=process.create_time())
        memory = CpuMemory()
        memory.observe(evidence)
        assert evidence.recent_cpu_s is None  # one note: no span yet

        def noted_again() -> bool:
            memory.observe(evidence)
            return evidence.recent_cpu_s is not None

        wait_for(noted_again, timeout=RHYTHM_S + 10, what="a note old enough", interval=0.5)
        assert evidence.recent_cpu_s is not None and evidence.recent_cpu_s >= BUSY_CPU_S
        assert evidence.recent_window_s is not None and evidence.recent_window_s >= RHYTHM_S
    finally:
        loop.kill()
        loop.wait(10)

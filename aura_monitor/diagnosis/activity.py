"""CPU over a window long enough for a sleeping retry loop to show its rhythm, remembered between diagnoses.

A diagnosis samples CPU for 150 ms; a worker that sleeps a second between retries uses none in most such
windows. Each diagnosis also notes every sampled process's total CPU time here, so the next one (seconds
later: the stall re-diagnosis, an explain) can judge the whole span in between at no extra cost.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import psutil

from .evidence import ProcessEvidence

# The span judged: long enough for a loop retrying every few seconds (pipeline/provider.py backs off at most
# 4 s) to use CPU in it, short enough that work done before a process blocked has left it.
RHYTHM_S = 5.0
HISTORY_S = 120.0  # notes older than this are forgotten
BUSY_CPU_S = 0.01  # one clock tick: a process blocked on a pipe or stopped accumulates none
_MAX_PROCESSES = 10_000  # bound on the memory; the oldest entries go first


@dataclass(frozen=True, slots=True)
class LongWindow:
    """CPU seconds a process used over the last `window_s` seconds."""

    cpu_s: float
    window_s: float

    @property
    def busy(self) -> bool:
        return self.cpu_s >= BUSY_CPU_S


class CpuMemory:
    """Total CPU time of each process (keyed by pid and start time) at each diagnosis, for HISTORY_S."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, float], deque[tuple[float, float]]] = {}
        self._lock = threading.Lock()

    def note(self, key: tuple[int, float], cpu_s: float, at: float) -> LongWindow | None:
        """Remember `cpu_s` (the process's total) at monotonic `at`; its use since the newest note at least
        RHYTHM_S old, or None when there is none yet."""
        with self._lock:
            seen = self._seen.pop(key, None) or deque()
            self._seen[key] = seen  # re-inserted: the dict's order is least recently noted first
            while seen and at - seen[0][0] > HISTORY_S:
                seen.popleft()
            since = next(((t, cpu) for t, cpu in reversed(seen) if at - t >= RHYTHM_S), None)
            seen.append((at, cpu_s))
            while len(self._seen) > _MAX_PROCESSES:
                del self._seen[next(iter(self._seen))]
        if since is None:
            return None
        return LongWindow(max(0.0, cpu_s - since[1]), at - since[0])

    def observe(self, process: ProcessEvidence) -> None:
        """Note an alive, sampled process's CPU now and fill in its recent use when an earlier note allows."""
        if not process.exists or process.started_at is None:
            return
        try:
            proc = psutil.Process(process.pid)
            if proc.create_time() != process.started_at:
                return  # the pid was reused since it was sampled
            times = proc.cpu_times()
        except psutil.Error:
            return
        span = self.note((process.pid, process.started_at), float(times.user + times.system), time.monotonic())
        if span is not None:
            process.recent_cpu_s, process.recent_window_s = span.cpu_s, span.window_s


CPU_MEMORY = CpuMemory()

"""The thread that wakes exactly when the earliest stall deadline passes and flags it.

Deadlines are on the monotonic clock, so stepping the wall clock neither hides nor invents a stall.
After a pause (SIGSTOP/SIGCONT, a frozen VM, a suspended container) the deadlines of healthy jobs have
passed while their writes sat unread in the kernel: the timer notices that it woke far later than it
asked to, lets the ingest catch up with every file first, and only then judges.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

from ..clock import Clock
from ..jobs.tracker import Tracker

log = logging.getLogger(__name__)

# Deadlines compare strictly (a job is stalled *after* its threshold): wake a hair later.
_EPSILON = 0.001
# The timer wakes at least this often, so a pause is noticed the moment the process runs again.
CHECK_INTERVAL_S = 1.0
# Waking this much later than asked means the process (not just this thread) was not running.
PAUSE_SLACK_S = 1.0
# How long the ingest may take to read what was written during a pause before the timer judges anyway.
CATCH_UP_TIMEOUT_S = 10.0
# Pauses at least this long are logged as warnings (shorter ones at debug level).
PAUSE_WARNING_S = 3.0

CatchUp = Callable[[float], bool]


class StallTimer:
    """Sleeps until tracker.next_deadline(), then ticks; an earlier deadline armed meanwhile wakes it."""

    def __init__(self, tracker: Tracker, clock: Clock, catch_up: CatchUp | None = None) -> None:
        """`catch_up(timeout)` re-reads every changed job file and returns once read (True) or at timeout."""
        self.tracker = tracker
        self.clock = clock
        self.catch_up = catch_up
        self.pauses = 0  # pauses noticed (read by tests and metrics)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sleeping_until = math.inf
        self._thread: threading.Thread | None = None
        tracker.on_deadline(self._armed)

    def _armed(self, deadline: float) -> None:
        if deadline < self._sleeping_until:
            self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aura-stall-timer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        expected_wake: float | None = None
        while not self._stop.is_set():
            self._wake.clear()
            try:
                if expected_wake is not None and self.clock.monotonic() - expected_wake > PAUSE_SLACK_S:
                    self._after_pause(self.clock.monotonic() - expected_wake)
                now = self.clock.monotonic()
                deadline = self.tracker.next_deadline()
                if deadline is not None and deadline < now:
                    self.tracker.tick(self.clock.now())
                    expected_wake = None
                    continue
            except Exception:  # keep flagging stalls even if one tick hits a bug
                log.exception("stall timer tick failed")
                deadline = None
            self._sleeping_until = deadline if deadline is not None else math.inf
            start = self.clock.monotonic()
            until_deadline = math.inf if deadline is None else max(0.0, deadline - start) + _EPSILON
            timeout = min(until_deadline, CHECK_INTERVAL_S)
            expected_wake = start + timeout
            if self._wake.wait(timeout):
                expected_wake = None  # woken early by a new deadline: no lateness to measure
            self._sleeping_until = math.inf

    def _after_pause(self, late: float) -> None:
        """The process did not run for `late` seconds: read what was written meanwhile before judging."""
        self.pauses += 1
        if self.catch_up is None:
            return
        caught_up = self.catch_up(CATCH_UP_TIMEOUT_S)
        # A loaded machine starves the thread for a second now and then: only a real pause is worth a warning.
        log.log(
            logging.WARNING if late >= PAUSE_WARNING_S or not caught_up else logging.DEBUG,
            "the sidecar did not run for %.1f s (stopped, suspended or starved of CPU); stall deadlines wait "
            "until the job files written meanwhile are read%s",
            late,
            "" if caught_up else f" (still reading after {CATCH_UP_TIMEOUT_S:g} s: judging anyway)",
        )

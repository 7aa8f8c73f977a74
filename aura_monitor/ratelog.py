"""Bounded logging of repeated errors: the first few in full, then one summary per interval with the count.

Why: under a flood (a thousand clients, a full fd table) the same error repeats thousands of times a second;
logged each time it fills the disk and hides everything else.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class RateLimitedLog:
    """Logs the first `burst` messages of each key, then at most one summary per `interval` seconds."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 5,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        # key -> [messages seen in this window, suppressed since the last summary, window start]
        self._keys: dict[str, list[float]] = {}

    def allow(self, key: str, level: int = logging.WARNING) -> bool:
        """Whether this occurrence of `key` may be written; writes the repeat notice and summaries itself."""
        now = self.clock()
        with self._lock:
            entry = self._keys.setdefault(key, [0, 0, now])
            if now - entry[2] >= self.interval:
                suppressed = int(entry[1])
                entry[:] = [0, 0, now]
                if suppressed:
                    self.logger.log(
                        level,
                        "%s: %d more like this in the last %.0f s (not logged one by one)",
                        key,
                        suppressed,
                        self.interval,
                    )
            entry[0] += 1
            if entry[0] <= self.burst:
                return True
            entry[1] += 1
            first_dropped = entry[0] == self.burst + 1
        if first_dropped:
            self.logger.log(
                level,
                "%s: repeating; further occurrences are counted and summarized every %.0f s",
                key,
                self.interval,
            )
        return False

    def log(self, level: int, key: str, message: str, *args: object) -> bool:
        """Log `message` unless `key` already used its burst; returns whether it was written."""
        if not self.allow(key, level):
            return False
        self.logger.log(level, message, *args)
        return True

    def flush(self) -> None:
        """Write the pending summaries now (shutdown)."""
        with self._lock:
            pending = [(key, int(entry[1])) for key, entry in self._keys.items() if entry[1]]
            self._keys.clear()
        for key, suppressed in pending:
            self.logger.warning("%s: %d more like this (not logged one by one)", key, suppressed)

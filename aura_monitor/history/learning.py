"""Keeps the tracker's learned thresholds fresh: every few minutes, learn from the history's healthy runs."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Protocol

from ..clock import Clock
from ..config import Settings
from ..jobs.learned import EMPTY, LearnedTable, LearnSettings, StageSample, learn
from ..jobs.stall import Thresholds
from ..jobs.tracker import Tracker
from ..ratelog import RateLimitedLog
from .store import StoreUnavailable

log = logging.getLogger(__name__)

REFRESH_S = 300.0  # thresholds move with the fleet's rhythm over hours, not seconds
PER_STAGE = 2000  # the newest healthy runs per stage that are learned from: recent rhythm, bounded read


class StageGaps(Protocol):
    """Where healthy stage runs come from (the history store; a list in tests and the bench)."""

    def healthy_stage_gaps(self, since: float, per_stage: int) -> list[tuple[str, float, float | None]]: ...


def learn_settings(settings: Settings) -> LearnSettings:
    return LearnSettings(
        min_runs=settings.learn_min_runs, floor=settings.learn_floor, ceiling_factor=settings.learn_ceiling
    )


class ThresholdLearner:
    """Owned by the sidecar: one small thread re-learns the table and swaps it into the tracker."""

    def __init__(
        self, settings: Settings, configured: Thresholds, tracker: Tracker, source: StageGaps, clock: Clock
    ) -> None:
        self.enabled = settings.thresholds == "learned"
        self.configured = configured
        self.tracker = tracker
        self.source = source
        self.clock = clock
        self.knobs = learn_settings(settings)
        self.retention = settings.history_retention
        self.table: LearnedTable = EMPTY
        self.refreshed_at: float | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = RateLimitedLog(log, burst=2, interval=3600.0)

    def refresh(self) -> LearnedTable:
        """Learn now from the history and apply it; on a database error the last table stays in force."""
        if not self.enabled:
            return self.table
        now = self.clock.now()
        try:
            rows = self.source.healthy_stage_gaps(now - self.retention, PER_STAGE)
        except StoreUnavailable as exc:
            self.error = str(exc)
            if self._log.allow("learn"):
                log.warning("learned thresholds not refreshed (%s); the last learned table stays in force", exc)
            return self.table
        samples = [StageSample(stage, gap, media) for stage, gap, media in rows]
        table = learn(samples, self.configured.configured_for_stage, self.knobs)
        if table.stages.keys() != self.table.stages.keys():
            log.info("learned thresholds now apply to stages: %s", ", ".join(sorted(table.stages)) or "none")
        changed = table != self.table or self.refreshed_at is None
        self.table, self.refreshed_at, self.error = table, now, None
        if changed:  # the same table again: every job is armed by it already
            self.tracker.set_thresholds(dataclasses.replace(self.configured, learned=table), now)
        return table

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="aura-learn", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:  # a bug here must not kill learning for the sidecar's life: the next round retries
                log.exception("learning thresholds failed; the configured or last learned ones stay in force")
            if self._stop.wait(REFRESH_S):
                return

    def body(self) -> dict[str, Any]:
        """GET /api/thresholds: the configured rules and, per stage, what was learned (or why not)."""
        c = self.configured
        stages: list[dict[str, Any]] = []
        keys = sorted({*self.table.stages, *self.table.skipped, *c.stages})
        for key in keys:
            learned = self.table.get(key)
            stages.append(
                {
                    "stage": key,
                    "configuredSeconds": c.configured_for_stage(key),
                    "learnedSeconds": None if learned is None else round(learned.seconds, 3),
                    "learnedPerMediaSecond": None
                    if learned is None or learned.per_media_second is None
                    else round(learned.per_media_second, 6),
                    "runs": None if learned is None else learned.runs,
                    "floorSeconds": None if learned is None else learned.floor,
                    "ceilingSeconds": None if learned is None else learned.ceiling,
                    "source": "learned" if learned is not None and self.enabled else "configured",
                    "basis": learned.basis if learned is not None else self.table.skipped.get(key, "configured"),
                }
            )
        return {
            "mode": "learned" if self.enabled else "configured",
            "configured": {
                "default": c.default,
                "finalizing": c.finalizing,
                "finalizingPercent": c.finalizing_percent,
                "queued": c.queued,
                "stages": dict(sorted(c.stages.items())),
            },
            "learn": {
                "minRuns": self.knobs.min_runs,
                "floorSeconds": self.knobs.floor,
                "ceilingFactor": self.knobs.ceiling_factor,
                "quantile": self.knobs.quantile,
                "factor": self.knobs.factor,
                "refreshSeconds": REFRESH_S,
            },
            "refreshedAt": self.refreshed_at,
            "error": self.error,
            "stages": stages,
        }

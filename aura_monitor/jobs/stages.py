"""Aura's stage weights: where each stage's own 0-100 % lands on the job's overall percent."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StageRange:
    """The slice of the overall percent that one stage covers."""

    start: float
    end: float

    def at(self, fraction: float) -> float:
        """Overall percent once the stage is `fraction` (0..1) done; out-of-range fractions are clamped."""
        bounded = min(1.0, max(0.0, fraction))
        return round(self.start + (self.end - self.start) * bounded, 2)


AURA_STAGE_RANGES: dict[str, StageRange] = {
    "Script": StageRange(5.0, 25.0),
    "TTS": StageRange(25.0, 55.0),
    "Images": StageRange(55.0, 80.0),
    "Render": StageRange(80.0, 95.0),
    "Finalize": StageRange(95.0, 100.0),
}

PIPELINE_STAGES: tuple[str, ...] = tuple(AURA_STAGE_RANGES)

QUEUED_STAGE = "Queued"
COMPLETE_STAGE = "Complete"

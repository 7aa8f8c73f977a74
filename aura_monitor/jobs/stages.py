"""Stages: the one table of stage names, their canonical keys, which ones finalize, and Aura's weights."""

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


@dataclass(frozen=True, slots=True)
class AuraStage:
    """One of Aura's weighted stages (AURA_FORMAT.md): its name, canonical key and slice of the percent."""

    name: str
    keys: tuple[str, ...]  # the canonical keys (stage_key) that mean "in this stage"
    weight: StageRange


# Aura's stages in order; the reference pipeline runs all of them but the brief.
AURA_STAGES: tuple[AuraStage, ...] = (
    AuraStage("Brief", ("brief", "plan"), StageRange(0.0, 5.0)),
    AuraStage("Script", ("script",), StageRange(5.0, 25.0)),
    AuraStage("TTS", ("tts",), StageRange(25.0, 55.0)),
    AuraStage("Images", ("images",), StageRange(55.0, 80.0)),
    AuraStage("Render", ("render",), StageRange(80.0, 95.0)),
    AuraStage("Finalize", ("finalize",), StageRange(95.0, 100.0)),
)
AURA_STAGE_RANGES: dict[str, StageRange] = {stage.name: stage.weight for stage in AURA_STAGES[1:]}
PIPELINE_STAGES: tuple[str, ...] = tuple(AURA_STAGE_RANGES)

QUEUED_STAGE = "Queued"
COMPLETE_STAGE = "Complete"

# Stage names that mean "the work is done, the output is being finished" (Aura and native).
FINALIZATION_STAGES = frozenset({"postprocess", "finalize", "finalizing", "complete", "muxing", "packaging"})

# Canonical stage keys, so metric labels stay bounded whatever a writer calls its stages.
_STAGE_ALIASES = {
    "plan": "plan",
    "initialization": "plan",
    "queued": "queued",
    "brief": "brief",
    "script": "script",
    "voice": "tts",
    "tts": "tts",
    "narration": "tts",
    "visuals": "images",
    "images": "images",
    "rendering": "render",
    "render": "render",
    "encode": "render",
    "postprocess": "finalize",
    "processing": "finalize",
    "finalize": "finalize",
    "finalizing": "finalize",
    "muxing": "finalize",
    "packaging": "finalize",
    "complete": "complete",
    "completed": "complete",
    "done": "complete",
}


def stage_key(stage: str) -> str:
    """Bounded canonical name of a stage ("Voice" and "TTS" are both "tts"); unknown ones are "other"."""
    return _STAGE_ALIASES.get(stage.strip().lower(), "other") if stage else "unknown"

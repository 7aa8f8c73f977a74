"""Fault injection: each fault turns one real failure mode of AURA_FORMAT.md on inside the pipeline.

Nothing here fakes a symptom: the stages read a FaultPlan and then really drop the terminal write,
really compute progress against the wrong timeline, really stop or kill processes, really leave
ffmpeg's stderr in an unread pipe, really finalize slowly, really call a provider that answers 429.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Fault(StrEnum):
    """The failure modes the reference pipeline can reproduce."""

    DROP_COMPLETION = "drop-completion"
    CAP_PROGRESS = "cap-progress"
    NO_PROGRESS_SYNC = "no-progress-sync"
    HANG_ENCODER = "hang-encoder"
    CRASH_WORKER = "crash-worker"
    STDERR_DEADLOCK = "stderr-deadlock"
    SLOW_FINALIZE = "slow-finalize"
    UPSTREAM_ERRORS = "upstream-errors"


FAULT_EFFECTS: dict[Fault, str] = {
    Fault.DROP_COMPLETION: "everything finishes and the output is valid, but the terminal write is lost",
    Fault.CAP_PROGRESS: "narration overruns the plan; progress is computed against the plan and capped at 95",
    Fault.NO_PROGRESS_SYNC: "the render's progress is never synced to the record while ffmpeg advances",
    Fault.HANG_ENCODER: "ffmpeg is stopped with SIGSTOP half-way through the render",
    Fault.CRASH_WORKER: "the render process and ffmpeg are SIGKILLed half-way through the render",
    Fault.STDERR_DEADLOCK: "ffmpeg logs verbosely into a stderr pipe nobody reads, until it blocks",
    Fault.SLOW_FINALIZE: "the faststart finalization pass runs slowly (50 s x scale) at 95 % with heartbeats",
    Fault.UPSTREAM_ERRORS: "the TTS provider answers 429/503 or times out, forever; TTS never progresses",
}

# Production-size timings, multiplied by the request's fault scale.
CAP_OVERRUN_S = 60.0
NO_SYNC_RENDER_S = 60.0
SLOW_FINALIZE_S = 50.0
PROVIDER_TIMEOUT_S = 2.0
PROGRESS_CAP = 95.0
SABOTAGE_AT = 0.5


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What a job's fault (or none) changes, as plain values the stages read."""

    fault: Fault | None = None
    scale: float = 1.0
    realtime: bool = False

    def timeline_s(self, planned_s: float) -> float:
        """Length of the narration and video; cap-progress overruns the plan as a slow voice does."""
        if self.fault is Fault.CAP_PROGRESS:
            return planned_s + CAP_OVERRUN_S * self.scale
        return planned_s

    def render_readrate(self, timeline_s: float) -> float | None:
        """ffmpeg `-readrate` for the render input (None: as fast as possible)."""
        if self.fault is Fault.NO_PROGRESS_SYNC:
            return max(0.01, timeline_s / (NO_SYNC_RENDER_S * self.scale))
        if self.fault in (Fault.CAP_PROGRESS, Fault.HANG_ENCODER, Fault.CRASH_WORKER) or self.realtime:
            return 1.0
        return None

    def render_percent(self, out_time_s: float, timeline_s: float, planned_s: float) -> float:
        """Overall percent of the render; cap-progress divides by the plan and caps, as Aura does."""
        if self.fault is Fault.CAP_PROGRESS:
            return min(PROGRESS_CAP, 80.0 + 15.0 * out_time_s / planned_s)
        return 80.0 + 15.0 * min(1.0, out_time_s / timeline_s)

    @property
    def syncs_render_progress(self) -> bool:
        return self.fault is not Fault.NO_PROGRESS_SYNC

    @property
    def stderr_piped(self) -> bool:
        return self.fault is Fault.STDERR_DEADLOCK

    @property
    def stops_encoder(self) -> bool:
        return self.fault is Fault.HANG_ENCODER

    @property
    def kills_worker(self) -> bool:
        return self.fault is Fault.CRASH_WORKER

    def finalize_readrate(self, timeline_s: float) -> float | None:
        if self.fault is Fault.SLOW_FINALIZE:
            return max(0.001, timeline_s / (SLOW_FINALIZE_S * self.scale))
        return None

    @property
    def drops_completion(self) -> bool:
        return self.fault is Fault.DROP_COMPLETION

    @property
    def overloaded_provider(self) -> bool:
        return self.fault is Fault.UPSTREAM_ERRORS

    @property
    def provider_timeout_s(self) -> float:
        return max(0.2, PROVIDER_TIMEOUT_S * min(1.0, self.scale))

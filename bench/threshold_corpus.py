"""Job timelines of the reference pipeline, generated from its own timing model (for bench.thresholds).

Why a model and not hundreds of real jobs: the reference pipeline renders as fast as ffmpeg allows, so a
real job on this shared 2-core machine takes seconds and its gaps measure CPU contention, not the
production rhythm the thresholds are for; production-length runs (minutes each, x hundreds) do not fit a
bench. So each timeline follows what the pipeline's stages do (aura_monitor/pipeline/stages/*), at the
production-size timings aura_monitor/pipeline/faults.py states:
- Script: one progress at 10%, then one per scene written;
- TTS: one progress per sentence synthesized (local voice or a remote provider with latency and the
  occasional retry), then the mixing progress;
- Images: one progress per scene drawn;
- Render: ffmpeg's `-progress` every 0.5 s synced to the record (a new percent each time);
- Finalize: 0% then the silent faststart pass (heartbeats only: its length grows with the file, i.e. with
  the media), then 40/60/80%;
and every Fault of faults.py changes the timeline as the pipeline does (SABOTAGE_AT, NO_SYNC_RENDER_S,
CAP_OVERRUN_S, SLOW_FINALIZE_S...). Deterministic for a seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from aura_monitor.jobs.stages import AURA_STAGE_RANGES
from aura_monitor.pipeline.faults import (
    CAP_OVERRUN_S,
    NO_SYNC_RENDER_S,
    PROGRESS_CAP,
    SABOTAGE_AT,
    SLOW_FINALIZE_S,
    Fault,
)

FFMPEG_PROGRESS_S = 0.5  # ffmpeg -progress period
SCENE_MEDIA_S = 8.0  # about one scene (sentence, image) per 8 s of video
FASTSTART_S_PER_MEDIA_S = (0.03, 0.06)  # the faststart pass rewrites the whole file


@dataclass(frozen=True, slots=True)
class Point:
    """One record write that changed progress: time (s from the job's start), stage, overall percent."""

    at: float
    stage: str
    percent: float


@dataclass(slots=True)
class Timeline:
    """One job: its progress points, how it ends, and (for a fault) when the real stall began and ended."""

    job_id: str
    media_s: float
    provider: str
    kind: str  # "healthy", "slow" (healthy, merely slow but steady) or a Fault value
    points: list[Point] = field(default_factory=list)
    completed_at: float | None = None  # None: the record never says completed
    stall_start: float | None = None
    stall_end: float | None = None  # None: never resumes
    stall_stage: str | None = None


class _Writer:
    def __init__(self, timeline: Timeline) -> None:
        self.t = timeline
        self.now = 0.0

    def stage(self, name: str, fraction: float) -> None:
        percent = AURA_STAGE_RANGES[name].at(fraction)
        points = self.t.points
        if points and points[-1].stage == name and points[-1].percent == percent:
            return  # no change, no progress (the tracker only counts changes)
        points.append(Point(round(self.now, 3), name, percent))

    def raw(self, name: str, percent: float) -> None:
        points = self.t.points
        if not (points and points[-1].stage == name and points[-1].percent == percent):
            points.append(Point(round(self.now, 3), name, percent))

    def wait(self, seconds: float) -> None:
        self.now += max(0.0, seconds)

    def stall(self, stage: str, resume_after: float | None) -> None:
        """The real stall begins at the last progress the record showed; it ends when progress resumes."""
        points = self.t.points
        self.t.stall_start, self.t.stall_stage = (points[-1].at if points else self.now), stage
        if resume_after is not None:
            self.wait(resume_after)
            self.t.stall_end = self.now


def generate(job_id: str, rng: random.Random, kind: str, slowdown: float = 1.0) -> Timeline:
    """One timeline: `kind` healthy, slow (every step `slowdown` x longer, steadily) or a Fault value."""
    media = round(rng.uniform(20.0, 300.0), 1)
    provider = rng.choice(("local", "remote"))
    fault = Fault(kind) if kind not in ("healthy", "slow") else None
    t = Timeline(job_id, media, provider, kind)
    w = _Writer(t)
    scenes = max(2, math.ceil(media / SCENE_MEDIA_S))
    pace = slowdown if kind == "slow" else 1.0

    w.stage("Script", 0.0)
    w.wait(rng.uniform(0.5, 2.0) * pace)
    w.stage("Script", 0.1)
    for i in range(scenes):
        w.wait(rng.uniform(0.3, 1.5) * pace)
        w.stage("Script", (i + 1) / (scenes + 1))

    w.wait(rng.uniform(0.05, 0.3))
    w.stage("TTS", 0.0)
    if fault is Fault.UPSTREAM_ERRORS:
        w.stall("TTS", None)  # the provider answers 429/503 or times out forever: TTS never progresses
        return t
    for i in range(scenes):
        sentence_s = media / scenes
        if provider == "remote":
            step = rng.lognormvariate(math.log(0.8), 0.35) + 0.15 * sentence_s
            if rng.random() < 0.05:
                step += rng.choice((0.25, 0.5, 1.0))  # a transient 429 retried after its backoff
        else:
            step = 0.04 * sentence_s + rng.uniform(0.05, 0.2)
        w.wait(step * pace)
        w.stage("TTS", 0.5 * (i + 1) / scenes)
    w.wait(rng.uniform(0.3, 1.0) * pace)
    w.stage("TTS", 0.75)
    w.wait(rng.uniform(0.2, 0.6) * pace)
    w.stage("TTS", 1.0)

    w.wait(rng.uniform(0.05, 0.3))
    w.stage("Images", 0.0)
    for i in range(scenes):
        w.wait(rng.uniform(0.4, 2.0) * pace)
        w.stage("Images", (i + 1) / scenes)

    _render(w, t, rng, fault, pace)
    if t.stall_start is not None and t.stall_end is None:
        return t
    _finalize(w, t, rng, fault, pace)
    return t


def _render(w: _Writer, t: Timeline, rng: random.Random, fault: Fault | None, pace: float) -> None:
    media = t.media_s
    w.wait(rng.uniform(0.05, 0.3))
    w.stage("Render", 0.0)
    realtime = fault in (Fault.CAP_PROGRESS, Fault.HANG_ENCODER, Fault.CRASH_WORKER)
    speed = 1.0 if realtime else rng.uniform(2.0, 8.0) / pace
    if fault is Fault.NO_PROGRESS_SYNC:
        w.stall("Render", NO_SYNC_RENDER_S)  # ffmpeg advances; the record never hears of it
        return
    planned = media
    timeline_s = media + (CAP_OVERRUN_S if fault is Fault.CAP_PROGRESS else 0.0)
    blocks_at = rng.uniform(0.2, 0.6) if fault is Fault.STDERR_DEADLOCK else None
    out = 0.0
    while out < timeline_s:
        w.wait(FFMPEG_PROGRESS_S)
        out = min(timeline_s, out + FFMPEG_PROGRESS_S * speed)
        if fault in (Fault.HANG_ENCODER, Fault.CRASH_WORKER) and out >= SABOTAGE_AT * timeline_s:
            w.stall("Render", None)  # SIGSTOP / SIGKILL half-way: nothing is written again
            return
        if blocks_at is not None and out >= blocks_at * timeline_s:
            w.stall("Render", None)  # ffmpeg blocked on its unread stderr pipe
            return
        if fault is Fault.CAP_PROGRESS:
            percent = min(PROGRESS_CAP, 80.0 + 15.0 * out / planned)
            if percent >= PROGRESS_CAP and t.stall_start is None:
                w.raw("Render", percent)
                w.stall("Render", (timeline_s - out) / speed)  # ffmpeg encodes the overrun at 95 %
                break
            w.raw("Render", round(percent, 2))
        else:
            w.stage("Render", out / timeline_s)


def _finalize(w: _Writer, t: Timeline, rng: random.Random, fault: Fault | None, pace: float) -> None:
    w.wait(rng.uniform(0.05, 0.3))
    w.stage("Finalize", 0.0)
    if fault is Fault.SLOW_FINALIZE:
        w.stall("Finalize", SLOW_FINALIZE_S)  # heartbeats only: no progress
    else:
        w.wait(t.media_s * rng.uniform(*FASTSTART_S_PER_MEDIA_S) * pace)
    for fraction in (0.4, 0.6, 0.8):
        w.stage("Finalize", fraction)
        w.wait(rng.uniform(0.05, 0.4) * pace)
    if fault is Fault.DROP_COMPLETION:
        w.stall("Finalize", None)  # everything is done, the terminal write is lost
        return
    t.completed_at = round(w.now, 3)


def corpus(seed: int = 18, healthy: int = 400, slow: int = 60, per_fault: int = 20) -> list[Timeline]:
    """Healthy runs, slow-but-steady healthy runs (2-3x slower at every step), and `per_fault` of each Fault."""
    rng = random.Random(seed)
    out = [generate(f"healthy-{i}", rng, "healthy") for i in range(healthy)]
    out += [generate(f"slow-{i}", rng, "slow", slowdown=rng.uniform(2.0, 3.0)) for i in range(slow)]
    for fault in Fault:
        out += [generate(f"{fault.value}-{i}", rng, fault.value) for i in range(per_fault)]
    return out

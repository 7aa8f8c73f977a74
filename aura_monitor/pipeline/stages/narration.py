"""TTS: one narration track, each sentence fitted to its scene's slot on the timeline.

Speech comes from ffmpeg's flite source when this ffmpeg has it, from a remote provider when the
request names one, and otherwise from a tone shaped like speech (one pitch per sentence, syllable
tremolo, fades): everything is made by ffmpeg alone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import ffmpeg

from ...reporter import StageError
from ..context import StageContext
from ..encoding import run_encoder
from ..ffmpeg import Encoder, ProgressSample, lavfi_source
from ..provider import OverloadedProvider, SpeechProvider
from .script import Scene, load_scenes

SAMPLE_RATE = 22050


def synthesize_narration(ctx: StageContext) -> list[Path]:
    workspace = ctx.workspace
    scenes = load_scenes(ctx)
    planned = sum(scene.seconds for scene in scenes)
    timeline = ctx.plan.timeline_s(planned)
    slots = [round(scene.seconds * timeline / planned, 3) for scene in scenes]
    voices = _remote_voices(ctx, scenes)
    sources = [_voice_source(ctx, scene, voices[scene.index] if voices else None) for scene in scenes]
    fitted = [
        source.filter("aresample", SAMPLE_RATE)
        .filter("apad")
        .filter("atrim", duration=slot)
        .filter("asetpts", "N/SR/TB")
        for source, slot in zip(sources, slots, strict=True)
    ]
    joined = ffmpeg.concat(*fitted, v=0, a=1) if len(fitted) > 1 else fitted[0]
    args = (
        ffmpeg.output(joined, str(workspace.narration), acodec="pcm_s16le", ar=SAMPLE_RATE, ac=1)
        .global_args("-hide_banner")
        .overwrite_output()
        .compile(cmd=ctx.tools.ffmpeg)
    )
    done_before = 0.5 if voices else 0.0

    def on_sample(encoder: Encoder, sample: ProgressSample) -> None:
        if sample.out_time_s is not None:
            share = sample.out_time_s / timeline
            ctx.stage.progress(done_before + (1 - done_before) * share, "mixing the narration")

    run_encoder(ctx, args, output=workspace.narration, on_sample=on_sample)
    ctx.write_json(workspace.timeline, {"plannedSeconds": planned, "seconds": timeline, "slots": slots})
    ctx.stage.milestone("narration ready", seconds=timeline)
    return [workspace.narration, workspace.timeline, *(voices or [])]


def _voice_source(ctx: StageContext, scene: Scene, voice: Path | None) -> Any:
    if voice is not None:
        return ffmpeg.input(str(voice)).audio
    caption = ctx.workspace.caption(scene.index)
    if ctx.tools.has("flite"):
        return ffmpeg.input(lavfi_source("flite", textfile=caption, voice="slt"), f="lavfi").audio
    pitch = 170 + 35 * (scene.index % 5)
    tone = lavfi_source("sine", frequency=pitch, sample_rate=SAMPLE_RATE, duration=scene.seconds)
    return (
        ffmpeg.input(tone, f="lavfi")
        .audio.filter("tremolo", f=5, d=0.7)
        .filter("afade", t="in", d=0.05)
        .filter("afade", t="out", st=max(0.0, scene.seconds - 0.15), d=0.15)
    )


def _remote_voices(ctx: StageContext, scenes: list[Scene]) -> list[Path] | None:
    """Fetch each sentence from the remote provider, if there is one (the overloaded one for the fault)."""
    if ctx.plan.overloaded_provider:
        timeout = ctx.plan.provider_timeout_s
        with OverloadedProvider(stall_s=timeout * 3) as overloaded:
            return _fetch(ctx, scenes, overloaded.url, timeout_s=timeout, max_attempts=None)
    if ctx.request.tts_provider_url:
        return _fetch(ctx, scenes, ctx.request.tts_provider_url, timeout_s=10.0, max_attempts=5)
    return None


def _fetch(
    ctx: StageContext, scenes: list[Scene], url: str, *, timeout_s: float, max_attempts: int | None
) -> list[Path]:
    started = time.monotonic()
    limit = ctx.settings.max_hang_s

    def pause(seconds: float) -> None:
        if time.monotonic() - started + seconds > limit:
            raise StageError(f"TTS provider {url} kept failing for {limit:g} s", code="E502-UPSTREAM_UNAVAILABLE")
        ctx.pause(seconds)

    provider = SpeechProvider(url, timeout_s=timeout_s, max_attempts=max_attempts, log=ctx.reporter.log, pause=pause)
    voices = []
    for scene in scenes:
        ctx.check_cancelled()
        voice = ctx.workspace.voice(scene.index)
        provider.synthesize(scene.text, voice)
        voices.append(voice)
        ctx.stage.progress(0.5 * (scene.index + 1) / len(scenes), f"sentence {scene.index + 1} synthesized")
    return voices

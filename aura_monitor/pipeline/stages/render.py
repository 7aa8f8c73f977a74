"""Render: the scene stills on the narration's timeline, encoded to H.264/AAC by one ffmpeg run."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import ffmpeg

from ...reporter import StageError
from ..context import StageContext
from ..encoding import run_encoder
from ..faults import SABOTAGE_AT
from ..ffmpeg import Encoder, ProgressSample

FADE_S = 0.3


def render_video(ctx: StageContext) -> list[Path]:
    request, workspace, plan = ctx.request, ctx.workspace, ctx.plan
    timeline = ctx.read_json(workspace.timeline)
    try:
        slots = [float(slot) for slot in timeline["slots"]]
        total, planned = float(timeline["seconds"]), float(timeline["plannedSeconds"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StageError(f"timeline.json is malformed: {exc!r}", code="E500-ARTIFACT_MISSING") from None
    stills = [workspace.scene(index) for index in range(len(slots))]
    missing = [still.name for still in stills if not still.is_file()]
    if missing or not workspace.narration.is_file():
        raise StageError(f"render inputs are missing: {missing or ['narration.wav']}", code="E500-ARTIFACT_MISSING")
    readrate = plan.render_readrate(total)
    pace: dict[str, Any] = {"readrate": f"{readrate:.4f}"} if readrate else {}
    clips = [
        ffmpeg.input(str(still), loop=1, framerate=request.fps, t=slot, **pace)
        .video.filter("scale", request.width, request.height)
        .filter("setsar", 1)
        for still, slot in zip(stills, slots, strict=True)
    ]
    video = ffmpeg.concat(*clips, v=1, a=0) if len(clips) > 1 else clips[0]
    video = (
        video.filter("fade", t="in", d=FADE_S)
        .filter("fade", t="out", st=max(0.0, total - FADE_S), d=FADE_S)
        .filter("format", "yuv420p")
    )
    audio = ffmpeg.input(str(workspace.narration), **pace).audio
    verbosity = ["-loglevel", "debug", "-debug_ts"] if plan.stderr_piped else ["-hide_banner"]
    args = (
        ffmpeg.output(
            video,
            audio,
            str(workspace.render_output),
            vcodec="libx264",
            preset="ultrafast",
            pix_fmt="yuv420p",
            r=request.fps,
            acodec="aac",
            audio_bitrate="96k",
            t=total,
        )
        .global_args(*verbosity)
        .overwrite_output()
        .compile(cmd=ctx.tools.ffmpeg)
    )
    sabotaged = False

    def on_sample(encoder: Encoder, sample: ProgressSample) -> None:
        nonlocal sabotaged
        if sample.out_time_s is None:
            return
        done = min(1.0, sample.out_time_s / total)
        ctx.reporter.update(
            percent=plan.render_percent(sample.out_time_s, total, planned),
            stage_percent=done * 100,
            message=f"encoding {sample.out_time_s:.1f} of {total:.1f} s",
        )
        if done >= SABOTAGE_AT and not sabotaged and not sample.ended:
            sabotaged = True
            if plan.stops_encoder:
                os.kill(encoder.pid, signal.SIGSTOP)
            if plan.kills_worker:
                os.kill(encoder.pid, signal.SIGKILL)
                os.kill(os.getpid(), signal.SIGKILL)

    encoder = run_encoder(
        ctx,
        args,
        output=workspace.render_output,
        on_sample=on_sample,
        pipe_stderr=plan.stderr_piped,
        sync=plan.syncs_render_progress,
    )
    speed = encoder.reader.latest.speed if encoder.reader.latest else None
    if speed is not None and ctx.metrics is not None:
        ctx.metrics.observe_render_speed(speed)
    ctx.stage.milestone("encode finished", seconds=total, speed=speed or 0.0)
    return [workspace.render_output]

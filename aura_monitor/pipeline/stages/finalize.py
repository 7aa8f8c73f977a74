"""Finalize: the faststart remux pass, an ffprobe check of the result, the move to the output dir."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import ffmpeg

from ...reporter import StageError
from ..context import StageContext
from ..encoding import run_encoder
from ..ffmpeg import probe

DURATION_TOLERANCE_S = 0.5


def finalize_video(ctx: StageContext) -> list[Path]:
    request, workspace = ctx.request, ctx.workspace
    source, remuxed = workspace.render_output, workspace.faststart_output
    if not source.is_file():
        raise StageError(f"the rendered file {source} is missing", code="E305-OUTPUT_NOT_FOUND")
    timeline = float(ctx.read_json(workspace.timeline).get("seconds") or request.duration_s)
    readrate = ctx.plan.finalize_readrate(timeline)
    pace: dict[str, Any] = {"readrate": f"{readrate:.4f}"} if readrate else {}
    ctx.stage.progress(0.0, "moving the index to the front of the file")
    args = (
        ffmpeg.input(str(source), **pace)
        .output(str(remuxed), c="copy", movflags="+faststart")
        .global_args("-hide_banner")
        .overwrite_output()
        .compile(cmd=ctx.tools.ffmpeg)
    )
    # The faststart pass reports nothing worth a percent (as in Aura): only heartbeats show it is alive.
    run_encoder(ctx, args, output=remuxed)
    ctx.check_cancelled()
    ctx.stage.progress(0.4, "verifying the output")
    verify_output(ctx, remuxed, timeline)
    ctx.stage.progress(0.6, "moving the video to the output directory")
    destination = publish(remuxed, workspace.output)
    ctx.reporter.set_output(destination)
    ctx.stage.progress(0.8, "output ready")
    ctx.stage.milestone("output verified", path=str(destination))
    return [destination]


def verify_output(ctx: StageContext, path: Path, expected_s: float) -> None:
    """ffprobe the file; its container size must match the file (a truncated faststart file lies about
    its duration) and its duration and frame size the request."""
    request = ctx.request
    try:
        result = probe(path, ctx.tools)
    except ffmpeg.Error as exc:
        detail = exc.stderr.decode("utf-8", "replace")[-500:] if exc.stderr else ""
        raise StageError(f"ffprobe rejects {path.name}", code="E305-OUTPUT_INVALID", stderr_tail=detail) from None
    size = path.stat().st_size
    problems = []
    if result.size_bytes != size:
        problems.append(f"container says {result.size_bytes} bytes, file has {size}")
    if abs(result.duration_s - expected_s) > DURATION_TOLERANCE_S:
        problems.append(f"duration {result.duration_s:.2f} s, expected {expected_s:.2f} s")
    if (result.width, result.height) != (request.width, request.height):
        problems.append(f"frame {result.width}x{result.height}, expected {request.width}x{request.height}")
    if not result.has_audio:
        problems.append("no audio stream")
    if problems:
        raise StageError(f"output check failed: {'; '.join(problems)}", code="E305-OUTPUT_INVALID")


def publish(source: Path, destination: Path) -> Path:
    """Move the finished file into place atomically, copying when the output dir is another device."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise StageError(f"cannot move the video to {destination}: {exc.strerror}", code="E500-PUBLISH") from exc
        partial = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.partial")
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, destination)
        except OSError as copy_exc:
            partial.unlink(missing_ok=True)
            raise StageError(
                f"cannot copy the video to {destination}: {copy_exc.strerror}", code="E500-PUBLISH"
            ) from copy_exc
        source.unlink()
    return destination

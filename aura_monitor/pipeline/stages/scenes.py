"""Images: one still per scene, a coloured card with its caption (or a test pattern without a font)."""

from __future__ import annotations

from pathlib import Path

import ffmpeg

from ..context import StageContext
from ..encoding import run_encoder
from ..ffmpeg import lavfi_source
from .script import Scene, load_scenes

_PALETTE = ("0x1d3557", "0x2a9d8f", "0x6a4c93", "0xe76f51", "0x264653", "0x8d5524", "0x3a5a40")


def draw_scenes(ctx: StageContext) -> list[Path]:
    scenes = load_scenes(ctx)
    stills = []
    for scene in scenes:
        ctx.check_cancelled()
        still = ctx.workspace.scene(scene.index)
        run_encoder(ctx, _still_command(ctx, scene, still), output=still)
        stills.append(still)
        ctx.stage.progress((scene.index + 1) / len(scenes), f"scene {scene.index + 1} of {len(scenes)} drawn")
    ctx.stage.milestone("scenes drawn", scenes=len(stills))
    return stills


def _still_command(ctx: StageContext, scene: Scene, still: Path) -> list[str]:
    request, font = ctx.request, ctx.tools.font
    size = f"{request.width}x{request.height}"
    if font is not None and ctx.tools.has("drawtext"):
        card = ffmpeg.input(lavfi_source("color", c=_PALETTE[scene.index % len(_PALETTE)], s=size, d=1), f="lavfi")
        picture = card.filter(
            "drawtext",
            fontfile=str(font),
            textfile=str(ctx.workspace.caption(scene.index)),
            fontcolor="white",
            fontsize=max(10, request.height // 12),
            line_spacing=4,
            box=1,
            boxcolor="black@0.35",
            boxborderw=8,
            x="(w-text_w)/2",
            y="(h-text_h)/2",
        )
    else:
        pattern = ffmpeg.input(lavfi_source("testsrc2", s=size, d=1), f="lavfi")
        picture = pattern.filter("hue", h=(scene.index * 53) % 360)
    return list(
        ffmpeg.output(picture, str(still), vframes=1)
        .global_args("-hide_banner")
        .overwrite_output()
        .compile(cmd=ctx.tools.ffmpeg)
    )

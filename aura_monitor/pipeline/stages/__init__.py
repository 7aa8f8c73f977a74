"""The reference pipeline's stages, in order; each takes a StageContext and returns its artifacts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..context import StageContext
from .finalize import finalize_video
from .narration import synthesize_narration
from .render import render_video
from .scenes import draw_scenes
from .script import write_script

StageFunction = Callable[[StageContext], list[Path]]

STAGES: tuple[tuple[str, StageFunction], ...] = (
    ("Script", write_script),
    ("TTS", synthesize_narration),
    ("Images", draw_scenes),
    ("Render", render_video),
    ("Finalize", finalize_video),
)

__all__ = ["STAGES", "StageFunction"]

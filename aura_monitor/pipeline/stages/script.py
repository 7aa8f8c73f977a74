"""Script: from the brief's topic, the narration text of each scene and its planned length."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from ...reporter import StageError
from ..context import StageContext

_SENTENCES = (
    "{topic}.",
    "It starts from a brief, which becomes a plan and then a script.",
    "The script is read aloud, and the narration sets the pace of every scene.",
    "Each scene gets a still image drawn for it.",
    "The encoder turns the stills and the voice into frames and sound.",
    "Finalization moves the index to the front of the file so it plays at once.",
    "Then the video is ready to watch and to share.",
)
SECONDS_PER_SCENE = 2.0


@dataclass(frozen=True, slots=True)
class Scene:
    """One scene of the script: its narration and its planned length."""

    index: int
    text: str
    seconds: float


def compose_script(topic: str, duration_s: float) -> list[Scene]:
    """Scenes of about two seconds, planned lengths proportional to word counts, summing to the duration."""
    count = max(1, round(duration_s / SECONDS_PER_SCENE))
    texts = []
    for index in range(count):
        sentence = _SENTENCES[index % len(_SENTENCES)].format(topic=topic.strip().rstrip("."))
        part = index // len(_SENTENCES)
        texts.append(f"Part {part + 1}. {sentence}" if part else sentence)
    words = [max(1, len(text.split())) for text in texts]
    seconds = [round(duration_s * count / sum(words), 3) for count in words]
    seconds[-1] = round(duration_s - sum(seconds[:-1]), 3)
    return [Scene(index, text, length) for index, (text, length) in enumerate(zip(texts, seconds, strict=True))]


def caption_lines(text: str, width_px: int) -> str:
    """The caption wrapped to the frame: about one character per 11 px at the caption's font size."""
    return "\n".join(textwrap.wrap(text, width=max(12, width_px // 11)))


def load_scenes(ctx: StageContext) -> list[Scene]:
    """The scenes the Script stage (of this or an earlier attempt) wrote."""
    data = ctx.read_json(ctx.workspace.script)
    try:
        return [Scene(int(s["index"]), str(s["text"]), float(s["seconds"])) for s in data["scenes"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise StageError(f"script.json is malformed: {exc!r}", code="E500-ARTIFACT_MISSING") from None


def write_script(ctx: StageContext) -> list[Path]:
    request, workspace = ctx.request, ctx.workspace
    ctx.stage.progress(0.1, "writing the script")
    scenes = compose_script(request.topic, request.duration_s)
    artifacts = [workspace.script]
    for scene in scenes:
        ctx.check_cancelled()
        caption = workspace.caption(scene.index)
        caption.write_text(caption_lines(scene.text, request.width), encoding="utf-8")
        artifacts.append(caption)
        ctx.stage.progress((scene.index + 1) / (len(scenes) + 1), f"scene {scene.index + 1} of {len(scenes)} written")
    ctx.write_json(
        workspace.script,
        {
            "topic": request.topic,
            "plannedSeconds": request.duration_s,
            "scenes": [{"index": s.index, "text": s.text, "seconds": s.seconds} for s in scenes],
        },
    )
    ctx.stage.milestone("script written", scenes=len(scenes))
    return artifacts

"""What a job asks the reference pipeline to make; stored as the record's `request` object."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..exceptions import ConfigError
from .faults import Fault, FaultPlan

DEFAULT_TOPIC = "How a video render pipeline turns a brief into a finished video"


@dataclass(frozen=True, slots=True)
class RenderRequest:
    """A video to make: length, frame size and rate, topic, and optionally a fault to reproduce."""

    duration_s: float = 4.0
    width: int = 320
    height: int = 180
    fps: int = 15
    topic: str = DEFAULT_TOPIC
    fault: Fault | None = None
    fault_scale: float = 1.0
    realtime: bool = False
    tts_provider_url: str | None = None

    def validated(self) -> RenderRequest:
        """The request itself, or ConfigError saying which value is out of range."""
        if not 0.5 <= self.duration_s <= 3600:
            raise ConfigError(f"duration must be 0.5-3600 seconds, got {self.duration_s:g}")
        for name, value in (("width", self.width), ("height", self.height)):
            if not 16 <= value <= 3840 or value % 2:
                raise ConfigError(f"{name} must be an even number of pixels from 16 to 3840, got {value}")
        if not 1 <= self.fps <= 60:
            raise ConfigError(f"fps must be 1-60, got {self.fps}")
        if not 0.001 <= self.fault_scale <= 100:
            raise ConfigError(f"fault scale must be 0.001-100, got {self.fault_scale:g}")
        if not self.topic.strip():
            raise ConfigError("topic must not be empty")
        return self

    @property
    def fault_plan(self) -> FaultPlan:
        return FaultPlan(fault=self.fault, scale=self.fault_scale, realtime=self.realtime)

    def to_json(self) -> dict[str, Any]:
        return {
            "durationSeconds": self.duration_s,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "topic": self.topic,
            "fault": self.fault.value if self.fault else None,
            "faultScale": self.fault_scale,
            "realtime": self.realtime,
            "ttsProviderUrl": self.tts_provider_url,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RenderRequest:
        """Read a stored request; missing keys take their defaults, wrong types raise ConfigError."""
        base = cls()
        try:
            fault = data.get("fault")
            request = replace(
                base,
                duration_s=float(data.get("durationSeconds", base.duration_s)),
                width=int(data.get("width", base.width)),
                height=int(data.get("height", base.height)),
                fps=int(data.get("fps", base.fps)),
                topic=str(data.get("topic") or base.topic),
                fault=Fault(fault) if fault else None,
                fault_scale=float(data.get("faultScale", base.fault_scale)),
                realtime=bool(data.get("realtime", False)),
                tts_provider_url=str(data["ttsProviderUrl"]) if data.get("ttsProviderUrl") else None,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"the job's request is invalid: {exc}") from None
        return request.validated()

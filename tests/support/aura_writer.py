"""Writes job.json exactly as Aura Video Studio does (PascalCase, int enums, in place) for demos and tests."""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Current builds' status integers (AURA_FORMAT.md).
QUEUED, RUNNING, PAUSED, DONE, FAILED, SKIPPED, CANCELED, SUCCEEDED = range(8)


def net_time(epoch: float) -> str:
    """A DateTime as System.Text.Json writes it: 7 fractional digits and a Z."""
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0Z"


def net_timespan(seconds: float) -> str:
    whole = int(seconds)
    fraction = seconds - whole
    text = f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return text + (f".{round(fraction * 1e7):07d}" if fraction else "")


# System.Text.Json's default encoder escapes these even inside strings (HTML-safe output).
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NET_ESCAPED = {c: f"\\u{ord(c):04X}" for c in "+<>&'`"}


def aura_json(document: dict[str, Any]) -> bytes:
    """The bytes File.WriteAllText leaves: indented, CRLF line ends (Windows), `+` as `\\u002B`, no BOM."""
    text = json.dumps(document, indent=2, ensure_ascii=False)
    # Inside string tokens only: a number such as 1e+300 keeps its `+`, as .NET writes it.
    text = _JSON_STRING.sub(lambda m: "".join(_NET_ESCAPED.get(c, c) for c in m.group(0)), text)
    return text.replace("\n", "\r\n").encode("utf-8")


def ffmpeg_log(
    job_id: str, stderr: bytes, exit_code: int | None, *, started: float, ended: float | None = None
) -> bytes:
    """An ffmpeg log as Aura's FfmpegVideoComposer keeps it: UTF-8 BOM, a header, `[stderr] ` before every line
    (progress lines split on CR too), then `Completed:` and `Exit Code: N` once ffmpeg has exited."""
    stamp = datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M:%S")
    lines = ["FFmpeg Render Log", f"Job ID: {job_id}", f"Correlation ID: {job_id}", f"Started: {stamp}", ""]
    text = stderr.decode("utf-8", errors="replace")
    lines += [f"[stderr] {line}" for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line]
    if exit_code is not None:
        done = datetime.fromtimestamp(ended if ended is not None else started).strftime("%Y-%m-%d %H:%M:%S")
        lines += ["", f"Completed: {done}", f"Exit Code: {exit_code}"]
    return "\ufeff".encode() + "\r\n".join(lines).encode() + b"\r\n"


def log_line(epoch: float, message: str) -> str:
    """Aura's log prefix is local time."""
    return datetime.fromtimestamp(epoch).strftime("[%Y-%m-%d %H:%M:%S] ") + message


@dataclass
class AuraJob:
    """One Aura job record; mutate fields then write()."""

    jobs_dir: Path
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    stage: str = "Plan"
    status: int = QUEUED
    percent: int = 0
    created: float = 0.0
    started: float | None = None
    target_duration_s: float = 30.0
    logs: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.jobs_dir / self.id / "job.json"

    def progress(self, at: float, stage: str, percent: int, message: str = "") -> None:
        """Record a progress update the way Aura does (Percent never decreases)."""
        self.stage, self.percent = stage, max(self.percent, percent)
        self.history.append(
            {
                "Stage": stage,
                "OverallPercent": float(self.percent),
                "StagePercent": 0.0,
                "Message": message or f"{stage} {self.percent}%",
                "SubstageDetail": None,
                "CurrentItem": None,
                "TotalItems": None,
                "EstimatedTimeRemaining": None,
                "ElapsedTime": net_timespan(max(0.0, at - self.created)),
                "Timestamp": net_time(at),
                "CorrelationId": self.id,
                "Metadata": None,
            }
        )
        self.logs.append(log_line(at, message or f"{stage}: {self.percent}%"))

    def write_progress(self, at: float, stage: str, percent: int, message: str = "") -> None:
        """Aura's detailed-progress update: two writes, Stage/Percent/Logs first, then ProgressHistory and
        CurrentProgress, so a reader can see the half-new record in between (AURA_FORMAT.md)."""
        before_history, before_current = list(self.history), self.history[-1] if self.history else None
        self.progress(at, stage, percent, message)
        half = self.document()
        half.update(ProgressHistory=before_history, CurrentProgress=before_current)
        self.write(half)
        self.write()

    def document(self) -> dict[str, Any]:
        current = self.history[-1] if self.history else None
        doc: dict[str, Any] = {
            "Id": self.id,
            "Stage": self.stage,
            "Status": self.status,
            "Percent": self.percent,
            "Eta": None,
            "Artifacts": [],
            "Logs": self.logs,
            "AgentPerformance": None,
            "StartedAt": net_time(self.created),
            "FinishedAt": None,
            "CorrelationId": self.id,
            "ErrorMessage": None,
            "FailureDetails": None,
            "Brief": {
                "Topic": "Demo video",
                "Audience": "General",
                "Goal": "Inform",
                "Tone": "Friendly",
                "Language": "en-US",
                "Aspect": 0,
            },
            "PlanSpec": {
                "TargetDuration": net_timespan(self.target_duration_s),
                "Pacing": 1,
                "Density": 1,
                "Style": "Standard",
            },
            "VoiceSpec": {"VoiceName": "default", "Rate": 1.0, "Pitch": 1.0, "Pause": 0},
            "RenderSpec": {
                "Res": {"Width": 1280, "Height": 720},
                "Container": "mp4",
                "VideoBitrateK": 4000,
                "AudioBitrateK": 192,
                "Fps": 30,
                "Codec": "H264",
                "QualityLevel": 75,
            },
            "CreatedUtc": net_time(self.created),
            "QueuedUtc": net_time(self.created),
            "StartedUtc": net_time(self.started) if self.started is not None else None,
            "CompletedUtc": None,
            "CanceledUtc": None,
            "EndedUtc": None,
            "Steps": [],
            "Output": None,
            "Warnings": [],
            "Errors": [],
            "LastCompletedStep": None,
            "CanResume": False,
            "IsQuickDemo": False,
            "OutputPath": None,
            "ProgressHistory": self.history,
            "CurrentProgress": current,
        }
        doc.update(self.extra)
        return doc

    def write(self, document: dict[str, Any] | None = None) -> None:
        """Truncate and rewrite in place in 4 KiB writes, as Aura does (readers can see a half-written file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = aura_json(self.document() if document is None else document)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view[:4096])
                view = view[written:]
        finally:
            os.close(fd)

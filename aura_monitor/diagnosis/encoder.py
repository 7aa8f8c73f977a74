"""Reading what ffmpeg says about itself: a `-progress` file, or the stderr log Aura keeps."""

from __future__ import annotations

import os
import re

from ..records.safe_read import ReadRoots, tail_or_reason
from .evidence import EncoderEvidence

TAIL_BYTES = 64 * 1024
_TIME = re.compile(r"time=\s*(-?\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_SPEED = re.compile(r"speed=\s*([\d.]+)x")
_FRAME = re.compile(r"frame=\s*(\d+)")
_OUTPUT = re.compile(r"Output #0, [^,]+, to '(.+)':")
_ERROR = re.compile(
    r"(error|invalid|failed|conversion failed|no such file|permission denied|broken pipe|killed|cannot|corrupt)",
    re.IGNORECASE,
)
# Aura's FfmpegVideoComposer wraps ffmpeg's stderr: a header block, `[stderr] ` before every line, and a
# trailer with the exit code (AURA_FORMAT.md, "ffmpeg log layout"). StderrSnippet is its last 16 KB.
_STDERR_PREFIX = "[stderr] "
_HEADER = ("FFmpeg Render Log", "Job ID:", "Correlation ID:", "Started:", "Completed:")
_EXIT = re.compile(r"Exit Code:\s*(-?\d+)\s*$")
# ffmpeg's closing line on any failure: true but says nothing about the cause, so quoted only when alone.
_GENERIC = ("conversion failed!", "exiting normally")


def read_tail(path: str, roots: ReadRoots, limit: int = TAIL_BYTES) -> tuple[str, os.stat_result] | str:
    """The last `limit` bytes of a file a record names, as text with its stat; else why it was not read
    (only regular files under the allowed roots are read: see records/safe_read.py)."""
    tail = tail_or_reason(path, roots, limit)
    if isinstance(tail, str):
        return tail
    data, st = tail
    return data.decode("utf-8", errors="replace"), st


def _seconds(h: str, m: str, s: str) -> float:
    return int(h) * 3600 + int(m) * 60 + float(s)


def parse_progress_file(path: str, roots: ReadRoots) -> EncoderEvidence:
    """ffmpeg `-progress` output: key=value blocks, the last one ending `progress=end` on success."""
    evidence = EncoderEvidence(path=path, kind="progress")
    tail = read_tail(path, roots)
    if isinstance(tail, str):
        evidence.unread = tail
        return evidence
    text, st = tail
    evidence.exists, evidence.mtime, evidence.size = True, st.st_mtime, st.st_size
    for line in text.splitlines():
        key, _, value = line.partition("=")
        value = value.strip()
        if value in ("", "N/A"):
            continue
        try:
            if key in ("out_time_us", "out_time_ms"):  # both are microseconds
                evidence.out_time_s = max(0.0, int(value) / 1e6)
            elif key == "speed":
                evidence.speed = float(value.rstrip("x"))
            elif key == "frame":
                evidence.frames = int(value)
        except ValueError:
            continue
        if key == "progress":
            evidence.ended = value == "end"
    return evidence


def stderr_lines(text: str) -> list[str]:
    """ffmpeg's own lines of a log or snippet: Aura's BOM, header, trailer and `[stderr] ` prefixes removed."""
    lines = []
    for raw in re.split(r"[\r\n]+", text.lstrip("\ufeff")):
        line = raw[len(_STDERR_PREFIX) :] if raw.startswith(_STDERR_PREFIX) else raw
        if line.strip() and not raw.startswith(_HEADER) and not _EXIT.match(raw):
            lines.append(line)
    return lines


def error_lines(text: str) -> list[str]:
    """The lines of ffmpeg's stderr that report an error (never Aura's header, nor ffmpeg's build banner)."""
    return [
        line.strip()[:300]
        for line in stderr_lines(text)
        if _ERROR.search(line) and not line.lstrip().startswith(("configuration:", "built with"))
    ]


def key_error(errors: list[str]) -> str | None:
    """The line worth quoting: the last specific error, before ffmpeg's closing "Conversion failed!"."""
    specific = [line for line in errors if line.strip().lower() not in _GENERIC]
    chosen = specific or errors
    return chosen[-1] if chosen else None


def exit_code(text: str) -> int | None:
    """The `Exit Code: N` trailer Aura appends once ffmpeg has exited; None while it runs (or never said)."""
    codes = [int(m.group(1)) for line in re.split(r"[\r\n]+", text) if (m := _EXIT.match(line.strip()))]
    return codes[-1] if codes else None


def parse_stderr_log(path: str, roots: ReadRoots) -> EncoderEvidence:
    """ffmpeg's stderr: `time=` and `speed=` of the last status line, errors, how it exited, whether it ended well."""
    evidence = EncoderEvidence(path=path, kind="log")
    tail = read_tail(path, roots)
    if isinstance(tail, str):
        evidence.unread = tail
        return evidence
    text, st = tail
    evidence.exists, evidence.mtime, evidence.size = True, st.st_mtime, st.st_size
    for line in stderr_lines(text):
        if m := _TIME.search(line):
            evidence.out_time_s = max(0.0, _seconds(*m.groups()))
            if s := _SPEED.search(line):
                evidence.speed = float(s.group(1))
            if f := _FRAME.search(line):
                evidence.frames = int(f.group(1))
        elif "muxing overhead" in line:
            evidence.ended = True
        elif m := _OUTPUT.search(line):
            evidence.output_announced = m.group(1)
    evidence.errors = error_lines(text)[-10:]
    evidence.exit_code = exit_code(text)
    if evidence.exit_code is not None and evidence.exit_code != 0:
        evidence.ended = False  # a "muxing overhead" before a non-zero exit does not make a whole file
    return evidence

"""Running ffmpeg ourselves: one child per Encoder, its `-progress` file read live, q-then-kill stop.

ffmpeg-python builds the command lines and probes files; it is unmaintained, so it never runs a
process here. The progress file is a series of `key=value` blocks, each ending with `progress=continue`
or, for the last one, `progress=end`; `out_time_us` and `out_time_ms` both hold microseconds and any
value may be `N/A`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import ffmpeg

from ..exceptions import ConfigError

_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "C:/Windows/Fonts")
_FONT_PREFERENCE = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "FreeSans.ttf", "Arial.ttf")


@dataclass(frozen=True, slots=True)
class FfmpegTools:
    """Where ffmpeg and ffprobe are and what this build can do (filters, a font for drawtext)."""

    ffmpeg: str
    ffprobe: str
    filters: frozenset[str]
    font: Path | None

    @classmethod
    def detect(cls) -> FfmpegTools:
        """Find the binaries and list the filters; ConfigError when ffmpeg is not installed."""
        binary, probe = shutil.which("ffmpeg"), shutil.which("ffprobe")
        if binary is None or probe is None:
            raise ConfigError("ffmpeg and ffprobe must be installed and on PATH (Debian: apt-get install ffmpeg)")
        listing = subprocess.run(
            [binary, "-hide_banner", "-filters"], capture_output=True, text=True, check=False, timeout=30
        ).stdout
        filters = frozenset(
            parts[1] for line in listing.splitlines() if len(parts := line.split()) >= 3 and "->" in parts[2]
        )
        return cls(ffmpeg=binary, ffprobe=probe, filters=filters, font=find_font())

    def has(self, filter_name: str) -> bool:
        return filter_name in self.filters


def find_font() -> Path | None:
    """A TrueType font for drawtext (fontconfig may be missing, so a file path is used)."""
    found: list[Path] = []
    for root in _FONT_DIRS:
        if os.path.isdir(root):
            found.extend(Path(root).rglob("*.ttf"))
    for name in _FONT_PREFERENCE:
        for path in found:
            if path.name == name:
                return path
    return min(found, default=None)


def lavfi_source(name: str, **options: object) -> str:
    """A lavfi source description (`flite=textfile=...`) with values escaped at both graph levels."""

    args = ":".join(f"{key}={_escape(str(value), _OPTION_SPECIALS)}" for key, value in options.items())
    return _escape(f"{name}={args}" if args else name, _GRAPH_SPECIALS)


_OPTION_SPECIALS = "\\':="
_GRAPH_SPECIALS = "\\'[],;"


def _escape(text: str, specials: str) -> str:
    return "".join("\\" + c if c in specials else c for c in text)


@dataclass(frozen=True, slots=True)
class ProgressSample:
    """One `-progress` block."""

    out_time_s: float | None
    speed: float | None
    frame: int | None
    total_size: int | None
    ended: bool


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    text = text.strip().rstrip("x")
    if not text or text == "N/A":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _clock_seconds(text: str | None) -> float | None:
    if not text or text.strip() == "N/A":
        return None
    try:
        hours, minutes, seconds = text.strip().split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def sample_from_block(block: dict[str, str]) -> ProgressSample:
    micros = _number(block.get("out_time_us"))
    if micros is None:
        micros = _number(block.get("out_time_ms"))  # microseconds too, despite the name
    out_time = micros / 1e6 if micros is not None else _clock_seconds(block.get("out_time"))
    frame, size = _number(block.get("frame")), _number(block.get("total_size"))
    return ProgressSample(
        out_time_s=max(0.0, out_time) if out_time is not None else None,
        speed=_number(block.get("speed")),
        frame=int(frame) if frame is not None else None,
        total_size=int(size) if size is not None else None,
        ended=block.get("progress") == "end",
    )


class ProgressReader:
    """Reads the blocks ffmpeg appends to a `-progress` file, from where it stopped last time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._block: dict[str, str] = {}
        self.latest: ProgressSample | None = None

    def poll(self) -> ProgressSample | None:
        """The newest complete block written since the last call, or None."""
        try:
            with open(self.path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size < self._offset:  # rewritten by a new ffmpeg
                    self._offset, self._partial, self._block = 0, b"", {}
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return None
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        newest = None
        for raw in lines:
            key, _, value = raw.decode("utf-8", "replace").strip().partition("=")
            if not key:
                continue
            self._block[key] = value
            if key == "progress":
                newest = sample_from_block(self._block)
                self._block = {}
        if newest is not None:
            self.latest = newest
        return newest


def last_progress(path: Path) -> ProgressSample | None:
    """The last complete block of a progress file (what a finished encode reported last)."""
    reader = ProgressReader(path)
    reader.poll()
    return reader.latest


class Encoder:
    """One ffmpeg child. stdin is a pipe so `stop()` can ask for `q`; stderr goes to a log file, or
    to a pipe nobody reads when `pipe_stderr` (the stderr-deadlock fault)."""

    def __init__(
        self, args: Sequence[str], *, progress_path: Path, log_path: Path | None, pipe_stderr: bool = False
    ) -> None:
        self.args = [*args[:1], "-progress", str(progress_path), "-stats_period", "0.25", *args[1:]]
        self.progress_path = progress_path
        self.log_path = None if pipe_stderr else log_path
        self.pipe_stderr = pipe_stderr
        self.reader = ProgressReader(progress_path)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the encoder has not been started")
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.progress_path.unlink()
        stderr: Any
        if self.pipe_stderr:
            stderr = subprocess.PIPE
        else:
            assert self.log_path is not None, "an encoder needs a log file unless stderr is piped"
            self._log = stderr = open(self.log_path, "wb")  # noqa: SIM115 - closed in _release()
        try:
            self._process = subprocess.Popen(
                self.args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, close_fds=True
            )
        except OSError:
            self._release()
            raise

    def poll(self) -> int | None:
        code = self.process.poll()
        if code is not None:
            self._release()
        return code

    def wait(self, timeout: float | None = None) -> int:
        code = self.process.wait(timeout)
        self._release()
        return code

    def stop(self, grace: float) -> int:
        """Ask ffmpeg to quit with `q` (it finishes the file cleanly), kill it after `grace` seconds."""
        process = self.process
        if process.poll() is None and process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.write(b"q")
                process.stdin.flush()
        try:
            return self.wait(grace)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int:
        process = self.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
        return self.wait()

    def stderr_tail(self, limit: int = 2000) -> str | None:
        """The end of ffmpeg's log (stats lines use carriage returns: the last one is kept)."""
        if self.log_path is None:
            return None
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(0, os.fstat(fh.fileno()).st_size - 8 * limit))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return None
        lines = [line.rsplit("\r", 1)[-1] for line in text.splitlines() if line.strip()]
        return "\n".join(lines)[-limit:] or None

    def _release(self) -> None:
        process = self._process
        if process is not None and process.returncode is not None:
            for stream in (process.stdin, process.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What ffprobe says about a finished file."""

    duration_s: float
    size_bytes: int
    format_name: str
    width: int | None
    height: int | None
    has_audio: bool


def probe(path: Path, tools: FfmpegTools) -> ProbeResult:
    """ffprobe a file; ffmpeg.Error (with stderr) when it cannot be read as media."""
    info: dict[str, Any] = ffmpeg.probe(str(path), cmd=tools.ffprobe)
    fmt = info.get("format", {})
    streams = info.get("streams", [])
    video: dict[str, Any] = next((s for s in streams if s.get("codec_type") == "video"), {})
    return ProbeResult(
        duration_s=float(fmt.get("duration") or 0.0),
        size_bytes=int(fmt.get("size") or 0),
        format_name=str(fmt.get("format_name", "")),
        width=int(video["width"]) if "width" in video else None,
        height=int(video["height"]) if "height" in video else None,
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
    )

"""What the collectors saw about one job; every field None/empty means "could not see", never "false"."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Fact:
    """One evidence item as shown to users: where it came from and what it says."""

    source: str
    fact: str


@dataclass(slots=True)
class EncoderEvidence:
    """The encoder's own account: ffmpeg's `-progress` file or its stderr log."""

    path: str
    kind: str  # "progress" (native -progress file) or "log" (ffmpeg stderr, Aura)
    exists: bool = False
    mtime: float | None = None
    size: int | None = None
    out_time_s: float | None = None
    speed: float | None = None
    ended: bool = False  # progress=end, or "muxing overhead" in the log
    errors: list[str] = field(default_factory=list)
    output_announced: str | None = None
    frames: int | None = None
    unread: str | None = None  # why the file was not read (missing, refused: a FIFO, outside the roots...)
    exit_code: int | None = None  # Aura's `Exit Code: N` trailer: ffmpeg has exited, with this code


@dataclass(slots=True)
class ProcessEvidence:
    role: str  # "worker" or "encoder"
    pid: int
    exists: bool = False
    status: str | None = None  # psutil status: running, sleeping, stopped, zombie, disk-sleep...
    cpu_delta_s: float | None = None  # CPU seconds used during the sample window
    window_s: float = 0.0
    # CPU seconds over the last few seconds, from notes taken by earlier diagnoses (activity.py); None: unknown
    recent_cpu_s: float | None = None
    recent_window_s: float | None = None
    started_at: float | None = None
    reused: bool = False  # a different process now holds the pid
    name: str | None = None
    children: int = 0


@dataclass(slots=True)
class OutputEvidence:
    path: str
    exists: bool = False
    size: int | None = None
    mtime: float | None = None
    grew_bytes: int | None = None  # growth during the sample window
    probed: bool = False
    probe_error: str | None = None
    duration_s: float | None = None
    truncated: str | None = None  # why the container is incomplete, when it is
    width: int | None = None
    height: int | None = None
    unprobed: str | None = None  # why it was not (fully) probed: not a regular file, not a video extension...


@dataclass(slots=True)
class DiskEvidence:
    path: str
    free_bytes: int
    total_bytes: int


@dataclass(slots=True)
class LogLine:
    source: str
    text: str
    at: float | None = None


@dataclass(slots=True)
class Evidence:
    """Everything gathered for one diagnosis, plus what could not be seen and why."""

    record_path: str
    record_mtime: float | None = None
    encoder: EncoderEvidence | None = None
    processes: list[ProcessEvidence] = field(default_factory=list)
    output: OutputEvidence | None = None
    disks: list[DiskEvidence] = field(default_factory=list)
    log_tail: list[LogLine] = field(default_factory=list)
    sse_subscribers: int | None = None
    retry_history: list[str] = field(default_factory=list)
    unseen: list[Fact] = field(default_factory=list)

    def missing(self, source: str, why: str) -> None:
        self.unseen.append(Fact(source, why))

"""Is the output video whole? Probed, never read: stat, top-level MP4 boxes, then ffprobe under a deadline.

An output path comes from an untrusted record, so only a regular file with a video container extension
is probed (opened O_NONBLOCK|O_NOFOLLOW and checked with fstat); the box walk is capped in boxes and
bytes; ffprobe gets the already-opened file (so a swap after the check changes nothing), only the
`file` protocol, the demuxer its extension names (a `.mp4` that is really an HLS playlist cannot pull
segments) and a hard deadline after which its whole process group is killed and reaped.

What ffprobe said is kept per file identity (device, inode, size, mtime, ctime of the opened descriptor):
an explain of a file that has not changed since its last probe starts no ffprobe (each costs ~100 ms of
CPU, most of it loading libav, which a burst of explains would otherwise pay 50 times).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import psutil

from .evidence import OutputEvidence

PROBE_TIMEOUT_S = 2.0
MAX_BOXES = 10_000  # a fragmented hour of video has a few thousand moof/mdat pairs; a box bomb has millions
MAX_PROBE_OUTPUT = 1 << 20  # ffprobe's JSON for format + streams is a few KiB
PROBE_MEMORY = 1 << 30  # address space for ffprobe: a hostile file cannot make it eat the host

PROBE_NICE = 10  # ffprobe yields the cores to the sidecar's event loop (SSE, /metrics) during a burst
PROBE_CACHE_MAX = 4096  # answers remembered (a few hundred bytes each)

# What ffprobe said of one file identity: (probed, probe_error, duration_s, width, height).
_Answer = tuple[bool, str | None, float | None, int | None, int | None]
_answers: OrderedDict[tuple[object, ...], _Answer] = OrderedDict()
_answers_lock = threading.Lock()
probes_run = 0  # ffprobe processes started since start (evidence for tests and debugging)
probes_cached = 0  # probes answered from an unchanged file's earlier answer

# Container extension -> the ffprobe demuxer forced for it (never left to content sniffing).
DEMUXERS = {
    ".mp4": "mov",
    ".m4v": "mov",
    ".mov": "mov",
    ".3gp": "mov",
    ".mkv": "matroska",
    ".webm": "matroska",
    ".avi": "avi",
    ".ts": "mpegts",
    ".m2ts": "mpegts",
    ".mts": "mpegts",
    ".mxf": "mxf",
    ".flv": "flv",
    ".mpg": "mpeg",
    ".mpeg": "mpeg",
    ".wmv": "asf",
    ".ogv": "ogg",
}
_MP4_SUFFIXES = (".mp4", ".m4v", ".mov", ".3gp")
_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symbolic link",
}


def container_of(path: str) -> str | None:
    """The demuxer for `path`'s extension, or None when it is not a video container we probe."""
    return DEMUXERS.get(os.path.splitext(path)[1].lower())


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def mp4_truncation(path: str, size: int) -> str | None:
    """Why an MP4's top-level boxes do not fit the file, or None when they do (or cannot be checked)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    try:
        return box_truncation(fd, size)[0]
    finally:
        os.close(fd)


def box_truncation(fd: int, size: int) -> tuple[str | None, str | None]:
    """(why the top-level boxes do not fit, why the walk stopped early) for an open MP4.

    ffprobe accepts a truncated faststart file (index first) and reports its full duration, so the box
    sizes are the reliable check. At most MAX_BOXES 16-byte headers are read: nothing grows with the file.
    """
    offset, boxes, has_moov = 0, 0, False
    try:
        while offset < size:
            if boxes >= MAX_BOXES:
                return None, (
                    f"the box check stopped after {MAX_BOXES} top-level boxes at byte {offset} of {size} "
                    "(a real MP4 has a few; this file is unusual or hostile)"
                )
            boxes += 1
            header = os.pread(fd, 16, offset)
            if len(header) < 8:
                return f"the file ends inside a box header at byte {offset}", None
            box_size, box_type = struct.unpack(">I4s", header[:8])
            name = box_type.decode("latin-1")
            if box_size == 1:
                if len(header) < 16:
                    return f"the file ends inside the {name!r} box header", None
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:
                box_size = size - offset
            if box_size < 8:
                return f"the {name!r} box at byte {offset} has an impossible size {box_size}", None
            if offset + box_size > size:
                missing = offset + box_size - size
                return (
                    f"the {name!r} box declares {box_size} bytes from byte {offset} but the file ends "
                    f"after {size} bytes ({missing} bytes missing)"
                ), None
            has_moov = has_moov or name == "moov"
            offset += box_size
    except OSError as exc:
        return None, f"cannot read the boxes: {exc.strerror}"
    if not has_moov:
        return "there is no 'moov' index box (the encoder never finished writing the file)", None
    return None, None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill ffprobe's whole process group and reap it, so nothing outlives the probe."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    try:
        proc.communicate(timeout=2)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process in D state; wait() still reaps it
        proc.wait()


@dataclass(slots=True)
class Probe:
    """One output check: the file is opened and checked at start(), ffprobe runs until finish()."""

    evidence: OutputEvidence
    timeout: float = PROBE_TIMEOUT_S
    deadline: float = 0.0
    fd: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    identity: tuple[object, ...] | None = None  # the opened file's identity, the key of its cached answer

    @classmethod
    def start(cls, path: str, timeout: float = PROBE_TIMEOUT_S) -> Probe:
        """lstat, open and check the file, walk its boxes and start ffprobe; nothing here blocks."""
        probe = cls(OutputEvidence(path=path), timeout, time.monotonic() + timeout)
        try:
            probe._open()
            if probe.fd is not None:
                probe._spawn()
        except BaseException:
            probe.close()
            raise
        return probe

    def _open(self) -> None:
        ev = self.evidence
        try:
            st = os.lstat(ev.path)
        except OSError:
            return  # missing: the rules say so; nothing to probe
        ev.exists = True
        demuxer = container_of(ev.path)
        if not stat.S_ISREG(st.st_mode):
            ev.unprobed = f"{ev.path} is {_kind(st.st_mode)}, not a regular file: not probed"
            return
        ev.size, ev.mtime = st.st_size, st.st_mtime
        if demuxer is None:
            ev.unprobed = (
                f"{ev.path} does not have a video container extension ({', '.join(sorted(DEMUXERS))}): not probed"
            )
            return
        if st.st_size == 0:
            return
        try:
            fd = os.open(ev.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            ev.unprobed = f"cannot open {ev.path}: {exc.strerror}"
            return
        self.fd = fd
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between lstat and open
            ev.unprobed = f"{ev.path} is {_kind(st.st_mode)}, not a regular file: not probed"
            self.close()
            return
        ev.size, ev.mtime = st.st_size, st.st_mtime
        # ctime too: a rewrite that restores size and mtime (utime) still changes it.
        self.identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, demuxer)
        if ev.path.lower().endswith(_MP4_SUFFIXES):
            ev.truncated, stopped = box_truncation(fd, st.st_size)
            if stopped:
                # A file this odd is not handed to ffprobe: it would only spend its whole deadline on it.
                ev.unprobed = f"{ev.path}: {stopped}; ffprobe was not run on it"
                self.close()

    @property
    def target(self) -> str:
        """What ffprobe is told to open: the checked descriptor, through the file protocol."""
        return f"file:/dev/fd/{self.fd}"

    def _spawn(self) -> None:
        global probes_run, probes_cached  # plain counters, guarded by _answers_lock
        assert self.fd is not None
        with _answers_lock:
            answer = _answers.get(self.identity) if self.identity is not None else None
            if answer is not None:
                _answers.move_to_end(self.identity)  # type: ignore[arg-type]
                probes_cached += 1
            else:
                probes_run += 1
        if answer is not None:
            ev = self.evidence
            ev.probed, ev.probe_error, ev.duration_s, ev.width, ev.height = answer
            self.close()  # nothing left to run: finish() only closes
            return
        binary = shutil.which("ffprobe")
        if binary is None:
            self.evidence.probe_error = "ffprobe is not installed (Debian: apt-get install ffmpeg)"
            return
        # The child opens our fd through /dev/fd: the very inode we checked, whatever the path is now.
        args = [
            binary,
            "-v",
            "error",
            "-protocol_whitelist",
            "file",
            "-f",
            container_of(self.evidence.path) or "mov",
            "-show_entries",
            "format=duration,format_name:stream=codec_type,width,height",
            "-of",
            "json",
            self.target,
        ]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(self.fd,),
            start_new_session=True,  # its own process group: the kill reaches anything it starts
        )
        # Exited already, or limits unsupported: the deadline still bounds it.
        with contextlib.suppress(psutil.Error, OSError, ValueError):
            child = psutil.Process(self.proc.pid)
            child.rlimit(psutil.RLIMIT_AS, (PROBE_MEMORY, PROBE_MEMORY))
            child.nice(PROBE_NICE)

    def finish(self) -> OutputEvidence:
        """Wait for ffprobe until the deadline (then kill it) and fill in what it said."""
        try:
            if self.proc is not None:
                self._collect(self.proc)
        finally:
            self.close()
        return self.evidence

    def _remember(self) -> None:
        """Keep what ffprobe said of this file identity (not a missed deadline: that says how busy we were)."""
        if self.identity is None:
            return
        ev = self.evidence
        with _answers_lock:
            _answers[self.identity] = (ev.probed, ev.probe_error, ev.duration_s, ev.width, ev.height)
            _answers.move_to_end(self.identity)
            while len(_answers) > PROBE_CACHE_MAX:
                _answers.popitem(last=False)

    def _collect(self, proc: subprocess.Popen[bytes]) -> None:
        ev = self.evidence
        try:
            out, err = proc.communicate(timeout=max(0.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill(proc)
            ev.probe_error = f"ffprobe did not answer within the {self.timeout:g} s deadline and was killed"
            return
        if proc.returncode != 0:
            # ffprobe names the descriptor it was given; say the path the engineer knows instead.
            text = err.decode("utf-8", errors="replace").replace(self.target, ev.path)
            lines = text.strip().splitlines()
            ev.probe_error = lines[-1][:300] if lines else f"ffprobe failed (exit {proc.returncode})"
            if proc.returncode > 0:  # ffprobe's own verdict on the file; a signal says nothing about it
                self._remember()
            return
        data = _json(out[:MAX_PROBE_OUTPUT])
        if data is None:
            ev.probe_error = "ffprobe printed no usable JSON"
            self._remember()
            return
        ev.probed = True
        fmt = data.get("format") or {}
        try:
            ev.duration_s = float(fmt["duration"]) if "duration" in fmt else None
        except (TypeError, ValueError):
            ev.duration_s = None
        for stream in data.get("streams") or []:
            if isinstance(stream, dict) and stream.get("codec_type") == "video":
                ev.width, ev.height = stream.get("width"), stream.get("height")
                break
        self._remember()

    def close(self) -> None:
        """Kill ffprobe if still running and close the file; safe to call twice."""
        if self.proc is not None and self.proc.returncode is None:
            _kill(self.proc)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _json(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def inspect_output(path: str, probe_timeout: float = PROBE_TIMEOUT_S) -> OutputEvidence:
    """Probe `path` start to finish; `unprobed` on the result says why it was not probed, if it was not."""
    return Probe.start(path, probe_timeout).finish()

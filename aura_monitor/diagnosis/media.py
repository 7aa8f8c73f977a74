"""Is the output video whole? MP4 box structure, then ffprobe (through ffmpeg-python) with a deadline."""

from __future__ import annotations

import os
import struct
import threading
from typing import Any

import ffmpeg

from .evidence import OutputEvidence

PROBE_TIMEOUT_S = 2.0
_MP4_SUFFIXES = (".mp4", ".m4v", ".mov")


def mp4_truncation(path: str, size: int) -> str | None:
    """Why an MP4's top-level boxes do not fit the file, or None when they do.

    ffprobe accepts a truncated faststart file (index first) and reports its full duration, so the
    box sizes are the reliable check.
    """
    offset, seen = 0, []
    try:
        with open(path, "rb") as fh:
            while offset < size:
                fh.seek(offset)
                header = fh.read(16)
                if len(header) < 8:
                    return f"the file ends inside a box header at byte {offset}"
                box_size, box_type = struct.unpack(">I4s", header[:8])
                name = box_type.decode("latin-1")
                if box_size == 1:
                    if len(header) < 16:
                        return f"the file ends inside the {name!r} box header"
                    box_size = struct.unpack(">Q", header[8:16])[0]
                elif box_size == 0:
                    box_size = size - offset
                if box_size < 8:
                    return f"the {name!r} box at byte {offset} has an impossible size {box_size}"
                if offset + box_size > size:
                    return (
                        f"the {name!r} box declares {box_size} bytes from byte {offset} but the file ends "
                        f"after {size} bytes ({offset + box_size - size} bytes missing)"
                    )
                seen.append(name)
                offset += box_size
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    if "moov" not in seen:
        return "there is no 'moov' index box (the encoder never finished writing the file)"
    return None


def _probe(path: str, timeout: float) -> tuple[dict[str, Any] | None, str | None]:
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["data"] = ffmpeg.probe(path)
        except ffmpeg.Error as exc:
            stderr = (exc.stderr or b"").decode("utf-8", errors="replace").strip().splitlines()
            result["error"] = stderr[-1] if stderr else "ffprobe failed"
        except (OSError, ValueError) as exc:
            result["error"] = f"ffprobe could not run: {exc}"

    # ffmpeg-python's probe() has no timeout: run it aside so a hung mount cannot hang the diagnosis.
    worker = threading.Thread(target=work, name="aura-ffprobe", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return None, f"ffprobe did not answer within {timeout:g} s"
    return result.get("data"), result.get("error")


def inspect_output(path: str, probe_timeout: float = PROBE_TIMEOUT_S) -> OutputEvidence:
    evidence = OutputEvidence(path=path)
    try:
        st = os.stat(path)
    except OSError:
        return evidence
    evidence.exists, evidence.size, evidence.mtime = True, st.st_size, st.st_mtime
    if st.st_size == 0:
        return evidence
    if path.lower().endswith(_MP4_SUFFIXES):
        evidence.truncated = mp4_truncation(path, st.st_size)
    data, error = _probe(path, probe_timeout)
    evidence.probed = data is not None
    evidence.probe_error = error
    if data:
        fmt = data.get("format", {})
        try:
            evidence.duration_s = float(fmt["duration"]) if "duration" in fmt else None
        except (TypeError, ValueError):
            evidence.duration_s = None
        for stream in data.get("streams", []):
            if stream.get("codec_type") == "video":
                evidence.width, evidence.height = stream.get("width"), stream.get("height")
                break
    return evidence

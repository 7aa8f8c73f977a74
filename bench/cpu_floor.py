"""The floor of CPU per record update: one thread doing inotify read + open/read + json.loads, nothing else.

    python -m bench.cpu_floor JOBS_DIR   # watches each job dir, says "ready", reads until its stdin closes

Run as its own process beside the writer that the sidecar's figure uses (bench/cpu_per_update.py), so the
parent can read its CPU: the least any watcher spends on an update (the kernel's events, one read of the
record, its parse), with no thread hand-offs, no tracker, no views. At the end it prints, as JSON, the
events it read and the records it parsed (a floor that skipped work would be no floor).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import select
import struct
import sys
from pathlib import Path

# The sidecar's mask (watch/inotify.py): a record is announced by close-after-write or by a rename into place.
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of name
RECORD = b"job.json"


def _libc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c")
    if name is None:
        raise OSError("bench.cpu_floor: the C library was not found (inotify needs it)")
    return ctypes.CDLL(name, use_errno=True)


def watch(jobs_dir: Path) -> tuple[int, dict[int, bytes]]:
    """An inotify fd watching every job dir under `jobs_dir`, and each watch's record path."""
    libc = _libc()
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "bench.cpu_floor: inotify_init1 failed")
    records: dict[int, bytes] = {}
    for folder in sorted(p for p in jobs_dir.iterdir() if p.is_dir()):
        wd = libc.inotify_add_watch(fd, bytes(folder), IN_CLOSE_WRITE | IN_MOVED_TO)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"bench.cpu_floor: cannot watch {folder} (fs.inotify.max_user_watches?)")
        records[wd] = bytes(folder / "job.json")
    return fd, records


def main() -> int:
    fd, records = watch(Path(sys.argv[1]))
    print("ready", flush=True)
    stdin = sys.stdin.fileno()
    events = parsed = 0
    while True:
        readable, _, _ = select.select([fd, stdin], [], [])
        if fd in readable:
            buffer = os.read(fd, 1 << 16)
            offset = 0
            while offset < len(buffer):
                wd, _mask, _cookie, length = _HEADER.unpack_from(buffer, offset)
                start = offset + _HEADER.size
                name = buffer[start : start + length].rstrip(b"\0")
                offset = start + length
                events += 1
                if name == RECORD:
                    with open(records[wd], "rb") as record:
                        json.loads(record.read())
                    parsed += 1
        elif stdin in readable:  # the parent closed our stdin: the measurement is over
            break
    print(json.dumps({"events": events, "parsed": parsed}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

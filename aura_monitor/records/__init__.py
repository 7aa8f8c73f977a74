"""Reading job.json files of either format into a JobRecord."""

from __future__ import annotations

import json
import os
from functools import lru_cache

from ..exceptions import RecordError, RecordUnreadable
from ..jobs.model import JobRecord
from .aura import is_aura, parse_aura
from .native import SCHEMA, is_native, parse_native
from .safe_read import ReadRefused, ReadRoots, open_regular

# Aura's Logs and ProgressHistory grow without bound; beyond this a file is refused, not parsed.
MAX_RECORD_BYTES = 64 * 1024 * 1024

__all__ = ["MAX_RECORD_BYTES", "SCHEMA", "parse_record", "read_file", "read_record"]


def parse_record(data: bytes) -> JobRecord:
    """Parse and normalize the bytes of one job.json; RecordError says what is wrong."""
    if not data.strip():
        raise RecordUnreadable("record is empty (a writer is probably rewriting it in place)")
    if len(data) > MAX_RECORD_BYTES:
        raise _too_big(len(data))
    try:
        decoded = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise RecordUnreadable(f"record is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(decoded, dict):
        raise RecordError(f"record is a JSON {type(decoded).__name__}, expected an object")
    if is_native(decoded):
        return parse_native(decoded)
    if is_aura(decoded):
        return parse_aura(decoded)
    raise RecordError("record has neither Aura's Id/Status keys nor a native 'schema' field")


def _too_big(size: int) -> RecordUnreadable:
    return RecordUnreadable(f"record is {size} bytes, above the {MAX_RECORD_BYTES}-byte limit")


@lru_cache(maxsize=16)
def _jobs_root(jobs_dir: str) -> ReadRoots:
    return ReadRoots([jobs_dir])  # cached: resolving the root costs more than reading a small record


def read_file(path: str) -> tuple[bytes, os.stat_result]:
    """The bytes of one record file and the fstat of the very file read; OSError as the OS raised it.

    `path` is `<jobs dir>/<id>/job.json`, written by less-trusted processes: a FIFO, a device or a link
    out of the jobs dir is refused (RecordUnreadable with the reason) without blocking or reading it.
    Reads exactly what fstat announces (plus one byte, to notice a file still growing): asking for the
    size limit instead made every read allocate, map and unmap 64 MiB, 5x the cost of the whole read.
    """
    absolute = os.path.abspath(path)
    try:
        fd, st = open_regular(absolute, _jobs_root(os.path.dirname(os.path.dirname(absolute))))
    except ReadRefused as exc:
        raise RecordUnreadable(f"{path} was not read: {exc.reason}; replace it with a regular job.json") from None
    try:
        if st.st_size > MAX_RECORD_BYTES:
            raise _too_big(st.st_size)
        want = st.st_size + 1
        data = os.read(fd, want)
        if len(data) == want:  # written to since fstat: read on to the end
            chunks = [data]
            total = len(data)
            while total <= MAX_RECORD_BYTES and (more := os.read(fd, 1 << 20)):
                chunks.append(more)
                total += len(more)
            data = b"".join(chunks)
    finally:
        os.close(fd)
    return data, st


def read_record(path: str) -> JobRecord:
    """Read and parse one job.json from disk."""
    try:
        data, _ = read_file(path)
    except OSError as exc:
        raise RecordUnreadable(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_record(data)

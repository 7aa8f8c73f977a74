"""Reading job.json files of either format into a JobRecord."""

from __future__ import annotations

import json

from ..exceptions import RecordError, RecordUnreadable
from ..model import JobRecord
from .aura import is_aura, parse_aura
from .native import SCHEMA, is_native, parse_native

# Aura's Logs and ProgressHistory grow without bound; beyond this a file is refused, not parsed.
MAX_RECORD_BYTES = 64 * 1024 * 1024

__all__ = ["MAX_RECORD_BYTES", "SCHEMA", "parse_record", "read_record"]


def parse_record(data: bytes) -> JobRecord:
    """Parse and normalize the bytes of one job.json; RecordError says what is wrong."""
    if not data.strip():
        raise RecordUnreadable("record is empty (a writer is probably rewriting it in place)")
    if len(data) > MAX_RECORD_BYTES:
        raise RecordUnreadable(f"record is {len(data)} bytes, above the {MAX_RECORD_BYTES}-byte limit")
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


def read_record(path: str) -> JobRecord:
    """Read and parse one job.json from disk."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_RECORD_BYTES + 1)
    except OSError as exc:
        raise RecordUnreadable(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_record(data)

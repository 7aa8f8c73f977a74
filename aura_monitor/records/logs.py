"""A job's log lines as text (Aura's `GET /api/jobs/{id}/logs`), read only from inside the jobs dir."""

from __future__ import annotations

import json
import os

from ..jobs.model import JobRecord, RecordFormat
from . import read_file
from .fields import clean_text
from .layout import RECORD_NAME
from .safe_read import ReadRefused, ReadRoots, read_tail

NO_LOGS = "No logs available for this job"
# A native job's own log file is served from its end: the lines a support engineer needs are the last ones.
LOG_FILE_TAIL_BYTES = 256 * 1024


def job_log_text(jobs_dir: str, job_id: str, record: JobRecord, roots: ReadRoots) -> str:
    """Aura: the record's whole `Logs` joined by newlines; native: the tail of its log file under `roots`.
    Falls back to the last good record's tail when the file is mid-rewrite or refused; "" when there is none."""
    if record.format is RecordFormat.AURA:
        lines = _aura_logs(os.path.join(jobs_dir, job_id, RECORD_NAME))
    else:
        lines = _native_log(record.job_log, roots)
    if lines is None:
        lines = list(record.logs_tail)
    return "\n".join(lines)


def _aura_logs(path: str) -> list[str] | None:
    try:
        data, _ = read_file(path)
        decoded = json.loads(data)
    except (OSError, ValueError, RecursionError, ReadRefused):
        return None  # mid-rewrite (Aura writes in place) or refused: the last good record's tail is served
    logs = decoded.get("Logs") if isinstance(decoded, dict) else None
    if not isinstance(logs, list):
        return None
    return [clean_text(line) for line in logs if isinstance(line, str)]


def _native_log(path: str | None, roots: ReadRoots) -> list[str] | None:
    if not path:
        return None
    try:
        raw, st = read_tail(path, roots, LOG_FILE_TAIL_BYTES)
    except (OSError, ReadRefused):
        return None
    text = raw.decode("utf-8", errors="replace")
    if st.st_size > LOG_FILE_TAIL_BYTES:
        text = text.split("\n", 1)[-1]  # the first line of a tail is cut mid-line
    return [clean_text(line) for line in text.splitlines()]

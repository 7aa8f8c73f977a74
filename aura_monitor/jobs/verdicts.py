"""Verdict codes and severities: the one spelling of the diagnosis vocabulary (docs/diagnosis.md).

Codes are stable: add, never rename. The board's copy (board/format.js) is pinned to this enum by a test.
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class Verdict(StrEnum):
    RECORD_UNREADABLE = "record_unreadable"
    DISK_FULL = "disk_full"
    COMPLETION_NOT_PROPAGATED = "completion_not_propagated"
    FAILURE_NOT_PROPAGATED = "failure_not_propagated"
    PROCESS_DEAD = "process_dead"
    PROCESS_HUNG = "process_hung"
    PROGRESS_CAPPED = "progress_capped"
    PROGRESS_NOT_REPORTED = "progress_not_reported"
    UPSTREAM_ERRORS = "upstream_errors"
    KILLED_WHILE_PROGRESSING = "killed_while_progressing"
    STALL_KILLED = "stall_killed"
    OUTPUT_MISSING = "output_missing"
    OUTPUT_INVALID = "output_invalid"
    STATUS_INCONSISTENT = "status_inconsistent"
    QUEUED_TOO_LONG = "queued_too_long"
    PAUSED_STALLED = "paused_stalled"
    ABANDONED = "abandoned"
    NO_PROGRESS = "no_progress"
    FAILED = "failed"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FINALIZING = "finalizing"
    HEALTHY = "healthy"


# The verdict is the first finding in this order: most specific and most actionable first.
PRIORITY = {code: rank for rank, code in enumerate(Verdict)}


_CRITICAL = {
    Verdict.RECORD_UNREADABLE,
    Verdict.DISK_FULL,
    Verdict.STATUS_INCONSISTENT,
    Verdict.COMPLETION_NOT_PROPAGATED,
    Verdict.FAILURE_NOT_PROPAGATED,
    Verdict.PROCESS_DEAD,
    Verdict.PROCESS_HUNG,
    Verdict.ABANDONED,
    Verdict.KILLED_WHILE_PROGRESSING,
    Verdict.OUTPUT_MISSING,
    Verdict.OUTPUT_INVALID,
}
_INFO = {Verdict.HEALTHY, Verdict.FINALIZING, Verdict.COMPLETED, Verdict.CANCELLED}

# How a verdict is badged when no finding says otherwise (the board's colours, docs/diagnosis.md's ranking).
SEVERITY: dict[Verdict, Severity] = {
    code: Severity.CRITICAL if code in _CRITICAL else Severity.INFO if code in _INFO else Severity.WARNING
    for code in Verdict
}

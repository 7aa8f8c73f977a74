"""Findings: the diagnosis vocabulary (docs/diagnosis.md). Codes are stable: add, never rename."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .evidence import Fact


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class Code(StrEnum):
    RECORD_UNREADABLE = "record_unreadable"
    DISK_FULL = "disk_full"
    COMPLETION_NOT_PROPAGATED = "completion_not_propagated"
    PROCESS_DEAD = "process_dead"
    PROCESS_HUNG = "process_hung"
    PROGRESS_CAPPED = "progress_capped"
    PROGRESS_NOT_REPORTED = "progress_not_reported"
    UPSTREAM_ERRORS = "upstream_errors"
    KILLED_WHILE_PROGRESSING = "killed_while_progressing"
    OUTPUT_MISSING = "output_missing"
    OUTPUT_INVALID = "output_invalid"
    STATUS_INCONSISTENT = "status_inconsistent"
    QUEUED_TOO_LONG = "queued_too_long"
    ABANDONED = "abandoned"
    NO_PROGRESS = "no_progress"
    FAILED = "failed"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FINALIZING = "finalizing"
    HEALTHY = "healthy"


# The verdict is the first finding in this order: most specific and most actionable first.
PRIORITY = {code: rank for rank, code in enumerate(Code)}


@dataclass(slots=True)
class Finding:
    code: Code
    severity: Severity
    confidence: float
    summary: str
    evidence: list[Fact] = field(default_factory=list)
    remediation: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code.value,
            "severity": self.severity.value,
            "confidence": round(self.confidence, 2),
            "summary": self.summary,
            "evidence": [{"source": f.source, "fact": f.fact} for f in self.evidence],
            "remediation": list(self.remediation),
        }

"""Findings: the diagnosis vocabulary (docs/diagnosis.md). Codes are stable: add, never rename."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..jobs.verdicts import Severity, Verdict
from .evidence import Fact


@dataclass(slots=True)
class Finding:
    code: Verdict
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

"""Findings: the diagnosis vocabulary (docs/diagnosis.md). Codes are stable: add, never rename."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from ..jobs.verdicts import Severity, Verdict
from .evidence import Fact

SEVERITY_WEIGHT = {Severity.CRITICAL: 2, Severity.WARNING: 1, Severity.INFO: 0}


class Basis(IntEnum):
    """How directly a finding was observed: the first key of the ranking (docs/diagnosis.md, "Ranking")."""

    OBSERVED = 0  # fresh, specific evidence seen by this diagnosis: a stopped process, fresh provider errors
    INFERRED = 1  # an absence over a window (no CPU, no output, silence), or evidence that is no longer fresh
    DEFAULT = 2  # only the stall clock: no specific cause was found


@dataclass(slots=True)
class Finding:
    code: Verdict
    severity: Severity
    confidence: float
    summary: str
    evidence: list[Fact] = field(default_factory=list)
    remediation: list[str] = field(default_factory=list)
    basis: Basis = Basis.OBSERVED

    @property
    def rank(self) -> tuple[int, int, float]:
        """Sort key, smallest first: basis, then severity, then confidence (the code's PRIORITY breaks ties)."""
        return (int(self.basis), -SEVERITY_WEIGHT[self.severity], -round(self.confidence, 2))

    @property
    def strength(self) -> int:
        """How strongly this finding may overturn a held verdict: better basis first, then severity."""
        return (2 - int(self.basis)) * 3 + SEVERITY_WEIGHT[self.severity]

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code.value,
            "severity": self.severity.value,
            "confidence": round(self.confidence, 2),
            "basis": self.basis.name.lower(),
            "summary": self.summary,
            "evidence": [{"source": f.source, "fact": f.fact} for f in self.evidence],
            "remediation": list(self.remediation),
        }

"""Diagnosis rules: pure functions from (subject, evidence, thresholds, now) to ordered findings.

Rules about the record itself live here; the causes of a stuck active job in causes.py; the outcomes of
finished jobs in outcomes.py. Shared predicates and evidence facts are in context.py.
"""

from __future__ import annotations

from ..jobs.verdicts import PRIORITY, Severity, Verdict
from .causes import (
    rule_abandoned,
    rule_active,
    rule_completion_not_propagated,
    rule_no_progress,
    rule_process_dead,
    rule_process_hung,
    rule_progress_capped,
    rule_progress_not_reported,
    rule_queued,
    rule_upstream,
)
from .context import RuleContext, ago
from .evidence import Fact
from .findings import Finding
from .outcomes import rule_cancelled, rule_completed, rule_failed, rule_failure_not_propagated
from .paused import rule_paused_stalled

__all__ = ["RULES", "RuleContext", "diagnose"]


def rule_unreadable(ctx: RuleContext) -> Finding | None:
    s = ctx.subject
    if s.unreadable_since is None and s.record is not None:
        return None
    for_s = ctx.now - s.unreadable_since if s.unreadable_since is not None else None
    if s.record is not None and (for_s is None or for_s < ctx.unreadable_grace):
        return None
    duration = f" for {ago(for_s)}" if for_s is not None else ""
    kept = " The last good state is shown." if s.record else " No good state was ever read."
    return Finding(
        Verdict.RECORD_UNREADABLE,
        Severity.CRITICAL,
        0.95,
        f"job.json has been unreadable{duration} ({s.last_parse_error or 'unknown error'}).{kept}",
        [
            Fact(s.record_path, s.last_parse_error or "unreadable"),
            Fact("sidecar", f"{s.parse_failures} failed reads"),
        ],
        [
            f"Open {s.record_path} and check it is complete JSON; a writer may have crashed mid-write",
            "Check the disk holding the jobs dir is not full or read-only",
            "The sidecar retries on every change; nothing needs restarting once the file is whole again",
        ],
    )


def rule_disk(ctx: RuleContext) -> Finding | None:
    low = [d for d in ctx.evidence.disks if d.free_bytes < ctx.disk_floor_bytes]
    if not low:
        return None
    worst = min(low, key=lambda d: d.free_bytes)
    return Finding(
        Verdict.DISK_FULL,
        Severity.CRITICAL,
        0.9,
        f"Only {worst.free_bytes / 2**20:.0f} MiB free on the volume of {worst.path} "
        f"(floor {ctx.disk_floor_bytes / 2**20:.0f} MiB): renders and job records cannot be written.",
        [Fact(d.path, f"{d.free_bytes / 2**20:.0f} MiB free of {d.total_bytes / 2**30:.1f} GiB") for d in low],
        [
            f"Free space on the volume of {worst.path} (old renders, temp files, logs)",
            f"Then retry the job: {ctx.post('retry')}",
        ],
    )


def rule_inconsistent(ctx: RuleContext) -> Finding | None:
    record = ctx.subject.record
    if record is None or not record.inconsistencies:
        return None
    mixed = any("mixed record" in note or "contradicts" in note for note in record.inconsistencies)
    return Finding(
        Verdict.STATUS_INCONSISTENT,
        Severity.WARNING if not mixed else Severity.CRITICAL,
        0.9,
        f"The job record contradicts itself: {record.inconsistencies[0]}.",
        [Fact("job.json", note) for note in record.inconsistencies],
        [
            "Trust the evidence (output file, ffmpeg log) over the status field",
            "The writer applied fields of a refused status change (Aura keeps the old status but writes the rest); "
            "check the app log for an illegal transition",
            "An old Aura build numbers statuses differently: upgrade it, or read the timestamps",
        ],
    )


RULES = (
    rule_unreadable,
    rule_disk,
    rule_inconsistent,
    rule_completion_not_propagated,
    rule_failure_not_propagated,
    rule_process_dead,
    rule_process_hung,
    rule_progress_capped,
    rule_progress_not_reported,
    rule_upstream,
    rule_queued,
    rule_paused_stalled,
    rule_abandoned,
    rule_no_progress,
    rule_active,
    rule_completed,
    rule_failed,
    rule_cancelled,
)


def diagnose(ctx: RuleContext) -> list[Finding]:
    """Every finding that applies, most important first; never empty."""
    findings = [f for rule in RULES if (f := rule(ctx)) is not None]
    # Evidence first, then severity, then confidence (docs/diagnosis.md, "Ranking"): a critical guess drawn
    # from an absence (no CPU in a short window) must not outrank fresh, specific evidence of the cause.
    # A mild inconsistency (an ambiguous status number) is supporting evidence, never the verdict.
    findings.sort(
        key=lambda f: (
            f.code is Verdict.STATUS_INCONSISTENT and f.severity is not Severity.CRITICAL,
            *f.rank,
            PRIORITY[f.code],
        )
    )
    return findings

"""A Paused record that stopped changing: in Aura, Pause stops nothing, so it is stuck, not waiting."""

from __future__ import annotations

from ..jobs.model import JobStatus, RecordFormat
from ..jobs.verdicts import Severity, Verdict
from .context import RuleContext, ago, encoder_facts, output_facts, record_facts
from .findings import Finding

# Past this many thresholds with nothing changing anywhere, the app itself is the likelier culprit.
_QUIET_FACTOR = 4.0


def rule_paused_stalled(ctx: RuleContext) -> Finding | None:
    s, record, ev = ctx.subject, ctx.subject.record, ctx.evidence
    if record is None or record.status is not JobStatus.PAUSED or not s.stalled:
        return None
    since = s.since_progress(ctx.now) or 0.0
    where = f"at {record.percent:g}% in stage {record.stage or '?'}"
    if record.format is RecordFormat.AURA:
        semantics = (
            "In Aura, Pause only flips the Status field: the pipeline keeps running and its next progress update "
            "writes Running back. A Paused record that stops changing is as stuck as a Running one."
        )
        first = "Do not wait for a resume: nothing is paused behind this status in Aura, the work itself has stopped"
    else:
        semantics = "A paused job that stays paused past its threshold holds its slot and its user waits."
        first = "If your pipeline really paused it, resume it; otherwise its worker has stopped"
    quiet = since > _QUIET_FACTOR * (s.threshold or ctx.thresholds.default) and not ev.processes
    crashed = " Nothing else moved either: the app may have crashed or restarted while it was paused." if quiet else ""
    return Finding(
        Verdict.PAUSED_STALLED,
        Severity.CRITICAL if quiet else Severity.WARNING,
        0.8,
        f"Paused {where} and unchanged for {ago(since)} (threshold {s.threshold or 0:g} s). {semantics}{crashed}",
        record_facts(ctx) + encoder_facts(ctx) + output_facts(ctx),
        [
            first,
            "Read the app log for this job's stage around the time of the last progress",
            f"Cancel it in the app (Paused -> Canceled is allowed) and retry: {ctx.post('retry')}",
        ],
    )

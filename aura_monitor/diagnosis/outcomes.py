"""How a finished job ended: verified outputs, failures (and healthy renders killed as stalled), cancels."""

from __future__ import annotations

import re

from ..jobs.model import JobStatus
from ..jobs.verdicts import Severity, Verdict
from .context import RuleContext, ago, encoder_facts, output_facts, output_ok, record_facts
from .evidence import Fact
from .findings import Finding


def rule_completed(ctx: RuleContext) -> Finding | None:
    record = ctx.subject.record
    if record is None or record.status is not JobStatus.COMPLETED:
        return None
    out = ctx.evidence.output
    if not record.output_path or out is None or not out.exists or not out.size:
        where = record.output_path or "no output path at all"
        return Finding(
            Verdict.OUTPUT_MISSING,
            Severity.CRITICAL,
            0.95,
            f"The job says completed but there is nothing to download: {where}"
            f"{' is missing' if record.output_path and (out is None or not out.exists) else ''}"
            f"{' is empty' if out is not None and out.exists and not out.size else ''}.",
            record_facts(ctx) + output_facts(ctx) + encoder_facts(ctx),
            [
                "Check the render stage's log: the output was never written or was moved/deleted afterwards",
                f"Retry the job: POST /api/jobs/{ctx.subject.job_id}/retry",
            ],
        )
    if not output_ok(ctx):
        expected = record.expected_duration_s
        why = (
            out.truncated
            or out.probe_error
            or (
                f"duration {out.duration_s:.1f} s is far short of the expected {expected:.1f} s"
                if out.duration_s is not None and expected
                else "ffprobe could not read it"
            )
        )
        return Finding(
            Verdict.OUTPUT_INVALID,
            Severity.CRITICAL,
            0.9,
            f"The job says completed but its output {out.path} is not a whole video: {why}.",
            record_facts(ctx) + output_facts(ctx) + encoder_facts(ctx),
            [
                "Do not deliver this file",
                f"Retry the job: POST /api/jobs/{ctx.subject.job_id}/retry",
                "If it repeats, check free space and the encoder log for a crash during finalization",
            ],
        )
    assert out is not None
    size = f", {out.width}x{out.height}" if out.width else ""
    return Finding(
        Verdict.COMPLETED,
        Severity.INFO,
        0.95,
        f"Completed: {out.duration_s or 0:.1f} s video{size} at {out.path} verified with ffprobe.",
        record_facts(ctx) + output_facts(ctx),
        ["Nothing to do"],
    )


def _killed_while_progressing(ctx: RuleContext) -> Finding | None:
    record, enc = ctx.subject.record, ctx.evidence.encoder
    assert record is not None
    stall_kill = bool(record.error_code and record.error_code.startswith("E305-JOB_STALLED")) or bool(
        record.error_message and re.search(r"stall|no progress|stuck", record.error_message, re.IGNORECASE)
    )
    if not stall_kill or enc is None or enc.mtime is None:
        return None
    failed_at = record.completed_at or ctx.evidence.record_mtime or ctx.now
    gap = failed_at - enc.mtime
    if gap > max(ctx.thresholds.default, 10.0) or enc.ended:
        return None
    return Finding(
        Verdict.KILLED_WHILE_PROGRESSING,
        Severity.CRITICAL,
        0.85,
        f"The job was failed as stalled ({record.error_code or record.error_message}) although ffmpeg was still "
        f"reporting progress {ago(max(0.0, gap))} before the failure: a healthy render was killed.",
        record_facts(ctx) + encoder_facts(ctx),
        [
            "Retry it: the render was working",
            "The app's stall detector is too aggressive for this stage: "
            "raise its threshold (Aura: the 90-180 s job-runner monitor and SSE watchdogs)",
        ],
    )


def rule_failed(ctx: RuleContext) -> Finding | None:
    record = ctx.subject.record
    if record is None or record.status is not JobStatus.FAILED:
        return None
    if killed := _killed_while_progressing(ctx):
        return killed
    stderr = record.stderr_snippet or (
        ctx.evidence.encoder.errors[-1] if ctx.evidence.encoder and ctx.evidence.encoder.errors else None
    )
    detail = f" ffmpeg said: “{stderr.strip()[:160]}”." if stderr else ""
    actions = list(record.suggested_actions) or ["Read the failure details and the ffmpeg log"]
    return Finding(
        Verdict.FAILED,
        Severity.WARNING,
        0.9,
        f"Failed in stage {record.failure_stage or record.stage or '?'}"
        f"{' with ' + record.error_code if record.error_code else ''}: {record.error_message or 'no message'}.{detail}",
        record_facts(ctx)
        + encoder_facts(ctx)
        + ([Fact("failure details", record.stderr_snippet)] if record.stderr_snippet else []),
        [*actions, f"Retry when fixed: POST /api/jobs/{ctx.subject.job_id}/retry"],
    )


def rule_cancelled(ctx: RuleContext) -> Finding | None:
    record = ctx.subject.record
    if record is None or record.status is not JobStatus.CANCELLED:
        return None
    return Finding(
        Verdict.CANCELLED,
        Severity.INFO,
        0.9,
        f"Cancelled in stage {record.stage or '?'} at {record.percent:g}%"
        f"{' (' + record.raw_status + ')' if 'Skipped' in record.raw_status else ''}.",
        record_facts(ctx),
        [f"Retry it if that was not intended: POST /api/jobs/{ctx.subject.job_id}/retry"],
    )

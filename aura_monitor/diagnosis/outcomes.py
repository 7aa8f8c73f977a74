"""How a job ended: verified outputs, failures (Aura's stall kills, failures whose terminal write was lost), cancels.

A failed or stalled job whose video is nevertheless complete says so first: the user can have it now.
"""

from __future__ import annotations

import re

from ..jobs.model import JobStatus
from ..jobs.verdicts import Severity, Verdict
from ..records.aura import STALL_KILL, is_stall_kill
from .context import RuleContext, ago, describe_status, encoder_facts, output_facts, output_ok, record_facts
from .encoder import error_lines, key_error
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
                f"Retry the job: {ctx.post('retry')}",
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
                f"Retry the job: {ctx.post('retry')}",
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


_STALL_WORDS = re.compile(r"stall|no progress|stuck", re.IGNORECASE)


def deliverable(ctx: RuleContext) -> str | None:
    """ "The video is complete at <path>; deliver it." when the output verifies and ffmpeg did not fail."""
    out, enc = ctx.evidence.output, ctx.evidence.encoder
    if out is None or not output_ok(ctx) or (enc is not None and enc.exit_code not in (None, 0)):
        return None
    if enc is not None and not enc.ended and enc.exit_code is None:
        return None  # ffmpeg may still be writing it
    length = f"{out.duration_s:.1f} s, " if out.duration_s is not None else ""
    return f"The video is complete at {out.path} ({length}verified with ffprobe); deliver it."


def _urgency(lead: str | None, severity: Severity, confidence: float) -> tuple[Severity, float]:
    """A finished video the user believes lost outranks what else is wrong with the record (a mixed record)."""
    return (Severity.CRITICAL, max(confidence, 0.95)) if lead else (severity, confidence)


def _first(lead: str | None, rest: str) -> str:
    return f"{lead} {rest}" if lead else rest


def _ffmpeg_said(ctx: RuleContext) -> tuple[str | None, list[Fact]]:
    """The error line worth quoting (from FailureDetails' stderr, else the ffmpeg log) and the exit code fact."""
    record, enc = ctx.subject.record, ctx.evidence.encoder
    assert record is not None
    snippet_errors = error_lines(record.stderr_snippet) if record.stderr_snippet else []
    line = key_error(snippet_errors) or (key_error(enc.errors) if enc else None)
    facts = [Fact(enc.path, f"ffmpeg exited with code {enc.exit_code}")] if enc and enc.exit_code is not None else []
    if record.stderr_snippet:
        quoted = key_error(snippet_errors) or "no error line (only progress and Aura's log header)"
        facts.append(Fact("FailureDetails.StderrSnippet", quoted))
    return line, facts


def _killed_while_progressing(ctx: RuleContext, lead: str | None) -> Finding | None:
    record, enc = ctx.subject.record, ctx.evidence.encoder
    assert record is not None
    if enc is None or enc.mtime is None or enc.exit_code not in (None, 0):
        return None
    failed_at = record.completed_at or ctx.evidence.record_mtime or ctx.now
    gap = failed_at - enc.mtime
    if gap > max(ctx.thresholds.default, 10.0) or enc.ended:
        return None
    return Finding(
        Verdict.KILLED_WHILE_PROGRESSING,
        Severity.CRITICAL,
        0.85,
        _first(
            lead,
            f"The job was failed as stalled ({record.error_code or record.error_message}) although ffmpeg was "
            f"still reporting progress {ago(max(0.0, gap))} before the failure: a healthy render was killed.",
        ),
        record_facts(ctx) + encoder_facts(ctx),
        [
            "Retry it: the render was working",
            "The app's stall detector is too aggressive for this stage: "
            "raise its threshold (Aura: the 90-180 s job-runner monitor and SSE watchdogs)",
        ],
    )


def _was_it_stuck(ctx: RuleContext, lead: str | None) -> tuple[str, float]:
    """What the ffmpeg log and the output say about whether a stall-killed job was really stuck."""
    record, enc, out = ctx.subject.record, ctx.evidence.encoder, ctx.evidence.output
    assert record is not None
    if lead:
        return "The render had already ended normally: it was not stuck, only the job's final write was late.", 0.9
    if enc is None:
        return (
            f"No ffmpeg log was found, so the files cannot tell whether stage {record.stage or '?'} was really "
            "stuck (Aura writes that log only while rendering).",
            0.6,
        )
    if enc.exit_code not in (None, 0):
        line = key_error(enc.errors)
        said = f": “{line[:160]}”" if line else ""
        return f"ffmpeg had already failed (exit code {enc.exit_code}{said}): the render was broken, not slow.", 0.85
    if enc.ended:
        why = (out.truncated or out.probe_error) if out is not None else None
        return (
            "ffmpeg had ended normally, but the output does not verify"
            f"{': ' + why if why else ''}: the render finished, the file did not come out whole.",
            0.8,
        )
    failed_at = record.completed_at or ctx.evidence.record_mtime or ctx.now
    at = f" at {enc.out_time_s:.1f} s of the video" if enc.out_time_s else ""
    quiet = ago(max(0.0, failed_at - (enc.mtime or failed_at)))
    return f"The ffmpeg log had not changed for {quiet} before the kill{at}: it really was stuck.", 0.8


def _stall_killed(ctx: RuleContext, lead: str | None) -> Finding:
    record = ctx.subject.record
    assert record is not None
    assessment, confidence = _was_it_stuck(ctx, lead)
    echo = (
        " Its “cancelled by user” message and CanceledUtc are the pipeline's echo of that kill."
        if record.raw_status.endswith(STALL_KILL)
        else ""
    )
    reason = record.error_message or "no message"
    actions = [f"Retry it: {ctx.post('retry')}"]
    if lead:
        actions.insert(0, f"Hand the finished video to the user: {ctx.evidence.output.path}")  # type: ignore[union-attr]
    actions.append(
        "If renders this long are normal, raise Aura's stall limits (the job-runner monitor fails a job after "
        "90-180 s of unchanged percent and stage)"
    )
    return Finding(
        Verdict.STALL_KILLED,
        *_urgency(lead, Severity.WARNING, confidence),
        _first(
            lead,
            f"Aura's own stall monitor killed this job ({record.error_code or 'stalled'}: {reason}) in stage "
            f"{record.failure_stage or record.stage or '?'} at {record.percent:g}%; no user cancelled it.{echo} "
            f"{assessment}",
        ),
        record_facts(ctx) + encoder_facts(ctx) + output_facts(ctx) + _ffmpeg_said(ctx)[1],
        actions,
    )


def rule_failed(ctx: RuleContext) -> Finding | None:
    record = ctx.subject.record
    if record is None or record.status is not JobStatus.FAILED:
        return None
    lead = deliverable(ctx)
    stall_kill = is_stall_kill(record.error_code, canceled=True) or bool(
        not record.error_code and record.error_message and _STALL_WORDS.search(record.error_message)
    )
    if stall_kill:
        return _killed_while_progressing(ctx, lead) or _stall_killed(ctx, lead)
    line, facts = _ffmpeg_said(ctx)
    detail = f" ffmpeg said: “{line[:160]}”." if line else ""
    actions = list(record.suggested_actions) or ["Read the failure details and the ffmpeg log"]
    if lead:
        actions.insert(0, f"Hand the finished video to the user: {ctx.evidence.output.path}")  # type: ignore[union-attr]
    return Finding(
        Verdict.FAILED,
        *_urgency(lead, Severity.WARNING, 0.9),
        _first(
            lead,
            f"Failed in stage {record.failure_stage or record.stage or '?'}"
            f"{' with ' + record.error_code if record.error_code else ''}: "
            f"{record.error_message or 'no message'}.{detail}",
        ),
        record_facts(ctx) + encoder_facts(ctx) + output_facts(ctx) + facts,
        [*actions, f"Retry when fixed: {ctx.post('retry')}"],
    )


def rule_failure_not_propagated(ctx: RuleContext) -> Finding | None:
    """ffmpeg exited non-zero but the record stays active: Aura's generic exception path saved the old snapshot."""
    s, record, enc = ctx.subject, ctx.subject.record, ctx.evidence.encoder
    if record is None or record.status.terminal or enc is None or enc.exit_code in (None, 0):
        return None
    exited_ago = ctx.now - (enc.mtime or ctx.now)
    if not s.stalled and exited_ago < min(s.threshold or ctx.thresholds.default, 30.0):
        return None  # the writer may be about to record the failure
    line = key_error(enc.errors)
    said = f" with “{line[:160]}”" if line else " (no error line in its log)"
    return Finding(
        Verdict.FAILURE_NOT_PROPAGATED,
        Severity.CRITICAL,
        0.9,
        f"ffmpeg failed {ago(exited_ago)} ago: exit code {enc.exit_code}{said}. The job record still says "
        f"{describe_status(record)}: the failure was never written (Aura's exception path saves the earlier "
        "Running snapshot), so it will never change by itself. The app did not crash; the render failed.",
        [*record_facts(ctx), Fact(enc.path, f"ffmpeg exited with code {enc.exit_code}"), *encoder_facts(ctx)],
        [
            f"Read the end of {enc.path}: the error above is ffmpeg's own reason",
            "Fix what ffmpeg names (a missing or corrupt input, codec or bitrate settings, disk space), then retry: "
            + ctx.post("retry"),
            "Cancel the stale job in the app so it stops showing as running (Aura never reconciles job files)",
        ],
    )


def rule_cancelled(ctx: RuleContext) -> Finding | None:
    record = ctx.subject.record
    if record is None or record.status is not JobStatus.CANCELLED:
        return None
    label = record.raw_status if "Skipped" in record.raw_status or "old numbering" in record.raw_status else ""
    return Finding(
        Verdict.CANCELLED,
        Severity.INFO,
        0.9,
        f"Cancelled in stage {record.stage or '?'} at {record.percent:g}%{' (' + label + ')' if label else ''}.",
        record_facts(ctx),
        [f"Retry it if that was not intended: {ctx.post('retry')}"],
    )

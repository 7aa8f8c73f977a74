"""Diagnosis rules: pure functions from (subject, evidence, thresholds, now) to ordered findings."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..model import JobRecord, JobStatus
from ..stall import ThresholdKind, Thresholds
from .evidence import Evidence, Fact
from .findings import PRIORITY, Code, Finding, Severity
from .subject import Subject

PROVIDER_ERROR = re.compile(
    r"\b(429|too many requests|rate.?limit|50[0-4]|service unavailable|bad gateway|gateway timeout|"
    r"timed? ?out|timeout|connection refused|connection reset|ECONNREFUSED|ETIMEDOUT)\b",
    re.IGNORECASE,
)
CAPS = (95.0, 99.0, 99.5)
ENCODER_FRESH_S = 5.0  # ffmpeg reports at least every second while it works
DURATION_TOLERANCE = 0.9  # an output shorter than 90% of the expected duration is invalid


@dataclass(frozen=True, slots=True)
class RuleContext:
    subject: Subject
    evidence: Evidence
    thresholds: Thresholds
    now: float
    disk_floor_bytes: int
    unreadable_grace: float


def ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _describe_status(record: JobRecord) -> str:
    return f"{record.status.value.capitalize()} at {record.percent:g}% in stage {record.stage or '?'}"


def _output_ok(ctx: RuleContext) -> bool:
    out = ctx.evidence.output
    record = ctx.subject.record
    if out is None or not out.exists or not out.size or out.truncated or not out.probed:
        return False
    expected = record.expected_duration_s if record else None
    return not (expected and out.duration_s is not None and out.duration_s < DURATION_TOLERANCE * expected)


def _output_facts(ctx: RuleContext) -> list[Fact]:
    out = ctx.evidence.output
    if out is None:
        return []
    if not out.exists:
        return [Fact(out.path, "does not exist")]
    facts = [Fact(out.path, f"{out.size} bytes, modified {ago(ctx.now - (out.mtime or ctx.now))} ago")]
    if out.truncated:
        facts.append(Fact(out.path, f"container incomplete: {out.truncated}"))
    if out.probe_error:
        facts.append(Fact("ffprobe", out.probe_error))
    elif out.duration_s is not None:
        size = f", {out.width}x{out.height}" if out.width else ""
        facts.append(Fact("ffprobe", f"duration {out.duration_s:.1f} s{size}"))
    if out.grew_bytes is not None:
        facts.append(Fact(out.path, f"grew {out.grew_bytes} bytes during the sample window"))
    return facts


def _encoder_facts(ctx: RuleContext) -> list[Fact]:
    enc = ctx.evidence.encoder
    if enc is None:
        return []
    parts = []
    if enc.out_time_s is not None:
        parts.append(f"last time={enc.out_time_s:.1f} s")
    if enc.speed is not None:
        parts.append(f"speed {enc.speed:g}x")
    parts.append("ended normally" if enc.ended else "not ended")
    if enc.mtime is not None:
        parts.append(f"last written {ago(ctx.now - enc.mtime)} ago")
    facts = [Fact(enc.path, ", ".join(parts))]
    facts += [Fact(enc.path, f"error line: {line}") for line in enc.errors[-3:]]
    return facts


def _record_facts(ctx: RuleContext) -> list[Fact]:
    s = ctx.subject
    record = s.record
    if record is None:
        return []
    facts = [Fact("job.json", f"{record.raw_status}, stage {record.stage or '?'}, {record.percent:g}%")]
    since = s.since_progress(ctx.now)
    if since is not None and not record.status.terminal:
        limit = f" (threshold {s.threshold:g} s, {s.threshold_kind})" if s.threshold is not None else ""
        facts.append(Fact("job.json", f"no progress for {ago(since)}{limit}"))
    if ctx.evidence.record_mtime is not None:
        facts.append(Fact("job.json", f"file last written {ago(ctx.now - ctx.evidence.record_mtime)} ago"))
    return facts


def _encoder_percent(ctx: RuleContext) -> float | None:
    enc, record = ctx.evidence.encoder, ctx.subject.record
    if enc is None or enc.out_time_s is None or record is None or not record.expected_duration_s:
        return None
    return min(100.0, 100.0 * enc.out_time_s / record.expected_duration_s)


def _encoder_fresh(ctx: RuleContext) -> bool:
    enc = ctx.evidence.encoder
    return bool(enc and not enc.ended and enc.mtime is not None and ctx.now - enc.mtime <= ENCODER_FRESH_S)


def _encoder_moved_after_record(ctx: RuleContext) -> bool:
    enc, last = ctx.evidence.encoder, ctx.subject.last_progress_at
    return bool(enc and enc.mtime is not None and last is not None and enc.mtime > last + 1.0)


def _live_process(ctx: RuleContext) -> list[str]:
    return [f"{p.role} pid {p.pid}" for p in ctx.evidence.processes if p.exists]


# -- rules for every job ------------------------------------------------------------------------
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
        Code.RECORD_UNREADABLE,
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
        Code.DISK_FULL,
        Severity.CRITICAL,
        0.9,
        f"Only {worst.free_bytes / 2**20:.0f} MiB free on the volume of {worst.path} "
        f"(floor {ctx.disk_floor_bytes / 2**20:.0f} MiB): renders and job records cannot be written.",
        [Fact(d.path, f"{d.free_bytes / 2**20:.0f} MiB free of {d.total_bytes / 2**30:.1f} GiB") for d in low],
        [
            f"Free space on the volume of {worst.path} (old renders, temp files, logs)",
            "Then retry the job: POST /api/jobs/{id}/retry".replace("{id}", ctx.subject.job_id),
        ],
    )


def rule_inconsistent(ctx: RuleContext) -> Finding | None:
    record = ctx.subject.record
    if record is None or not record.inconsistencies:
        return None
    mixed = any("mixed record" in note or "contradicts" in note for note in record.inconsistencies)
    return Finding(
        Code.STATUS_INCONSISTENT,
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


# -- rules for active jobs ----------------------------------------------------------------------
def rule_completion_not_propagated(ctx: RuleContext) -> Finding | None:
    record, enc = ctx.subject.record, ctx.evidence.encoder
    if record is None or record.status.terminal or enc is None or not enc.ended or not _output_ok(ctx):
        return None
    ended_ago = ctx.now - (enc.mtime or ctx.now)
    grace = min(ctx.subject.threshold or ctx.thresholds.default, 30.0)
    if not ctx.subject.stalled and ended_ago < grace:
        return None  # the writer may be about to record the end
    out = ctx.evidence.output
    assert out is not None
    duration = f"{out.duration_s:.1f} s video" if out.duration_s is not None else "video"
    return Finding(
        Code.COMPLETION_NOT_PROPAGATED,
        Severity.CRITICAL,
        0.95,
        f"Rendering finished {ago(ended_ago)} ago (ffmpeg ended normally, {duration} at {out.path} verified) "
        f"but the job record still says {_describe_status(record)}.",
        _record_facts(ctx) + _encoder_facts(ctx) + _output_facts(ctx),
        [
            f"The video is complete: hand {out.path} to the user",
            "The terminal write never happened: check the app log around the end of the render "
            "(Aura swallows job-file write failures)",
            f"Mark the job done in the app, or POST /api/jobs/{ctx.subject.job_id}/retry to re-run only the "
            "finalization (native workers resume from the last completed stage)",
        ],
    )


def rule_process_dead(ctx: RuleContext) -> Finding | None:
    record = ctx.subject.record
    if record is None or record.status.terminal or not ctx.evidence.processes:
        return None
    dead = [p for p in ctx.evidence.processes if not p.exists]
    if not dead or (_output_ok(ctx) and ctx.evidence.encoder is not None and ctx.evidence.encoder.ended):
        return None
    names = ", ".join(
        f"{p.role} (pid {p.pid}{', pid reused' if p.reused else ''}{', zombie' if p.status == 'zombie' else ''})"
        for p in dead
    )
    return Finding(
        Code.PROCESS_DEAD,
        Severity.CRITICAL,
        0.9,
        f"The {names} of this job no longer exists, yet the record says {_describe_status(record)}: "
        "the job will never finish.",
        _record_facts(ctx)
        + [Fact("processes", f"{p.role} pid {p.pid}: gone") for p in dead]
        + _encoder_facts(ctx)
        + _output_facts(ctx),
        [
            f"POST /api/jobs/{ctx.subject.job_id}/retry (native workers resume from the last completed stage)",
            "Look for an OOM kill or a crash: `journalctl -k | grep -i killed` and the worker's log",
            f"Remove the incomplete output{' ' + ctx.evidence.output.path if ctx.evidence.output else ''}",
        ],
    )


def rule_process_hung(ctx: RuleContext) -> Finding | None:
    record = ctx.subject.record
    if record is None or record.status.terminal:
        return None
    alive = [p for p in ctx.evidence.processes if p.exists]
    if not alive:
        return None
    stopped = [p for p in alive if p.status == "stopped"]
    out = ctx.evidence.output
    enc = ctx.evidence.encoder
    idle = [p for p in alive if p.cpu_delta_s is not None and p.cpu_delta_s < 0.005]
    output_still = out is None or not out.grew_bytes
    encoder_still = enc is None or enc.mtime is None or ctx.now - enc.mtime > ENCODER_FRESH_S
    if stopped:
        confidence, why = (
            0.95,
            ", ".join(f"{p.role} pid {p.pid} is stopped (state T, SIGSTOP?)" for p in stopped),
        )
    elif ctx.subject.stalled and idle and len(idle) == len(alive) and output_still and encoder_still:
        confidence = 0.85
        why = ", ".join(
            f"{p.role} pid {p.pid} used {p.cpu_delta_s or 0:.3f} s CPU in {p.window_s:.2f} s (state {p.status})"
            for p in idle
        )
    else:
        return None
    return Finding(
        Code.PROCESS_HUNG,
        Severity.CRITICAL,
        confidence,
        f"The process is alive but doing nothing: {why}; neither CPU time, output size nor encoder progress "
        f"advanced while the record says {_describe_status(record)}.",
        _record_facts(ctx)
        + [Fact("processes", f"{p.role} pid {p.pid}: {p.status}, CPU +{p.cpu_delta_s or 0:.3f} s") for p in alive]
        + _encoder_facts(ctx)
        + _output_facts(ctx),
        [
            f"POST /api/jobs/{ctx.subject.job_id}/cancel, then retry it",
            "If ffmpeg's stderr is a pipe nobody reads, it blocks once the pipe fills: send stderr to a file",
            "A stopped process (state T) was sent SIGSTOP: `kill -CONT <pid>` resumes it",
            "Aura only kills a hung ffmpeg after its 30-minute total timeout",
        ],
    )


def rule_progress_capped(ctx: RuleContext) -> Finding | None:
    s, record = ctx.subject, ctx.subject.record
    if record is None or record.status.terminal or record.percent < CAPS[0] or record.finalizing:
        return None  # in a finalization stage the record is right: the encoder's work *is* finalizing
    since = s.since_progress(ctx.now) or 0.0
    if since <= ctx.thresholds.default or not _encoder_fresh(ctx) or not _encoder_moved_after_record(ctx):
        return None
    pct = _encoder_percent(ctx)
    encoder_says = f"ffmpeg is at {pct:.0f}% of the video" if pct is not None else "ffmpeg keeps reporting progress"
    return Finding(
        Code.PROGRESS_CAPPED,
        Severity.WARNING,
        0.85,
        f"The record has been frozen at {record.percent:g}% for {ago(since)} while {encoder_says}: "
        "the progress mapping is capped, the render is still working.",
        _record_facts(ctx) + _encoder_facts(ctx) + _output_facts(ctx),
        [
            "Do not cancel: the render is alive and advancing",
            "The app maps render progress onto 80-95% (or 80-99%) and caps it; only the final write reaches 100",
            "Raise the finalizing threshold for this stage if users see false 'stuck' warnings "
            "(--stage-thresholds '{\"render\": 600}')",
        ],
    )


def rule_progress_not_reported(ctx: RuleContext) -> Finding | None:
    s, record = ctx.subject, ctx.subject.record
    if record is None or record.status.terminal or not s.stalled:
        return None
    out = ctx.evidence.output
    output_moving = bool(
        out and (out.grew_bytes or (out.mtime and s.last_progress_at and out.mtime > s.last_progress_at + 1))
    )
    if not ((_encoder_fresh(ctx) and _encoder_moved_after_record(ctx)) or output_moving):
        return None
    pct = _encoder_percent(ctx)
    moving = f"ffmpeg is at {pct:.0f}%" if pct is not None else "the encoder and output keep advancing"
    return Finding(
        Code.PROGRESS_NOT_REPORTED,
        Severity.WARNING,
        0.85,
        f"The render is alive ({moving}) but the job record has not changed for "
        f"{ago(s.since_progress(ctx.now) or 0)}: progress is not being written to the record.",
        _record_facts(ctx) + _encoder_facts(ctx) + _output_facts(ctx),
        [
            "Do not cancel: the work is progressing",
            "The pipeline stopped syncing progress into job.json: check its progress callback / writer thread",
            "Watch the encoder directly: tail -f "
            + (ctx.evidence.encoder.path if ctx.evidence.encoder else "the ffmpeg log"),
        ],
    )


def rule_upstream(ctx: RuleContext) -> Finding | None:
    s, record = ctx.subject, ctx.subject.record
    if record is None or record.status.terminal or not s.stalled:
        return None
    errors = [line for line in ctx.evidence.log_tail if PROVIDER_ERROR.search(line.text)]
    if len(errors) < 3:
        return None
    return Finding(
        Code.UPSTREAM_ERRORS,
        Severity.WARNING,
        min(0.95, 0.6 + 0.05 * len(errors)),
        f"Stage {record.stage or '?'} is stuck retrying a provider: {len(errors)} recent log lines show "
        f"errors such as “{errors[-1].text.strip()[:120]}”.",
        _record_facts(ctx) + [Fact(line.source, line.text.strip()[:200]) for line in errors[-5:]],
        [
            "Check the provider's status page and your quota / API key for this stage",
            "Lower concurrency or add backoff for this provider; switch to an offline provider if one is configured",
            f"Once the provider answers, POST /api/jobs/{s.job_id}/retry",
        ],
    )


def rule_queued(ctx: RuleContext) -> Finding | None:
    s, record = ctx.subject, ctx.subject.record
    if record is None or record.status is not JobStatus.QUEUED or not s.stalled:
        return None
    return Finding(
        Code.QUEUED_TOO_LONG,
        Severity.WARNING,
        0.9,
        f"The job has waited in the queue for {ago(s.since_progress(ctx.now) or 0)} "
        f"(threshold {s.threshold or ctx.thresholds.queued:g} s): no worker picked it up.",
        _record_facts(ctx),
        [
            "Check that a worker is running and not saturated (GET /api/queue shows running jobs)",
            "Look for jobs stuck in running that hold the worker slots",
        ],
    )


def rule_abandoned(ctx: RuleContext) -> Finding | None:
    s, record, ev = ctx.subject, ctx.subject.record, ctx.evidence
    if record is None or record.status.terminal or not s.stalled or ev.processes:
        return None
    times = [
        t
        for t in (
            ev.record_mtime,
            s.last_progress_at,
            ev.encoder.mtime if ev.encoder else None,
            ev.output.mtime if ev.output else None,
        )
        if t is not None
    ]
    times += [line.at for line in ev.log_tail if line.at is not None]
    quiet = ctx.now - max(times) if times else None
    limit = max(4 * (s.threshold or ctx.thresholds.default), 600.0)
    if quiet is None or quiet < limit:
        return None
    return Finding(
        Code.ABANDONED,
        Severity.CRITICAL,
        0.8,
        f"Nothing about this job has changed for {ago(quiet)} (record, logs, output): it says "
        f"{_describe_status(record)} but no process is working on it.",
        _record_facts(ctx) + _encoder_facts(ctx) + _output_facts(ctx),
        [
            "The app probably crashed or restarted: Aura does not reconcile jobs at start-up, so it stays Running",
            f"Retry it (POST /api/jobs/{s.job_id}/retry) or cancel it (POST /api/jobs/{s.job_id}/cancel)",
        ],
    )


def rule_no_progress(ctx: RuleContext) -> Finding | None:
    s, record = ctx.subject, ctx.subject.record
    if record is None or record.status.terminal or not s.stalled:
        return None
    return Finding(
        Code.NO_PROGRESS,
        Severity.WARNING,
        0.6,
        f"No progress for {ago(s.since_progress(ctx.now) or 0)} in stage {record.stage or '?'} at "
        f"{record.percent:g}% (threshold {s.threshold or 0:g} s), and no more specific cause was found.",
        _record_facts(ctx) + _encoder_facts(ctx) + _output_facts(ctx),
        [
            "Open the job's log tail below and the app log for this stage",
            f"If nothing moves, cancel (POST /api/jobs/{s.job_id}/cancel) and retry",
        ],
    )


def rule_active(ctx: RuleContext) -> Finding | None:
    s, record = ctx.subject, ctx.subject.record
    if record is None or record.status.terminal or s.stalled:
        return None
    since = s.since_progress(ctx.now) or 0.0
    left = f"{(s.threshold or 0) - since:.0f} s before it counts as stalled" if s.threshold else "no stall clock"
    if s.threshold_kind is ThresholdKind.FINALIZING:
        return Finding(
            Code.FINALIZING,
            Severity.INFO,
            0.8,
            f"Finalizing at {record.percent:g}% in stage {record.stage or '?'}; last progress {ago(since)} ago, "
            f"within the {s.threshold:g} s finalization threshold ({left}).",
            _record_facts(ctx) + _encoder_facts(ctx) + _output_facts(ctx),
            ["Nothing to do yet: finalization (muxing, faststart, upload) reports little progress"],
        )
    return Finding(
        Code.HEALTHY,
        Severity.INFO,
        0.8,
        f"{_describe_status(record)}, last progress {ago(since)} ago ({left}).",
        _record_facts(ctx) + _encoder_facts(ctx),
        ["Nothing to do"],
    )


# -- rules for terminal jobs --------------------------------------------------------------------
def rule_completed(ctx: RuleContext) -> Finding | None:
    record = ctx.subject.record
    if record is None or record.status is not JobStatus.COMPLETED:
        return None
    out = ctx.evidence.output
    if not record.output_path or out is None or not out.exists or not out.size:
        where = record.output_path or "no output path at all"
        return Finding(
            Code.OUTPUT_MISSING,
            Severity.CRITICAL,
            0.95,
            f"The job says completed but there is nothing to download: {where}"
            f"{' is missing' if record.output_path and (out is None or not out.exists) else ''}"
            f"{' is empty' if out is not None and out.exists and not out.size else ''}.",
            _record_facts(ctx) + _output_facts(ctx) + _encoder_facts(ctx),
            [
                "Check the render stage's log: the output was never written or was moved/deleted afterwards",
                f"Retry the job: POST /api/jobs/{ctx.subject.job_id}/retry",
            ],
        )
    if not _output_ok(ctx):
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
            Code.OUTPUT_INVALID,
            Severity.CRITICAL,
            0.9,
            f"The job says completed but its output {out.path} is not a whole video: {why}.",
            _record_facts(ctx) + _output_facts(ctx) + _encoder_facts(ctx),
            [
                "Do not deliver this file",
                f"Retry the job: POST /api/jobs/{ctx.subject.job_id}/retry",
                "If it repeats, check free space and the encoder log for a crash during finalization",
            ],
        )
    assert out is not None
    size = f", {out.width}x{out.height}" if out.width else ""
    return Finding(
        Code.COMPLETED,
        Severity.INFO,
        0.95,
        f"Completed: {out.duration_s or 0:.1f} s video{size} at {out.path} verified with ffprobe.",
        _record_facts(ctx) + _output_facts(ctx),
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
        Code.KILLED_WHILE_PROGRESSING,
        Severity.CRITICAL,
        0.85,
        f"The job was failed as stalled ({record.error_code or record.error_message}) although ffmpeg was still "
        f"reporting progress {ago(max(0.0, gap))} before the failure: a healthy render was killed.",
        _record_facts(ctx) + _encoder_facts(ctx),
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
        Code.FAILED,
        Severity.WARNING,
        0.9,
        f"Failed in stage {record.failure_stage or record.stage or '?'}"
        f"{' with ' + record.error_code if record.error_code else ''}: {record.error_message or 'no message'}.{detail}",
        _record_facts(ctx)
        + _encoder_facts(ctx)
        + ([Fact("failure details", record.stderr_snippet)] if record.stderr_snippet else []),
        [*actions, f"Retry when fixed: POST /api/jobs/{ctx.subject.job_id}/retry"],
    )


def rule_cancelled(ctx: RuleContext) -> Finding | None:
    record = ctx.subject.record
    if record is None or record.status is not JobStatus.CANCELLED:
        return None
    return Finding(
        Code.CANCELLED,
        Severity.INFO,
        0.9,
        f"Cancelled in stage {record.stage or '?'} at {record.percent:g}%"
        f"{' (' + record.raw_status + ')' if 'Skipped' in record.raw_status else ''}.",
        _record_facts(ctx),
        [f"Retry it if that was not intended: POST /api/jobs/{ctx.subject.job_id}/retry"],
    )


RULES = (
    rule_unreadable,
    rule_disk,
    rule_inconsistent,
    rule_completion_not_propagated,
    rule_process_dead,
    rule_process_hung,
    rule_progress_capped,
    rule_progress_not_reported,
    rule_upstream,
    rule_queued,
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
    # A mild inconsistency (an ambiguous status number) is supporting evidence, never the verdict.
    findings.sort(
        key=lambda f: (
            f.code is Code.STATUS_INCONSISTENT and f.severity is not Severity.CRITICAL,
            PRIORITY[f.code],
        )
    )
    return findings

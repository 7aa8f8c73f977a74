"""Why an active job is stuck (or is not): one rule per cause, most specific first in rules.RULES."""

from __future__ import annotations

from ..jobs.model import JobStatus
from ..jobs.stall import ThresholdKind
from ..jobs.verdicts import Severity, Verdict
from .activity import BUSY_CPU_S
from .context import (
    CAPS,
    ENCODER_FRESH_S,
    PROVIDER_ERROR,
    RuleContext,
    ago,
    describe_status,
    encoder_facts,
    encoder_fresh,
    encoder_moved_after_record,
    encoder_percent,
    fresh_lines,
    output_facts,
    output_ok,
    record_facts,
)
from .evidence import Fact, ProcessEvidence
from .findings import Basis, Finding


def rule_completion_not_propagated(ctx: RuleContext) -> Finding | None:
    record, enc = ctx.subject.record, ctx.evidence.encoder
    if record is None or record.status.terminal or enc is None or not enc.ended or not output_ok(ctx):
        return None
    ended_ago = ctx.now - (enc.mtime or ctx.now)
    grace = min(ctx.subject.threshold or ctx.thresholds.default, 30.0)
    if not ctx.subject.stalled and ended_ago < grace:
        return None  # the writer may be about to record the end
    out = ctx.evidence.output
    assert out is not None
    duration = f"{out.duration_s:.1f} s video" if out.duration_s is not None else "video"
    return Finding(
        Verdict.COMPLETION_NOT_PROPAGATED,
        Severity.CRITICAL,
        0.95,
        f"Rendering finished {ago(ended_ago)} ago (ffmpeg ended normally, {duration} at {out.path} verified) "
        f"but the job record still says {describe_status(record)}.",
        record_facts(ctx) + encoder_facts(ctx) + output_facts(ctx),
        [
            f"The video is complete: hand {out.path} to the user",
            "The terminal write never happened: check the app log around the end of the render "
            "(Aura swallows job-file write failures)",
            f"Mark the job done in the app, or {ctx.post('retry')} to re-run only the "
            "finalization (native workers resume from the last completed stage)",
        ],
    )


def rule_process_dead(ctx: RuleContext) -> Finding | None:
    record = ctx.subject.record
    if record is None or record.status.terminal or not ctx.evidence.processes:
        return None
    enc = ctx.evidence.encoder
    encoder_ended = enc is not None and enc.ended
    # An encoder that ended normally (progress=end, or a clean end in its log) has finished, not died: its
    # worker then checks and moves the output before the next record write, and the record still names the
    # encoder's pid meanwhile. Judging that hand-off "dead, will never finish" flapped the demo's
    # slow-finalize verdict for one sample; a worker that never writes again is a stall the rules below name.
    dead = [p for p in ctx.evidence.processes if not p.exists and not (p.role == "encoder" and encoder_ended)]
    if not dead or (output_ok(ctx) and encoder_ended):
        return None
    names = ", ".join(
        f"{p.role} (pid {p.pid}{', pid reused' if p.reused else ''}{', zombie' if p.status == 'zombie' else ''})"
        for p in dead
    )
    return Finding(
        Verdict.PROCESS_DEAD,
        Severity.CRITICAL,
        0.9,
        f"The {names} of this job no longer exists, yet the record says {describe_status(record)}: "
        "the job will never finish.",
        record_facts(ctx)
        + [Fact("processes", f"{p.role} pid {p.pid}: gone") for p in dead]
        + encoder_facts(ctx)
        + output_facts(ctx),
        [
            f"{ctx.post('retry')} (native workers resume from the last completed stage)",
            "Look for an OOM kill or a crash: `journalctl -k | grep -i killed` and the worker's log",
            f"Remove the incomplete output{' ' + ctx.evidence.output.path if ctx.evidence.output else ''}",
        ],
    )


def _idle_why(working: list[ProcessEvidence]) -> tuple[str, float] | None:
    """Why every working process counts as idle (and how sure that is), or None when one shows work.

    Idle means no CPU in the 150 ms sample *and* none over the last few seconds when earlier diagnoses let
    that be known (activity.py): a loop sleeping between retries uses none in most short windows.
    """
    parts: list[str] = []
    for p in working:
        if p.cpu_delta_s is None or p.cpu_delta_s >= 0.005:
            return None
        if p.recent_cpu_s is not None and p.recent_cpu_s >= BUSY_CPU_S:
            return None
        over = (
            f", {p.recent_cpu_s:.2f} s in the last {p.recent_window_s or 0:.0f} s" if p.recent_cpu_s is not None else ""
        )
        parts.append(
            f"{p.role} pid {p.pid} used {p.cpu_delta_s:.3f} s CPU in {p.window_s:.2f} s{over} (state {p.status})"
        )
    return ", ".join(parts), 0.85 if all(p.recent_cpu_s is not None for p in working) else 0.75


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
    # While an encoder runs it does the work; the worker supervising it (polling, heartbeating) does not,
    # so its CPU says nothing about whether the render moves.
    encoders = [p for p in alive if p.role == "encoder"]
    working = encoders or alive
    # A real-time encoder of a small video can use under 5 ms of CPU in the window and write its output in
    # bursts, so an output written to in the last few seconds also counts as work.
    output_still = out is None or (not out.grew_bytes and (out.mtime is None or ctx.now - out.mtime > ENCODER_FRESH_S))
    encoder_still = enc is None or enc.mtime is None or ctx.now - enc.mtime > ENCODER_FRESH_S
    # Fresh log lines are a worker's work (a retry loop logging each attempt); an encoder's are its progress.
    logging = fresh_lines(ctx, ctx.evidence.log_tail) if not encoders else []
    basis = Basis.OBSERVED
    if stopped:
        confidence, why = (
            0.95,
            ", ".join(f"{p.role} pid {p.pid} is stopped (state T, SIGSTOP?)" for p in stopped),
        )
    elif ctx.subject.stalled and output_still and encoder_still and not logging and (idle := _idle_why(working)):
        why, confidence = idle
        basis = Basis.INFERRED  # an absence of work, not a sighting of a fault
    else:
        return None
    return Finding(
        Verdict.PROCESS_HUNG,
        Severity.CRITICAL,
        confidence,
        f"The process is alive but doing nothing: {why}; neither CPU time, output size, encoder progress nor "
        f"the job's log advanced while the record says {describe_status(record)}.",
        record_facts(ctx)
        + [Fact("processes", f"{p.role} pid {p.pid}: {p.status}, CPU +{p.cpu_delta_s or 0:.3f} s") for p in alive]
        + encoder_facts(ctx)
        + output_facts(ctx),
        [
            f"{ctx.post('cancel')}, then retry it",
            "If ffmpeg's stderr is a pipe nobody reads, it blocks once the pipe fills: send stderr to a file",
            "A stopped process (state T) was sent SIGSTOP: `kill -CONT <pid>` resumes it",
            "Aura only kills a hung ffmpeg after its 30-minute total timeout",
        ],
        basis,
    )


def rule_progress_capped(ctx: RuleContext) -> Finding | None:
    s, record = ctx.subject, ctx.subject.record
    if record is None or record.status.terminal or record.percent < CAPS[0] or record.finalizing:
        return None  # in a finalization stage the record is right: the encoder's work *is* finalizing
    since = s.since_progress(ctx.now) or 0.0
    if since <= ctx.thresholds.default or not encoder_fresh(ctx) or not encoder_moved_after_record(ctx):
        return None
    pct = encoder_percent(ctx)
    encoder_says = f"ffmpeg is at {pct:.0f}% of the video" if pct is not None else "ffmpeg keeps reporting progress"
    return Finding(
        Verdict.PROGRESS_CAPPED,
        Severity.WARNING,
        0.85,
        f"The record has been frozen at {record.percent:g}% for {ago(since)} while {encoder_says}: "
        "the progress mapping is capped, the render is still working.",
        record_facts(ctx) + encoder_facts(ctx) + output_facts(ctx),
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
    # Written after the record's last progress is not enough: an encoder that wrote its header and then
    # blocked leaves that mtime for good. The output must still be moving now.
    output_moving = bool(
        out
        and (
            out.grew_bytes
            or (
                out.mtime
                and s.last_progress_at
                and out.mtime > s.last_progress_at + 1
                and ctx.now - out.mtime <= ENCODER_FRESH_S
            )
        )
    )
    if not ((encoder_fresh(ctx) and encoder_moved_after_record(ctx)) or output_moving):
        return None
    pct = encoder_percent(ctx)
    moving = f"ffmpeg is at {pct:.0f}%" if pct is not None else "the encoder and output keep advancing"
    return Finding(
        Verdict.PROGRESS_NOT_REPORTED,
        Severity.WARNING,
        0.85,
        f"The render is alive ({moving}) but the job record has not changed for "
        f"{ago(s.since_progress(ctx.now) or 0)}: progress is not being written to the record.",
        record_facts(ctx) + encoder_facts(ctx) + output_facts(ctx),
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
    fresh = fresh_lines(ctx, errors)
    newest = max((line.at for line in errors if line.at is not None), default=None)
    when = f", the last {ago(ctx.now - newest)} ago" if newest is not None else ""
    # Errors still arriving are the job's work right now: the worker is retrying, not hung.
    basis, confidence = (Basis.OBSERVED, min(0.95, 0.6 + 0.05 * len(errors))) if fresh else (Basis.INFERRED, 0.6)
    still = "is stuck retrying" if fresh else "was retrying"
    return Finding(
        Verdict.UPSTREAM_ERRORS,
        Severity.WARNING,
        confidence,
        f"Stage {record.stage or '?'} {still} a provider: {len(errors)} recent log lines show errors{when}, "
        f"such as “{errors[-1].text.strip()[:120]}”.",
        record_facts(ctx) + [Fact(line.source, line.text.strip()[:200]) for line in errors[-5:]],
        [
            "Check the provider's status page and your quota / API key for this stage",
            "Lower concurrency or add backoff for this provider; switch to an offline provider if one is configured",
            f"Once the provider answers, {ctx.post('retry')}",
        ],
        basis,
    )


def rule_queued(ctx: RuleContext) -> Finding | None:
    s, record = ctx.subject, ctx.subject.record
    if record is None or record.status is not JobStatus.QUEUED or not s.stalled:
        return None
    return Finding(
        Verdict.QUEUED_TOO_LONG,
        Severity.WARNING,
        0.9,
        f"The job has waited in the queue for {ago(s.since_progress(ctx.now) or 0)} "
        f"(threshold {s.threshold or ctx.thresholds.queued:g} s): no worker picked it up.",
        record_facts(ctx),
        [
            f"Check that a worker is running and not saturated (GET {ctx.links.base}/api/queue shows running jobs)",
            "Look for jobs stuck in running that hold the worker slots",
        ],
        Basis.DEFAULT,
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
        Verdict.ABANDONED,
        Severity.CRITICAL,
        0.8,
        f"Nothing about this job has changed for {ago(quiet)} (record, logs, output): it says "
        f"{describe_status(record)} but no process is working on it.",
        record_facts(ctx) + encoder_facts(ctx) + output_facts(ctx),
        [
            "The app probably crashed or restarted: Aura does not reconcile jobs at start-up, so it stays Running",
            f"Retry it ({ctx.post('retry')}) or cancel it ({ctx.post('cancel')})",
        ],
        Basis.INFERRED,
    )


def rule_no_progress(ctx: RuleContext) -> Finding | None:
    s, record = ctx.subject, ctx.subject.record
    if record is None or record.status.terminal or not s.stalled:
        return None
    return Finding(
        Verdict.NO_PROGRESS,
        Severity.WARNING,
        0.6,
        f"No progress for {ago(s.since_progress(ctx.now) or 0)} in stage {record.stage or '?'} at "
        f"{record.percent:g}% (threshold {s.threshold or 0:g} s), and no more specific cause was found.",
        record_facts(ctx) + encoder_facts(ctx) + output_facts(ctx),
        [
            "Open the job's log tail below and the app log for this stage",
            f"If nothing moves, cancel ({ctx.post('cancel')}) and retry",
        ],
        Basis.DEFAULT,
    )


def rule_active(ctx: RuleContext) -> Finding | None:
    s, record = ctx.subject, ctx.subject.record
    if record is None or record.status.terminal or s.stalled:
        return None
    since = s.since_progress(ctx.now) or 0.0
    left = f"{(s.threshold or 0) - since:.0f} s before it counts as stalled" if s.threshold else "no stall clock"
    if s.threshold_kind is ThresholdKind.FINALIZING:
        return Finding(
            Verdict.FINALIZING,
            Severity.INFO,
            0.8,
            f"Finalizing at {record.percent:g}% in stage {record.stage or '?'}; last progress {ago(since)} ago, "
            f"within the {s.threshold:g} s finalization threshold ({left}).",
            record_facts(ctx) + encoder_facts(ctx) + output_facts(ctx),
            ["Nothing to do yet: finalization (muxing, faststart, upload) reports little progress"],
        )
    return Finding(
        Verdict.HEALTHY,
        Severity.INFO,
        0.8,
        f"{describe_status(record)}, last progress {ago(since)} ago ({left}).",
        record_facts(ctx) + encoder_facts(ctx),
        ["Nothing to do"],
    )

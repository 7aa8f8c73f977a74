"""What every diagnosis rule reads: the context, shared predicates over the evidence, and evidence facts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..jobs.model import JobRecord
from ..jobs.stall import Thresholds
from ..records.timestamps import parse_iso, parse_log_time
from .evidence import Evidence, Fact, LogLine
from .links import JobLinks
from .subject import Subject

PROVIDER_ERROR = re.compile(
    r"\b(429|too many requests|rate.?limit|50[0-4]|service unavailable|bad gateway|gateway timeout|"
    r"timed? ?out|timeout|connection refused|connection reset|ECONNREFUSED|ETIMEDOUT)\b",
    re.IGNORECASE,
)
CAPS = (95.0, 99.0, 99.5)
ENCODER_FRESH_S = 5.0  # ffmpeg reports at least every second while it works
# A log line this recent is evidence of work: a retry loop backs off at most 4 s (pipeline/provider.py)
# and real clients rarely wait longer than 10 s between attempts.
LOG_FRESH_S = 15.0
_ISO_PREFIX = re.compile(r"\[(\d{4}-\d{2}-\d{2}T[^\]]+)\]")
DURATION_TOLERANCE = 0.9  # an output shorter than 90% of the expected duration is invalid


@dataclass(frozen=True, slots=True)
class RuleContext:
    subject: Subject
    evidence: Evidence
    thresholds: Thresholds
    now: float
    disk_floor_bytes: int
    unreadable_grace: float
    links: JobLinks  # absolute URLs from --external-url, an input like the thresholds: remediation names them

    def post(self, action: str) -> str:
        """A remediation step's request, e.g. `POST http://render-07:9465/api/jobs/<id>/retry`."""
        return self.links.post(action)


def line_time(text: str) -> float | None:
    """When a log line was written, from its `[yyyy-MM-dd HH:mm:ss]` (Aura) or `[ISO-8601]` (native) prefix."""
    at = parse_log_time(text)
    if at is None and (m := _ISO_PREFIX.match(text)):
        try:
            at = parse_iso(m.group(1))
        except ValueError:
            return None
    return at


def fresh_lines(ctx: RuleContext, lines: list[LogLine]) -> list[LogLine]:
    """The lines written in the last LOG_FRESH_S seconds (an undated line is never fresh)."""
    return [line for line in lines if line.at is not None and ctx.now - line.at <= LOG_FRESH_S]


def ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe_status(record: JobRecord) -> str:
    return f"{record.status.value.capitalize()} at {record.percent:g}% in stage {record.stage or '?'}"


def output_ok(ctx: RuleContext) -> bool:
    out = ctx.evidence.output
    record = ctx.subject.record
    if out is None or not out.exists or not out.size or out.truncated or not out.probed:
        return False
    expected = record.expected_duration_s if record else None
    return not (expected and out.duration_s is not None and out.duration_s < DURATION_TOLERANCE * expected)


def output_facts(ctx: RuleContext) -> list[Fact]:
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


def encoder_facts(ctx: RuleContext) -> list[Fact]:
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


def record_facts(ctx: RuleContext) -> list[Fact]:
    s = ctx.subject
    record = s.record
    if record is None:
        return []
    facts = [Fact("job.json", f"{record.raw_status}, stage {record.stage or '?'}, {record.percent:g}%")]
    since = s.since_progress(ctx.now)
    if since is not None and not record.status.terminal:
        learned = f", learned: {s.threshold_basis}" if s.threshold_source == "learned" else ""
        limit = f" (threshold {s.threshold:g} s, {s.threshold_kind}{learned})" if s.threshold is not None else ""
        facts.append(Fact("job.json", f"no progress for {ago(since)}{limit}"))
    if ctx.evidence.record_mtime is not None:
        facts.append(Fact("job.json", f"file last written {ago(ctx.now - ctx.evidence.record_mtime)} ago"))
    return facts


def encoder_percent(ctx: RuleContext) -> float | None:
    enc, record = ctx.evidence.encoder, ctx.subject.record
    if enc is None or enc.out_time_s is None or record is None or not record.expected_duration_s:
        return None
    return min(100.0, 100.0 * enc.out_time_s / record.expected_duration_s)


def encoder_fresh(ctx: RuleContext) -> bool:
    enc = ctx.evidence.encoder
    return bool(enc and not enc.ended and enc.mtime is not None and ctx.now - enc.mtime <= ENCODER_FRESH_S)


def encoder_moved_after_record(ctx: RuleContext) -> bool:
    enc, last = ctx.evidence.encoder, ctx.subject.last_progress_at
    return bool(enc and enc.mtime is not None and last is not None and enc.mtime > last + 1.0)

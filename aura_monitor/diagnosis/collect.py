"""Gathers the evidence for one job; every collector is bounded in time and says what it could not see."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..records.safe_read import MISSING, ReadRoots
from .activity import CPU_MEMORY
from .context import line_time
from .encoder import parse_progress_file, parse_stderr_log, read_tail
from .evidence import DiskEvidence, EncoderEvidence, Evidence, LogLine
from .media import Probe
from .processes import find_encoder, not_ours, sample_processes
from .subject import Subject

JOB_LOG_LINES = 30


@dataclass(frozen=True, slots=True)
class CollectOptions:
    jobs_dir: Path
    ffmpeg_log_dir: Path
    sample_window_s: float = 0.15
    probe_timeout_s: float = 2.0
    read_root: tuple[Path, ...] = ()  # operator-trusted dirs records may name logs in (--read-root)

    def roots(self) -> ReadRoots:
        """Where content (log tails, progress files) may be read from; any other path a record names is not."""
        return ReadRoots([self.jobs_dir, self.ffmpeg_log_dir, *self.read_root])


def _encoder(subject: Subject, options: CollectOptions, roots: ReadRoots, evidence: Evidence) -> EncoderEvidence | None:
    record = subject.record
    if record is not None and record.progress_file:
        encoder = parse_progress_file(record.progress_file, roots)
        if encoder.unread:
            evidence.missing("encoder", f"ffmpeg progress file {record.progress_file} was not read: {encoder.unread}")
        if record.encoder_log:
            log = parse_stderr_log(record.encoder_log, roots)
            if log.unread and log.unread != MISSING:
                evidence.missing("encoder", f"ffmpeg log {record.encoder_log} was not read: {log.unread}")
            encoder.errors = log.errors
            encoder.output_announced = log.output_announced
            encoder.ended = encoder.ended or log.ended
        return encoder if encoder.exists else None
    log_path = (
        record.encoder_log if record and record.encoder_log else str(options.ffmpeg_log_dir / f"{subject.job_id}.log")
    )
    encoder = parse_stderr_log(log_path, roots)
    if encoder.unread == MISSING:
        evidence.missing("encoder", f"no ffmpeg log at {log_path} (the job may not have reached Render yet)")
    elif encoder.unread:
        evidence.missing("encoder", f"ffmpeg log {log_path} was not read: {encoder.unread}")
    return encoder if encoder.exists else None


def _log_tail(subject: Subject, encoder: EncoderEvidence | None, roots: ReadRoots, evidence: Evidence) -> list[LogLine]:
    lines: list[LogLine] = []
    record = subject.record
    if record is not None:
        lines += [LogLine("job.json Logs", text, line_time(text)) for text in record.logs_tail]
        if record.job_log:
            tail = read_tail(record.job_log, roots, 16 * 1024)
            if isinstance(tail, str):
                evidence.missing("job log", f"{record.job_log} was not read: {tail}")
            else:
                texts = [text for text in tail[0].splitlines()[-JOB_LOG_LINES:] if text]
                logged = [LogLine(record.job_log, text, line_time(text)) for text in texts]
                if logged and logged[-1].at is None:
                    logged[-1].at = tail[1].st_mtime  # an append-only log: its mtime is when the last line came
                lines += logged
    if encoder is not None:
        lines += [LogLine(encoder.path, text) for text in encoder.errors]
    return lines


def _disks(subject: Subject, options: CollectOptions, output_path: str | None) -> list[DiskEvidence]:
    seen: set[int] = set()
    disks: list[DiskEvidence] = []
    candidates = [str(options.jobs_dir)]
    if output_path:
        candidates.append(os.path.dirname(output_path) or ".")
    for candidate in candidates:
        path = candidate
        while path and not os.path.exists(path):
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
        try:
            device = os.stat(path).st_dev
            if device in seen:
                continue
            usage = shutil.disk_usage(path)
        except OSError:
            continue
        seen.add(device)
        disks.append(DiskEvidence(path=path, free_bytes=usage.free, total_bytes=usage.total))
    return disks


def collect(subject: Subject, options: CollectOptions, *, active: bool) -> Evidence:
    """Evidence for `subject`; processes and output growth are sampled only for non-terminal jobs."""
    evidence = Evidence(record_path=subject.record_path, record_mtime=subject.record_mtime)
    if evidence.record_mtime is None:
        try:
            evidence.record_mtime = os.stat(subject.record_path).st_mtime
        except OSError:
            evidence.missing("job.json", f"cannot stat {subject.record_path}")
    if subject.unreadable_since is not None and subject.last_parse_error:
        evidence.missing("job.json", subject.last_parse_error)  # e.g. a FIFO or a link out of the jobs dir
    record = subject.record
    roots = options.roots()
    evidence.encoder = _encoder(subject, options, roots, evidence)
    # The record's output, else the file its encoder writes: named in the record, or announced in its log.
    output_path = (record.output_path or record.encoder_output if record else None) or (
        evidence.encoder.output_announced if evidence.encoder else None
    )
    pids: list[tuple[str, int]] = []
    found: frozenset[int] = frozenset()
    started: dict[int, float] = {}
    if record is not None and (elsewhere := not_ours(record)):
        evidence.missing("processes", elsewhere)  # never attribute another process's state to this job
    elif record is not None:
        pids = [(role, pid) for role, pid in (("worker", record.worker_pid), ("encoder", record.encoder_pid)) if pid]
        recorded = ((record.worker_pid, record.worker_started_at), (record.encoder_pid, record.encoder_started_at))
        started = {pid: at for pid, at in recorded if pid and at is not None}
        announced = evidence.encoder.output_announced if evidence.encoder else None
        if not pids and announced and not evidence.encoder.ended and (pid := find_encoder(announced)):  # type: ignore[union-attr]
            pids, found = [("encoder", pid)], frozenset({pid})
        if not pids and record.format.value == "aura":
            evidence.missing("processes", "Aura records carry no process ids and no running ffmpeg writes its output")
    window = options.sample_window_s if active and (pids or output_path) else 0.0
    if output_path:
        # ffprobe runs beside the sampling window (no thread: it is a child process until finish()).
        probe = Probe.start(output_path, options.probe_timeout_s)
        try:
            before = probe.evidence.size
            evidence.processes = sample_processes(pids, window, evidence.record_mtime, found, started) if pids else []
            if window and not pids:
                time.sleep(window)  # still give the output file a window to grow in
        finally:
            evidence.output = probe.finish()
        if before is not None and window:
            try:
                evidence.output.grew_bytes = os.lstat(output_path).st_size - before
            except OSError:
                evidence.output.grew_bytes = None
        if evidence.output.unprobed:
            evidence.missing("output", evidence.output.unprobed)
        if evidence.output.probe_error and "did not answer" in evidence.output.probe_error:
            evidence.missing("output", evidence.output.probe_error)
    elif pids:
        evidence.processes = sample_processes(pids, window, evidence.record_mtime, found, started)
    for process in evidence.processes:
        CPU_MEMORY.observe(process)  # the CPU over the last few seconds, for a loop that sleeps between retries
    evidence.log_tail = _log_tail(subject, evidence.encoder, roots, evidence)
    evidence.disks = _disks(subject, options, output_path)
    return evidence

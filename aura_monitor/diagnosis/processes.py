"""Is the worker or encoder process alive, and is it doing anything? (psutil, sampled over a short window)"""

from __future__ import annotations

import time

import psutil

from .evidence import ProcessEvidence

# A process created after the record naming its pid was written is someone else (pid reuse).
_REUSE_SLACK_S = 2.0


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def find_encoder(output_path: str) -> int | None:
    """The pid of an ffmpeg writing `output_path` (Aura records carry no pids, but its log names the output)."""
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            name = proc.info["name"] or ""
            cmdline = proc.info["cmdline"] or []
        except psutil.Error:
            continue
        if "ffmpeg" in name and output_path in cmdline:
            return int(proc.pid)
    return None


def sample_processes(
    pids: list[tuple[str, int]], window_s: float, record_written_at: float | None, found: frozenset[int] = frozenset()
) -> list[ProcessEvidence]:
    """State and CPU use of each (role, pid), measured over one shared window of `window_s` seconds.

    Pids in `found` were discovered by their command line now, so they cannot be stale (no reuse check).
    """
    alive: list[tuple[ProcessEvidence, psutil.Process, float]] = []
    out: list[ProcessEvidence] = []
    for role, pid in pids:
        evidence = ProcessEvidence(role=role, pid=pid)
        out.append(evidence)
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                evidence.status = proc.status()
                evidence.started_at = proc.create_time()
                evidence.name = proc.name()
                evidence.children = len(proc.children())
                if evidence.status == psutil.STATUS_ZOMBIE:
                    continue
                cpu = _cpu(proc)
        except psutil.ZombieProcess:
            evidence.status = psutil.STATUS_ZOMBIE  # exited, never reaped: dead for our purpose
            continue
        except psutil.NoSuchProcess:
            continue
        except psutil.AccessDenied:
            evidence.exists = True
            continue
        stale = record_written_at is not None and evidence.started_at > record_written_at + _REUSE_SLACK_S
        if stale and pid not in found:
            evidence.reused = True
            continue
        evidence.exists = True
        alive.append((evidence, proc, cpu))
    if alive and window_s > 0:
        time.sleep(window_s)
        for evidence, proc, before in alive:
            evidence.window_s = window_s
            try:
                evidence.cpu_delta_s = max(0.0, _cpu(proc) - before)
                evidence.status = proc.status()
            except psutil.Error:
                evidence.exists = evidence.status == psutil.STATUS_ZOMBIE
    return out

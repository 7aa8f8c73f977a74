"""Is the worker or encoder process alive, and is it doing anything? (psutil, sampled over a short window)"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import psutil

from ..jobs.model import JobRecord
from ..records.native import this_home
from .evidence import ProcessEvidence

# Without a recorded start time: a process created after the record naming its pid was written is someone
# else (pid reuse). With one, a start time off by more than this is someone else, older or younger.
_REUSE_SLACK_S = 2.0
_START_TOLERANCE_S = 1.0  # both sides compute boot time + start ticks; the record keeps milliseconds
SHARE_S = 1.0  # how long after a CPU window ends it still answers for the process
CHILDREN_TTL_S = 1.0  # how long one scan of every process's parent answers "how many children" for all

_children: tuple[float, dict[int, int]] | None = None  # (scanned at, pid -> number of direct children)
_children_lock = threading.Lock()
process_scans = 0  # scans of the whole process table since start (evidence for tests and debugging)


def child_count(pid: int) -> int:
    """How many direct children `pid` has, from a process-table scan shared by every caller for a second.

    psutil's children() reads every process's stat file (15 ms with 115 processes on a loaded 2-core host);
    a burst of 50 explains paid that 50 times, holding the cores the event loop needs.
    """
    global _children, process_scans  # guarded by _children_lock
    with _children_lock:
        now = time.monotonic()
        if _children is None or now - _children[0] > CHILDREN_TTL_S:
            counts: dict[int, int] = {}
            for proc in psutil.process_iter(["ppid"]):
                parent = proc.info["ppid"]
                if parent is not None:
                    counts[parent] = counts.get(parent, 0) + 1
            _children = (now, counts)
            process_scans += 1
        return _children[1].get(pid, 0)


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def not_ours(record: JobRecord) -> str | None:
    """Why the pids in `record` do not name processes this sidecar can see (another machine or PID
    namespace), or None when they do or the record does not say where they were read."""
    home, here = record.worker_home, this_home()
    if home is None:
        return None
    fix = (
        "Diagnosing from files only. To see the worker's processes, run the sidecar in the worker's PID "
        'namespace (compose: pid: "service:worker"; docs/operations.md) on the same machine'
    )
    if home.boot_id and here.boot_id:
        if home.boot_id != here.boot_id:
            return (
                f"the worker ran on another machine or before a reboot (host {home.host or '?'}, boot id "
                f"{home.boot_id}; this sidecar: host {here.host}, boot id {here.boot_id}): its pids name "
                f"other processes here. {fix}."
            )
    elif home.host and here.host and home.host != here.host:
        return (
            f"the worker ran on host {home.host}, this sidecar on {here.host}: its pids name other processes "
            f"here. {fix}."
        )
    if home.pid_namespace and here.pid_namespace and home.pid_namespace != here.pid_namespace:
        return (
            f"the worker ran in PID namespace {home.pid_namespace}, this sidecar is in {here.pid_namespace}: "
            f"pid {record.worker_pid or record.encoder_pid} here is another process. {fix}."
        )
    return None


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
    pids: list[tuple[str, int]],
    window_s: float,
    record_written_at: float | None,
    found: frozenset[int] = frozenset(),
    started: Mapping[int, float] | None = None,
) -> list[ProcessEvidence]:
    """State and CPU use of each (role, pid), measured over one shared window of `window_s` seconds.

    Pids in `found` were discovered by their command line now, so they cannot be stale (no reuse check).
    `started` holds the start time the record gives a pid: a process that started at another time holds a
    reused pid, even one older than the record.
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
                evidence.children = child_count(pid)
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
        recorded = started.get(pid) if started else None
        if recorded is not None:
            stale = abs(evidence.started_at - recorded) > _START_TOLERANCE_S
        else:
            stale = record_written_at is not None and evidence.started_at > record_written_at + _REUSE_SLACK_S
        if stale and pid not in found:
            evidence.reused = True
            continue
        evidence.exists = True
        alive.append((evidence, proc, cpu))
    if alive and window_s > 0:
        _measure(alive, window_s)
    return out


@dataclass(slots=True)
class _Window:
    """One CPU measurement of one process, shared by every diagnosis that asks for it meanwhile."""

    started: float
    done: threading.Event = field(default_factory=threading.Event)
    cpu_delta: float | None = None  # None: the process went away during the window
    status: str | None = None


_windows: dict[tuple[int, float | None], _Window] = {}
_windows_lock = threading.Lock()
windows_measured = 0  # CPU windows actually measured since start (evidence for tests and debugging)


def _measure(alive: list[tuple[ProcessEvidence, psutil.Process, float]], window_s: float) -> None:
    """CPU use of each process over `window_s`; a window started (or ended) less than SHARE_S ago is reused.

    Concurrent explains of jobs with the same worker (or one job, re-diagnosed as it is explained) then cost
    one 150 ms sample, not one each.
    """
    global windows_measured  # a plain counter, guarded by _windows_lock
    now = time.monotonic()
    mine: list[tuple[psutil.Process, float, _Window]] = []
    used: list[tuple[ProcessEvidence, _Window]] = []
    with _windows_lock:
        for key in [k for k, w in _windows.items() if now - w.started > window_s + SHARE_S]:
            del _windows[key]
        for evidence, proc, before in alive:
            key = (proc.pid, evidence.started_at)  # the start time tells a reused pid apart
            shared = _windows.get(key)
            if shared is None:
                shared = _windows[key] = _Window(now)
                mine.append((proc, before, shared))
                windows_measured += 1
            used.append((evidence, shared))
    try:
        if mine:
            time.sleep(window_s)
        for proc, before, shared in mine:
            try:
                shared.cpu_delta = max(0.0, _cpu(proc) - before)
                shared.status = proc.status()
            except psutil.Error:
                shared.cpu_delta = None
    finally:
        for _, _, shared in mine:
            shared.done.set()
    # A reused measurement still leaves the caller a whole window, in which its output file may grow.
    time.sleep(max(0.0, window_s - (time.monotonic() - now)))
    for evidence, shared in used:
        shared.done.wait(window_s + 5)  # bounded even if the measuring thread died
        evidence.window_s = window_s
        if shared.cpu_delta is None:
            evidence.exists = evidence.status == psutil.STATUS_ZOMBIE
        else:
            evidence.cpu_delta_s, evidence.status = shared.cpu_delta, shared.status

"""Stopping every process a command started, however deep: stopped ones are woken first, then terminated,
then killed; orphans come back to us (a child subreaper), so none is left running after we exit."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import signal
import subprocess

import psutil

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
GRACE_S = 5.0  # how long a terminated process may take to clean up before it is killed


def become_subreaper() -> bool:
    """Adopt our orphaned descendants (a render whose parent died), so they stay findable; Linux only."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _descendants() -> list[psutil.Process]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def _signal(procs: list[psutil.Process], sig: signal.Signals) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def stop_children(main: subprocess.Popen[bytes] | None, grace_s: float = GRACE_S) -> list[psutil.Process]:
    """Terminate `main` (it may stop its own children first) and every other descendant; return the ones
    that outlived SIGKILL (none, unless the kernel refuses)."""
    procs = _descendants()
    # SIGCONT first: a stopped process (SIGSTOP, state T) keeps a SIGTERM pending until it is woken.
    _signal(procs, signal.SIGCONT)
    if main is not None and main.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            main.send_signal(signal.SIGTERM)
    _signal([p for p in procs if main is None or p.pid != main.pid], signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    # Anything started meanwhile (an encoder launched as we signalled) or adopted since is found again.
    late = [p for p in _descendants() if p not in alive]
    _signal(alive + late, signal.SIGCONT)
    _signal(alive + late, signal.SIGKILL)
    _, left = psutil.wait_procs(alive + late, timeout=grace_s)
    if main is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            main.wait(1)
    for proc in left:
        log.warning("process %d (%s) survived SIGKILL; stop it by hand: kill -9 %d", proc.pid, _name(proc), proc.pid)
    return left


def _name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return "?"

"""Scenario builders shared by the diagnosis tests: real media, a live encoder, records as writers write them."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from aura_monitor.config import Settings, load_settings
from aura_monitor.diagnosis import explain_offline
from tests.support import write_native
from tests.support.aura_writer import RUNNING, AuraJob, net_time


def settings_for(root: Path, **extra: Any) -> Settings:
    # Encoders started under <root>/render write their logs there: a dir the operator trusts (--read-root).
    read_root = [root / "render", *extra.pop("read_root", [])]
    return load_settings(jobs_dir=root / "jobs", read_root=read_root, **extra)


def explain(root: Path, job_id: str, **extra: Any) -> dict[str, Any]:
    return explain_offline(settings_for(root, **extra), job_id).body


def aura(
    root: Path,
    job_id: str,
    *,
    stage: str,
    percent: int,
    quiet_s: float,
    status: int = RUNNING,
    duration_s: float = 2.0,
    **extra: Any,
) -> AuraJob:
    """An Aura record whose last progress (and file mtime) was `quiet_s` seconds ago."""
    now = time.time()
    job = AuraJob(
        root / "jobs",
        id=job_id,
        status=status,
        created=now - quiet_s - 100,
        started=now - quiet_s - 90,
        target_duration_s=duration_s,
        extra=extra,
    )
    job.progress(now - quiet_s - 10, stage, max(0, percent - 5))
    job.progress(now - quiet_s, stage, percent)
    job.write()
    os.utime(job.path, (now - quiet_s, now - quiet_s))
    return job


def aura_log(root: Path, job_id: str, source: Path, age_s: float) -> Path:
    log = root / "Logs" / "ffmpeg" / f"{job_id}.log"
    shutil.copy(source, log)
    stamp = time.time() - age_s
    os.utime(log, (stamp, stamp))
    return log


def verdict(body: dict[str, Any]) -> str:
    return str(body["verdict"])


def native_running(root: Path, job_id: str, quiet_s: float, **fields: Any) -> None:
    stamp = net_time(time.time() - quiet_s)
    write_native(root / "jobs", job_id, lastProgressAt=stamp, startedAt=stamp, **fields)

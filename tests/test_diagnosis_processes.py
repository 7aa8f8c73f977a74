"""Process evidence only when it is ours to see: another PID namespace, another machine or a reused pid
(even one held by a process older than the record) is never reported as the worker or its encoder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from aura_monitor.records.native import this_home
from aura_monitor.records.timestamps import format_iso
from aura_monitor.reporter.record import NativeRecord
from tests.support import wait_for, write_native
from tests.support.board import enqueue, require_ffmpeg
from tests.support.diagnosis_scenarios import explain

PROCESS_VERDICTS = {"process_hung", "process_dead"}


def _process_facts(body: dict[str, Any]) -> list[str]:
    return [e["fact"] for f in body["findings"] for e in f["evidence"] if e["source"] == "processes"]


def _not_seen(body: dict[str, Any], source: str) -> list[str]:
    return [n["fact"] for n in body["notSeen"] if n["source"] == source]


@contextmanager
def _worker_in_own_pid_namespace(jobs_dir: Path, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`aura-monitor worker` as pid 1 of a new PID namespace (what separate containers give)."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare is missing: install util-linux")
    if os.geteuid() != 0:
        pytest.fail("a new PID namespace needs root (CI runs the tests as root)")
    with log_path.open("wb") as log:
        unshare = ["unshare", "--pid", "--fork", "--mount-proc"]
        worker = [sys.executable, "-m", "aura_monitor", "worker", "--jobs-dir", str(jobs_dir), "--poll-interval", "0.1"]
        process = subprocess.Popen(
            [*unshare, *worker],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=jobs_dir.parent,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            # Killing the namespace's pid 1 makes the kernel kill every process in it (renders, a stopped ffmpeg).
            for child in psutil.Process(process.pid).children():
                child.kill()
            process.kill()
            process.wait(15)


def test_a_worker_in_its_own_pid_namespace_is_diagnosed_from_files_never_from_the_pids_it_records(
    tmp_path: Path,
) -> None:
    require_ffmpeg()
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    job_id = enqueue(jobs_dir, "ns-hang", "--duration", "4", "--fault", "hang-encoder")
    record_path = jobs_dir / job_id / "job.json"

    def encoder_recorded() -> dict[str, Any] | None:
        doc: dict[str, Any] = json.loads(record_path.read_text())
        return doc if (doc.get("encoder") or {}).get("pid") and (doc.get("worker") or {}).get("pidNamespace") else None

    with _worker_in_own_pid_namespace(jobs_dir, tmp_path / "worker.log"):
        doc = wait_for(encoder_recorded, 60, "the worker in its namespace to record its encoder", ignoring=(OSError,))
        # The premise: these pids were read in another namespace; here they name other processes, or none.
        assert doc["worker"]["pidNamespace"] != this_home().pid_namespace
        assert doc["worker"]["bootId"] == this_home().boot_id
        worker_pid, encoder_pid = doc["worker"]["pid"], doc["encoder"]["pid"]
        bodies: list[dict[str, Any]] = []

        def stalled_and_explained() -> bool:
            body = explain(tmp_path, job_id, stall_threshold=2.0)
            bodies.append(body)
            return bool(body["stalled"])

        wait_for(stalled_and_explained, 60, "the stopped encoder's job to stall", interval=0.5)
    for body in bodies:
        assert _process_facts(body) == [], body["findings"]
        assert body["verdict"] not in PROCESS_VERDICTS, body["summary"]
        [why] = _not_seen(body, "processes")
        assert f"PID namespace {doc['worker']['pidNamespace']}" in why and "files only" in why, why
        assert f"pid {worker_pid} here is another process" in why, why
    # Diagnosed from the files: the stall itself is still reported, with a verdict that needs no process.
    assert bodies[-1]["stalled"] and bodies[-1]["verdict"] not in {"ok", "running"}, bodies[-1]["verdict"]
    assert encoder_pid != worker_pid


def _record_for(tmp_path: Path, job_id: str, pid: int, started_at: float | None, **worker: Any) -> None:
    now = time.time()
    write_native(
        tmp_path / "jobs",
        job_id,
        startedAt=format_iso(now - 30),
        lastProgressAt=format_iso(now - 30),
        worker={
            "pid": pid,
            "host": this_home().host,
            "bootId": this_home().boot_id,
            "pidNamespace": this_home().pid_namespace,
            "startedAt": format_iso(started_at) if started_at is not None else None,
            **worker,
        },
    )


def test_a_pid_held_by_a_process_older_than_the_record_is_refused_as_reused(tmp_path: Path) -> None:
    older = subprocess.Popen(["sleep", "60"])
    try:
        wait_for(lambda: time.time() - psutil.Process(older.pid).create_time() > 2.5, 10, "the older process to age")
        # The job's worker started just now and wrote its record; its pid is now held by `older`, which
        # started before the record: the "created after the record" check alone would take it for the worker.
        _record_for(tmp_path, "reused-by-older", older.pid, time.time())
        body = explain(tmp_path, "reused-by-older", stall_threshold=5.0)
        assert body["verdict"] == "process_dead", body["summary"]
        assert "pid reused" in body["summary"], body["summary"]
        assert f"worker pid {older.pid}: gone" in _process_facts(body)
        assert not any("sleeping" in fact for fact in _process_facts(body))

        # The same process with its own start time recorded is the worker, seen alive (the check can pass).
        _record_for(tmp_path, "its-own", older.pid, psutil.Process(older.pid).create_time())
        body = explain(tmp_path, "its-own", stall_threshold=5.0)
        assert body["verdict"] != "process_dead", body["summary"]
        assert any(fact.startswith(f"worker pid {older.pid}: sleeping") for fact in _process_facts(body)), body
    finally:
        older.send_signal(signal.SIGKILL)
        older.wait(10)


def test_a_worker_on_another_machine_is_not_looked_for_here(tmp_path: Path) -> None:
    # Our own pid, on a machine with another boot id: the same number, another process.
    _record_for(tmp_path, "elsewhere", os.getpid(), time.time(), bootId="0" * 8 + "-0000-4000-8000-" + "0" * 12)
    body = explain(tmp_path, "elsewhere", stall_threshold=5.0)
    assert _process_facts(body) == [] and body["verdict"] not in PROCESS_VERDICTS, body["summary"]
    [why] = _not_seen(body, "processes")
    assert "another machine or before a reboot" in why and "files only" in why, why


def test_the_reporter_records_where_its_pids_mean_something(tmp_path: Path) -> None:
    record = NativeRecord(id="identity")
    record.set_worker(os.getpid())
    worker = record.to_json()["worker"]
    home = this_home()
    assert (worker["host"], worker["bootId"], worker["pidNamespace"]) == (home.host, home.boot_id, home.pid_namespace)
    assert worker["pidNamespace"].startswith("pid:[")
    assert worker["startedAt"] == format_iso(psutil.Process().create_time())
    again = NativeRecord.from_json(record.to_json())
    assert again.worker_pid_namespace == home.pid_namespace and again.worker_started_at is not None

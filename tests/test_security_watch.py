"""Watcher honesty and writes that never follow a link, against real inotify, real links and a real server.

Every sidecar here rescans only every 600 s, so an update seen within seconds can only have come through
an inotify watch.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aura_monitor.config import load_settings
from aura_monitor.sidecar import Sidecar
from tests.support import HANG_S, STARTUP_S, scraped, wait_for, write_native
from tests.support.live_server import live_server
from tests.support.live_stack import ManagedProcess, free_port, poll, require_binary, sidecar_argv

NO_RESCAN = 600.0


def percent_of(sidecar: Sidecar, job_id: str) -> float | None:
    state = sidecar.tracker.get(job_id)
    return state.record.percent if state and state.record else None


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path]:
    """A jobs dir reached through a symlink: (link, target)."""
    target = tmp_path / "real-jobs"
    target.mkdir()
    link = tmp_path / "jobs"
    link.symlink_to(target)
    return link, target


@pytest.fixture
def started(linked: tuple[Path, Path]) -> Iterator[Sidecar]:
    sidecar = Sidecar(load_settings(jobs_dir=linked[0], rescan_interval=NO_RESCAN))
    sidecar.start()
    wait_for(lambda: sidecar.ready, what="sidecar ready")
    yield sidecar
    sidecar.stop()


def test_a_symlinked_jobs_dir_is_watched_at_its_target(started: Sidecar, linked: tuple[Path, Path]) -> None:
    link, target = linked
    write_native(link, "through-link", percent=10.0)
    wait_for(lambda: percent_of(started, "through-link") == 10.0, timeout=HANG_S, what="the new job, by inotify")
    write_native(target, "through-link", percent=20.0, revision=2)  # written at the target: the same dir
    wait_for(lambda: percent_of(started, "through-link") == 20.0, timeout=HANG_S, what="the update, by inotify")
    assert started.watcher.real_root == str(target)


def test_re_pointing_the_link_rescans_and_watches_the_new_target(
    started: Sidecar, linked: tuple[Path, Path], tmp_path: Path
) -> None:
    link, _ = linked
    write_native(link, "old-target", percent=5.0)
    wait_for(lambda: percent_of(started, "old-target") == 5.0, timeout=HANG_S, what="job in the first target")
    other = tmp_path / "other-jobs"
    write_native(other, "new-target", percent=30.0)
    swap = tmp_path / "jobs.new"
    swap.symlink_to(other)
    os.replace(swap, link)  # as `ln -sfn` does: the link is replaced in one rename
    wait_for(lambda: started.tracker.get("old-target") is None, timeout=HANG_S, what="the old target's job dropped")
    wait_for(lambda: percent_of(started, "new-target") == 30.0, timeout=HANG_S, what="the new target's job")
    write_native(link, "new-target", percent=31.0, revision=2)
    wait_for(lambda: percent_of(started, "new-target") == 31.0, timeout=HANG_S, what="an update in the new target")
    assert started.watcher.real_root == str(other) and started.ready


def test_a_junk_tree_inside_a_job_dir_adds_no_watches(started: Sidecar, linked: tuple[Path, Path]) -> None:
    link, _ = linked
    write_native(link, "junky", percent=1.0)
    wait_for(lambda: percent_of(started, "junky") == 1.0, timeout=HANG_S, what="job seen")
    watches = started.watcher._watches
    assert watches is not None and watches.watch_count == 2  # the jobs dir and the job dir
    for i in range(30):
        (link / "junky" / "frames" / f"chunk-{i}" / "tiles").mkdir(parents=True)
    write_native(link, "junky", percent=2.0, revision=2)
    wait_for(lambda: percent_of(started, "junky") == 2.0, timeout=HANG_S, what="an update after the junk")
    assert watches.watch_count == 2
    assert started.watcher.stats.unwatched_dirs == 0


def test_job_dirs_created_or_replaced_while_the_queue_overflowed_are_watched_after_it(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = sidecar_argv(jobs, port, "--rescan-interval", str(NO_RESCAN))
    process = ManagedProcess("sidecar", serve, tmp_path / "sidecar.log")
    try:
        for i in range(30):
            write_native(jobs, f"busy-{i:02d}", percent=0.0)
        poll(lambda: _percent(url, "busy-29") == 0.0, STARTUP_S, "the busy jobs")
        os.kill(process.process.pid, signal.SIGSTOP)  # nobody reads the queue: 18,000 events overflow its 16,384
        for revision in range(1, 201):
            for i in range(30):
                write_native(jobs, f"busy-{i:02d}", revision=revision, percent=revision / 2)
        write_native(jobs, "late", percent=1.0)  # its dir's creation event is among the lost ones
        shutil.rmtree(jobs / "busy-05")  # and so are the old dir's removal and the new one's creation
        write_native(jobs, "busy-05", percent=7.0)
        os.kill(process.process.pid, signal.SIGCONT)
        poll(lambda: (_metric(url, "aura_watcher_overflows_total") or 0) >= 1, HANG_S, "the overflow counted")
        poll(lambda: _percent(url, "late") == 1.0, HANG_S, "the late job, found by the rescan the overflow triggered")
        write_native(jobs, "late", percent=2.0, revision=2)
        poll(lambda: _percent(url, "late") == 2.0, HANG_S, "an update in the late job's dir, by inotify")
        assert _percent(url, "busy-00") == 100.0
        poll(lambda: _percent(url, "busy-05") == 7.0, HANG_S, "the replaced job dir, by the rescan")
        write_native(jobs, "busy-05", percent=8.0, revision=2)
        poll(lambda: _percent(url, "busy-05") == 8.0, HANG_S, "an update in the replaced dir, by inotify")
    finally:
        os.kill(process.process.pid, signal.SIGCONT)
        process.stop()


# -- the inotify watch limit, lowered for a sidecar in its own user namespace -----------------------------
# /proc/sys/user/max_inotify_watches is per user namespace (and counted against every ancestor's), so the
# limit is lowered for this sidecar alone: nothing else on the machine shares it.

LIMIT_FILE = "/proc/sys/user/max_inotify_watches"
INSTANCES_FILE = "/proc/sys/user/max_inotify_instances"


def _set_limit(pid: int, limit: int, path: str = LIMIT_FILE) -> None:
    nsenter = require_binary("nsenter", "util-linux")
    subprocess.run([nsenter, "-t", str(pid), "-U", "sh", "-c", f"echo {limit} > {path}"], check=True, timeout=10)


def _sidecar_in_own_namespace(tmp_path: Path, jobs: Path, port: int, limits: str) -> ManagedProcess:
    """`aura-monitor serve` in a new user namespace whose inotify limits are set by `limits` (shell) first."""
    unshare = require_binary("unshare", "util-linux")
    serve = sidecar_argv(jobs, port, "--rescan-interval", str(NO_RESCAN))
    argv = [unshare, "-U", "-r", "sh", "-c", f'{limits} && exec "$@"', "sh", *serve]
    return ManagedProcess("sidecar", argv, tmp_path / "sidecar.log")


def _metric(url: str, name: str) -> float | None:
    return scraped(httpx.get(f"{url}/metrics", timeout=HANG_S).text).get((name, frozenset()))


def _percent(url: str, job_id: str) -> float | None:
    answer = httpx.get(f"{url}/api/jobs/{job_id}", timeout=HANG_S)
    return answer.json()["percent"] if answer.status_code == 200 else None


def test_dirs_over_the_watch_limit_are_reported_then_watched_once_it_is_raised(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    for job_id in ("a", "b"):
        write_native(jobs, job_id, percent=1.0)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Room for the jobs dir and the two job dirs present at start; nothing more.
    process = _sidecar_in_own_namespace(tmp_path, jobs, port, f"echo 3 > {LIMIT_FILE}")
    try:
        poll(lambda: _percent(url, "b") == 1.0, STARTUP_S, "the sidecar serving the first jobs")
        write_native(jobs, "c", percent=1.0)
        write_native(jobs, "d", percent=1.0)
        poll(lambda: _metric(url, "aura_watcher_unwatched_dirs") == 2, HANG_S, "the two refused dirs counted")
        ready = httpx.get(f"{url}/readyz", timeout=HANG_S)
        assert ready.status_code == 200  # degraded, not dropped: the rescan still sees every change
        body = ready.json()
        assert body["status"] == "degraded" and body["unwatchedDirs"] == 2
        assert "fs.inotify.max_user_watches" in body["reasons"][0]
        write_native(jobs, "a", percent=2.0, revision=2)  # the watched dirs still hear their writes
        poll(lambda: _percent(url, "a") == 2.0, HANG_S, "an update in a watched dir")

        _set_limit(process.process.pid, 100)
        poll(lambda: _metric(url, "aura_watcher_unwatched_dirs") == 0, HANG_S, "the refused watches retried")
        assert httpx.get(f"{url}/readyz", timeout=HANG_S).json()["status"] == "ready"
        poll(lambda: _percent(url, "d") == 1.0, HANG_S, "the record written while unwatched, read once watched")
        write_native(jobs, "c", percent=3.0, revision=2)
        poll(lambda: _percent(url, "c") == 3.0, HANG_S, "an update in a dir watched after the raise")
        process.check_alive()
    finally:
        process.stop()
    log_text = (tmp_path / "sidecar.log").read_text()
    assert log_text.count("watcher degraded") == 1, log_text
    assert "sysctl -w fs.inotify.max_user_watches" in log_text
    assert "watched again" in log_text


def test_no_inotify_instance_left_means_degraded_then_watching_once_one_is_allowed(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    write_native(jobs, "early", percent=1.0)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = _sidecar_in_own_namespace(tmp_path, jobs, port, f"echo 0 > {INSTANCES_FILE}")
    try:
        poll(lambda: _percent(url, "early") == 1.0, STARTUP_S, "the start-up scan, without inotify")
        poll(
            lambda: httpx.get(f"{url}/readyz", timeout=HANG_S).json()["status"] == "degraded", HANG_S, "readyz degraded"
        )
        ready = httpx.get(f"{url}/readyz", timeout=HANG_S)
        assert ready.status_code == 200 and "inotify unavailable" in ready.json()["reasons"][0]
        assert _metric(url, "aura_watcher_unwatched_dirs") == 1  # the jobs dir itself
        _set_limit(process.process.pid, 8, INSTANCES_FILE)
        poll(lambda: httpx.get(f"{url}/readyz", timeout=5).json()["status"] == "ready", HANG_S, "watching")
        write_native(jobs, "early", percent=2.0, revision=2)
        poll(lambda: _percent(url, "early") == 2.0, HANG_S, "an update heard by inotify")
        process.check_alive()
    finally:
        process.stop()
    log_text = (tmp_path / "sidecar.log").read_text()
    assert log_text.count("watcher degraded") == 1, log_text


# -- writes never follow a link ----------------------------------------------------------------------------


def _refused(answer: httpx.Response) -> str:
    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    detail: str = answer.json()["detail"]
    assert "symbolic link" in detail
    return detail


@pytest.mark.parametrize("linked_dir", ["requests", "monitor"])
def test_a_retry_never_writes_through_a_linked_job_subdir(jobs_dir: Path, tmp_path: Path, linked_dir: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    write_native(jobs_dir, "job", status="failed", error={"code": "E1", "message": "boom"})
    (jobs_dir / "job" / linked_dir).symlink_to(outside)
    with live_server(jobs_dir) as server:
        wait_for(lambda: server.sidecar.tracker.get("job") is not None, what="job known")
        detail = _refused(httpx.post(f"{server.url}/api/jobs/job/retry"))
        assert f"job/{linked_dir}" in detail
    assert list(outside.iterdir()) == []


def test_a_cancel_never_writes_through_a_linked_requests_dir(jobs_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    write_native(jobs_dir, "job", status="running")
    (jobs_dir / "job" / "requests").symlink_to(outside)
    with live_server(jobs_dir) as server:
        wait_for(lambda: server.sidecar.tracker.get("job") is not None, what="job known")
        _refused(httpx.post(f"{server.url}/api/jobs/job/cancel"))
    assert list(outside.iterdir()) == []


def test_a_linked_retry_history_is_neither_followed_nor_replaced(jobs_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "important.json"
    victim.write_text('{"keep": true}')
    write_native(jobs_dir, "job", status="failed", error={"code": "E1", "message": "boom"})
    (jobs_dir / "job" / "monitor").mkdir()
    (jobs_dir / "job" / "monitor" / "retries.json").symlink_to(victim)
    (jobs_dir / "job" / "requests").mkdir()
    with live_server(jobs_dir) as server:
        wait_for(lambda: server.sidecar.tracker.get("job") is not None, what="job known")
        _refused(httpx.post(f"{server.url}/api/jobs/job/retry"))
    assert json.loads(victim.read_text()) == {"keep": True}
    assert sorted(p.name for p in outside.iterdir()) == ["important.json"]
    assert list((jobs_dir / "job" / "requests").iterdir()) == []  # refused before anything was asked
    assert (jobs_dir / "job" / "monitor" / "retries.json").is_symlink()


def test_a_linked_job_dir_in_the_state_dir_is_not_written_through(jobs_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    (state / "job").symlink_to(outside)
    write_native(jobs_dir, "job", status="failed", error={"code": "E1", "message": "boom"})
    with live_server(jobs_dir, state_dir=state) as server:
        wait_for(lambda: server.sidecar.tracker.get("job") is not None, what="job known")
        detail = _refused(httpx.post(f"{server.url}/api/jobs/job/retry"))
        assert str(state / "job") in detail
    assert list(outside.iterdir()) == []
    assert not (jobs_dir / "job" / "requests").exists()


def test_a_linked_lock_file_refuses_the_retry(jobs_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    write_native(jobs_dir, "job", status="failed", error={"code": "E1", "message": "boom"})
    (jobs_dir / "job" / "monitor").mkdir()
    (jobs_dir / "job" / "monitor" / "retries.lock").symlink_to(outside / "created-by-us")
    with live_server(jobs_dir) as server:
        wait_for(lambda: server.sidecar.tracker.get("job") is not None, what="job known")
        _refused(httpx.post(f"{server.url}/api/jobs/job/retry"))
    assert list(outside.iterdir()) == []

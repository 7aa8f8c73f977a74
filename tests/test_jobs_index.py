"""The tracker's indexes (jobs/index.py) always agree with a full scan, and page routes build page-many views."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aura_monitor.api.jobs as jobs_api
from aura_monitor.api.app import create_app
from aura_monitor.config import load_settings
from aura_monitor.jobs.index import SortedKeys, finished_at, recency
from aura_monitor.jobs.model import JobRecord, JobStatus, RecordFormat
from aura_monitor.jobs.stall import Thresholds
from aura_monitor.jobs.tracker import JobState, Tracker
from aura_monitor.sidecar import Sidecar
from tests.support import wait_for, write_native
from tests.support.aura_writer import net_time

IDS = [f"j{i}" for i in range(8)]
STATUSES = list(JobStatus)


def record(job_id: str, status: JobStatus, created: float | None, completed: float | None, at: float) -> JobRecord:
    return JobRecord(
        id=job_id,
        format=RecordFormat.NATIVE,
        status=status,
        stage="Render",
        percent=50.0,
        raw_status=status.value,
        created_at=created,
        completed_at=completed,
        last_progress_at=at,
    )


# One step of a job's life: a record (any status, any stamps), an unreadable read, a removal, or time passing.
steps = st.one_of(
    st.tuples(
        st.just("apply"),
        st.sampled_from(IDS),
        st.sampled_from(STATUSES),
        st.one_of(st.none(), st.integers(0, 5).map(float)),
        st.one_of(st.none(), st.integers(0, 5).map(float)),
    ),
    st.tuples(st.just("fail"), st.sampled_from(IDS)),
    st.tuples(st.just("remove"), st.sampled_from(IDS)),
    st.tuples(st.just("tick"), st.integers(1, 100).map(float)),
)


def full_scan(tracker: Tracker) -> dict[str, Any]:
    """What the index must say, computed the slow way from every job."""
    states = tracker.jobs()
    readable = [s for s in states if s.record is not None]

    def status_of(s: JobState) -> JobStatus:
        assert s.record is not None
        return s.record.status

    newest = sorted(readable, key=lambda s: (recency(s), s.id), reverse=True)
    finished = sorted(
        (s for s in readable if status_of(s).terminal), key=lambda s: (finished_at(s), s.id), reverse=True
    )
    return {
        "counts": {status: sum(1 for s in readable if status_of(s) is status) for status in JobStatus},
        "newest": [s.id for s in newest],
        "running": [s.id for s in newest if status_of(s) is JobStatus.RUNNING],
        "stalled": [s.id for s in newest if s.stalled],
        "unreadable": {s.id for s in states if s.unreadable_reported},
        "active": {s.id for s in states if s.record is None or not status_of(s).terminal},
        "finished": [s.id for s in finished],
        "size": len(states),
    }


def from_index(tracker: Tracker) -> dict[str, Any]:
    index = tracker.index
    return {
        "counts": index.counts(),
        "newest": list(index.newest()),
        "running": list(index.newest({JobStatus.RUNNING})),
        "stalled": index.newest_stalled(),
        "unreadable": set(index.unreadable),
        "active": set(index.active()),
        "finished": index.recently_finished(None),
        "size": len(index),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, max_size=60))
def test_the_index_matches_a_full_scan_after_any_sequence_of_changes(sequence: list[tuple[Any, ...]]) -> None:
    tracker = Tracker(Thresholds(default=30.0, queued=30.0, finalizing=30.0), unreadable_grace=5.0)
    now = 1000.0
    for step in sequence:
        kind = step[0]
        if kind == "apply":
            _, job_id, status, created, completed = step
            tracker.apply(f"/jobs/{job_id}/job.json", record(job_id, status, created, completed, now), now)
        elif kind == "fail":
            tracker.record_failure(step[1], f"/jobs/{step[1]}/job.json", "truncated", now)
        elif kind == "remove":
            tracker.remove(step[1], now)
        else:
            now += step[1]
            tracker.tick(now)
        assert from_index(tracker) == full_scan(tracker), f"after {step}"
    assert tracker.index.recently_finished(2) == full_scan(tracker)["finished"][:2]


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 40), st.sampled_from("abc")), max_size=3000))
def test_sorted_keys_stay_sorted_through_adds_and_removes_across_chunk_splits(ops: list[tuple[bool, int, str]]) -> None:
    keys = SortedKeys()
    model: list[tuple[float, str]] = []
    for add, instant, job in ops:
        key = (float(instant), job)
        if add:
            keys.add(key)
            model.append(key)
        elif key in model:
            keys.remove(key)
            model.remove(key)
    assert list(keys.newest()) == sorted(model, reverse=True)
    assert len(keys) == len(model)


def test_removing_a_key_that_is_not_there_raises_key_error() -> None:
    keys = SortedKeys()
    keys.add((1.0, "a"))
    with pytest.raises(KeyError):
        keys.remove((1.0, "b"))


JOBS = 300  # 240 finished, 54 running, 6 stalled: like the 100k bench fleet, small enough for a test


@pytest.fixture
def fleet(jobs_dir: Path) -> Iterator[tuple[TestClient, Sidecar]]:
    now = time.time()
    for i in range(JOBS):
        kind = i % 50
        created = net_time(now - 10_000 + i)
        if kind < 40:
            write_native(jobs_dir, f"f{i:03d}", status="completed", percent=100.0, createdAt=created)
        elif kind < 49:
            write_native(jobs_dir, f"f{i:03d}", createdAt=created, lastProgressAt=net_time(now))
        else:
            write_native(jobs_dir, f"f{i:03d}", createdAt=created, lastProgressAt=net_time(now - 7200))
    sidecar = Sidecar(load_settings(jobs_dir=jobs_dir, stall_threshold=3600))
    with TestClient(create_app(sidecar), base_url="http://localhost") as client:
        wait_for(lambda: sidecar.tracker.index.readable() == JOBS, 30, f"{JOBS} jobs read")
        yield client, sidecar


class Counted:
    """Wraps a view builder and counts its calls."""

    def __init__(self, build: Any) -> None:
        self.build = build
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        return self.build(*args)


def test_a_jobs_page_builds_only_its_rows_views_and_still_counts_every_match(
    fleet: tuple[TestClient, Sidecar], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = fleet
    counted = Counted(jobs_api.job_view)
    monkeypatch.setattr(jobs_api, "job_view", counted)
    body = client.get("/api/jobs?limit=10").json()
    assert (counted.calls, body["count"], body["total"]) == (10, 10, JOBS)
    assert [j["id"] for j in body["jobs"]] == [f"f{i:03d}" for i in range(JOBS - 1, JOBS - 11, -1)]
    counted.calls = 0
    body = client.get("/api/jobs?status=completed&limit=5").json()
    assert (counted.calls, body["total"]) == (5, 240)
    counted.calls = 0
    body = client.get("/api/jobs?stalled=true&limit=4").json()
    assert (counted.calls, body["total"]) == (4, 6)
    assert all(j["stalled"] for j in body["jobs"])
    counted.calls = 0
    body = client.get("/api/jobs?stalled=false&status=running&limit=3").json()
    assert (counted.calls, body["total"]) == (3, 54)
    assert not any(j["stalled"] for j in body["jobs"])


def test_a_queue_page_builds_only_its_rows_views_and_its_stats_count_every_job(
    fleet: tuple[TestClient, Sidecar], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = fleet
    counted = Counted(jobs_api.queue_item)
    monkeypatch.setattr(jobs_api, "queue_item", counted)
    body = client.get("/api/queue?limit=7").json()
    assert (counted.calls, body["count"]) == (7, 7)
    stats = body["stats"]
    counts = [stats[k] for k in ("total", "pending", "running", "completed", "failed", "canceled")]
    assert counts == [JOBS, 0, 60, 240, 0, 0]
    counted.calls = 0
    body = client.get("/api/queue?status=processing&limit=2").json()
    assert counted.calls == 2
    assert {j["status"] for j in body["jobs"]} == {"Processing"}

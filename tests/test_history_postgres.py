"""PostgreSQL history: two real sidecars share one database, and a database that goes away mid-run is survived."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from aura_monitor.history.ops import RunSeen
from aura_monitor.history.postgres import PostgresStore
from aura_monitor.jobs.model import JobStatus
from tests.support import HANG_S, STARTUP_S, wait_for
from tests.support.aura_writer import RUNNING, AuraJob
from tests.support.cli import Running
from tests.support.live_stack import free_port
from tests.support.postgres import PostgresCluster

# Outlasts the writer's backoff cap (30 s) after the database is back, on a loaded shared machine.
CATCH_UP_S = 90.0


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    pg = PostgresCluster().init()
    try:
        pg.start()
        yield pg
    finally:
        pg.close()


class Sidecar:
    """`aura-monitor serve` as a subprocess writing its history to `history`."""

    def __init__(self, root: Path, node: str, history: str) -> None:
        self.jobs = root / f"jobs-{node}"
        self.jobs.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = Running(
            "serve", "--jobs-dir", str(self.jobs), "--port", str(self.port), "--node", node,
            "--state-dir", str(root / f"state-{node}"), "--history", history, "--stall-threshold", "2",
            "--watch", "polling", "--poll-interval", "0.2",
        )  # fmt: skip
        wait_for(lambda: httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200, timeout=STARTUP_S,
                 what=f"sidecar {node} ready", ignoring=(httpx.TransportError,))  # fmt: skip

    def stall(self, job_id: str) -> None:
        now = time.time()
        job = AuraJob(self.jobs, id=job_id, status=RUNNING, created=now - 400, started=now - 390)
        job.progress(now - 300, "Render", 30)
        job.write()

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=10)

    def incidents(self, query: str = "") -> list[dict[str, Any]]:
        answer = self.get(f"/api/incidents{query}")
        return list(answer.json()["incidents"]) if answer.status_code == 200 else []

    def close(self) -> None:
        self.process.close()


def _write_errors(metrics: str) -> float:
    line = next(line for line in metrics.splitlines() if line.startswith("aura_history_write_errors_total"))
    return float(line.rsplit(" ", 1)[1])


def test_two_sidecars_write_one_postgres_history_and_either_lists_both_nodes_incidents(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    sidecars: list[Sidecar] = []
    try:
        alpha = Sidecar(tmp_path, "alpha", cluster.url)
        sidecars.append(alpha)
        beta = Sidecar(tmp_path, "beta", cluster.url)
        sidecars.append(beta)
        alpha.stall("render-a")
        beta.stall("render-b")
        for sidecar in (alpha, beta):
            seen = wait_for(
                lambda s=sidecar: (found := {(i["jobId"], i["node"]) for i in s.incidents()}) == {
                    ("render-a", "alpha"), ("render-b", "beta")} and found,
                timeout=HANG_S, what=f"both nodes' incidents through {sidecar.url}",
            )  # fmt: skip
            assert seen
        only_beta = alpha.incidents("?node=beta")
        assert [(i["jobId"], i["node"], i["open"]) for i in only_beta] == [("render-b", "beta", True)]
        with psycopg.connect(cluster.url) as conn:
            # Two sidecars started against an empty database: the schema was migrated once, under the lock.
            assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
            nodes = conn.execute("SELECT DISTINCT node FROM runs ORDER BY node").fetchall()
        assert nodes == [("alpha",), ("beta",)]
    finally:
        for sidecar in sidecars:
            sidecar.close()


def test_a_postgres_that_stops_mid_run_degrades_readyz_and_the_history_catches_up_once_it_is_back(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    sidecar = Sidecar(tmp_path, "gamma", cluster.url)
    try:
        sidecar.stall("before")
        wait_for(lambda: sidecar.incidents(), timeout=HANG_S, what="the first incident written")
        cluster.stop()
        sidecar.stall("during")
        wait_for(lambda: (j := sidecar.get("/api/jobs/during")).status_code == 200 and j.json()["stalled"],
                 timeout=HANG_S, what="the stall flagged while the database is down")  # fmt: skip
        body = wait_for(lambda: (b := sidecar.get("/readyz").json())["status"] == "degraded" and b,
                        timeout=HANG_S, what="/readyz degraded")  # fmt: skip
        assert any("history database postgresql://aura@127.0.0.1" in reason for reason in body["reasons"]), body
        assert sidecar.get("/api/incidents").status_code == 503
        sidecar.process.expect("pg_isready", stream="err", timeout=HANG_S)  # the log line says what to check
        assert _write_errors(sidecar.get("/metrics").text) >= 1
        cluster.start()
        wait_for(lambda: {i["jobId"] for i in sidecar.incidents()} == {"before", "during"}, timeout=CATCH_UP_S,
                 what="the incident flagged during the outage written once the database is back")  # fmt: skip
        wait_for(lambda: sidecar.get("/readyz").json()["status"] == "ready", timeout=CATCH_UP_S, what="ready again")
    finally:
        sidecar.close()


def test_a_sqlite_history_never_imports_the_postgres_driver_and_a_postgres_url_hides_its_password() -> None:
    probe = (
        "import sys; from pathlib import Path; from aura_monitor.config import load_settings;"
        " from aura_monitor.history.url import open_store; from aura_monitor.history.postgres import redacted;"
        " import tempfile; d = tempfile.mkdtemp();"
        " open_store(load_settings(jobs_dir=Path(d) / 'jobs', state_dir=Path(d) / 'state'));"
        " print('psycopg' in sys.modules, redacted('postgresql://aura:s3cret@db:5432/aura'))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=STARTUP_S, check=True)
    assert done.stdout.split() == ["False", "postgresql://aura:***@db:5432/aura"]


def test_sidecars_starting_together_migrate_once_and_their_concurrent_writes_all_land(
    cluster: PostgresCluster,
) -> None:
    nodes = [f"node-{index}" for index in range(6)]
    stores = {node: PostgresStore(cluster.url) for node in nodes}
    start = threading.Barrier(len(nodes), timeout=HANG_S)
    failures: list[BaseException] = []

    def sidecar(node: str) -> None:
        try:
            start.wait()  # every store opens the empty database at once: only the advisory lock orders them
            stores[node].connect()
            for batch in range(10):
                stores[node].apply([
                    RunSeen(f"job-{batch}-{n}", 1, node, JobStatus.RUNNING, 1.0, 2.0, None, None, 3.0 + n)
                    for n in range(20)
                ])  # fmt: skip
                # The same runs again, now failed: an upsert, never a duplicate or a lost update.
                stores[node].apply([
                    RunSeen(f"job-{batch}-{n}", 1, node, JobStatus.FAILED, None, None, 9.0, None, 10.0)
                    for n in range(20)
                ])  # fmt: skip
        except BaseException as exc:  # reported below, with the node
            failures.append(exc)

    threads = [threading.Thread(target=sidecar, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_S)
    for store in stores.values():
        store.close()
    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)
    with psycopg.connect(cluster.url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        rows = conn.execute(
            "SELECT node, COUNT(*), MIN(status), MAX(status), MIN(created_at) FROM runs GROUP BY node ORDER BY node"
        ).fetchall()
    assert rows == [(node, 200, "failed", "failed", 1.0) for node in nodes]

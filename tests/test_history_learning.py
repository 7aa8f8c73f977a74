"""Learned thresholds live: a history with enough healthy runs of a stage sets that stage's stall clock,
shown on the job, in explain, in GET /api/thresholds and in `aura-monitor thresholds`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from aura_monitor.cli.main import main
from aura_monitor.clock import SystemClock
from aura_monitor.config import load_settings
from aura_monitor.history.learning import ThresholdLearner
from aura_monitor.history.ops import IncidentOpened, Op, RunSeen, StageDone
from aura_monitor.history.postgres import PostgresStore
from aura_monitor.history.sqlite import SQLiteStore
from aura_monitor.jobs.stall import Thresholds
from aura_monitor.jobs.tracker import Tracker
from aura_monitor.jobs.verdicts import Verdict
from tests.support import wait_for
from tests.support.aura_writer import RUNNING, AuraJob
from tests.support.live_server import live_server
from tests.support.postgres import PostgresCluster


def _seed(path: Path, stage: str, runs: int, max_gap: float, *, stalled_too: int = 0) -> None:
    """`runs` healthy completed runs of `stage` (largest gap `max_gap`), plus runs with a stall that must not count."""
    store = SQLiteStore(path)
    start = time.time() - 3600
    ops: list[object] = []
    for i in range(runs + stalled_too):
        job = f"seed-{i}"
        ops.append(RunSeen(job, 1, "node-a", "completed", start, start, start + 60, None, start + 60))
        gap = max_gap if i < runs else 500.0
        ops.append(StageDone(job, 1, "node-a", stage, start + 10, start + 40, 30, gap, gap / 2, None))
    store.apply(ops)  # type: ignore[arg-type]
    store.close()


def _history_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("learned") / "history.db"


def test_a_stage_learned_from_25_healthy_runs_stalls_at_its_learned_threshold_and_says_why(
    jobs_dir: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    history = _history_path(tmp_path_factory)
    _seed(history, "tts", 25, 1.0)
    now = time.time()
    job = AuraJob(jobs_dir, id="quiet-tts", status=RUNNING, created=now - 20, started=now - 15)
    job.progress(now, "TTS", 30)
    job.write()
    settings = {"history": f"sqlite:///{history}", "learn_floor": 3.0, "watch": "polling", "poll_interval": 0.2}
    with live_server(jobs_dir, **settings) as server:

        def job_body() -> dict[str, object]:
            body: dict[str, object] = httpx.get(f"{server.url}/api/jobs/quiet-tts", timeout=10).json()
            return body

        wait_for(lambda: job_body().get("thresholdSource") == "learned", what="learned threshold on the job")
        body = job_body()
        assert body["thresholdSeconds"] == 4.0  # p99 of 1 s gaps, x4 (configured: 45 s)
        assert body["thresholdBasis"] == "p99 gap 1 s over 25 runs, x4"
        wait_for(lambda: job_body()["stalled"] is True, what="stall at the learned threshold")
        stalled_at = time.time()
        assert stalled_at - now < 45.0  # long before the configured 45 s could have fired
        explain = httpx.get(f"{server.url}/api/jobs/quiet-tts/explain", timeout=30).json()
        assert explain["thresholdSource"] == "learned" and explain["thresholdBasis"] == body["thresholdBasis"]
        facts = [item["fact"] for finding in explain["findings"] for item in finding["evidence"]]
        assert any("learned: p99 gap 1 s over 25 runs, x4" in str(text) for text in facts), facts

        table = httpx.get(f"{server.url}/api/thresholds", timeout=10).json()
        assert table["mode"] == "learned" and table["configured"]["default"] == 45.0
        tts = next(row for row in table["stages"] if row["stage"] == "tts")
        assert tts["source"] == "learned" and tts["learnedSeconds"] == 4.0 and tts["runs"] == 25
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert 'aura_learned_threshold_seconds{stage="tts"} 4.0' in metrics

        assert main(["thresholds", "--url", server.url]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith("mode learned; configured: default 45 s")
        assert lines[1].split() == ["STAGE", "CONFIGURED", "LEARNED", "APPLIES", "BASIS"]
        assert lines[2].split()[:6] == ["tts", "45", "s", "4", "s", "learned"]
        assert main(["thresholds", "--url", server.url, "-o", "wide"]) == 0
        assert "CEILING" in capsys.readouterr().out
        assert main(["thresholds", "--url", server.url, "-o", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["stages"][0]["stage"] == "tts"


def test_runs_with_a_stall_do_not_count_and_too_few_healthy_runs_keep_the_configured_threshold(
    jobs_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    history = _history_path(tmp_path_factory)
    _seed(history, "render", 19, 1.0, stalled_too=10)
    store = SQLiteStore(history)
    store.apply([])  # connect and migrate only
    start = time.time() - 3000
    store.apply(
        [IncidentOpened(f"seed-{i}", "node-a", 1, "render", start, Verdict.NO_PROGRESS, {}) for i in range(19, 29)]
    )
    store.close()
    now = time.time()
    job = AuraJob(jobs_dir, id="render-job", status=RUNNING, created=now - 20, started=now - 15)
    job.progress(now, "Render", 85)
    job.write()
    with live_server(jobs_dir, history=f"sqlite:///{history}", watch="polling", poll_interval=0.2) as server:
        wait_for(
            lambda: (
                httpx.get(f"{server.url}/api/jobs/render-job", timeout=10).json().get("thresholdSource") == "configured"
            ),
            what="configured threshold",
        )
        table = httpx.get(f"{server.url}/api/thresholds", timeout=10).json()
        render = next(row for row in table["stages"] if row["stage"] == "render")
        assert render["source"] == "configured"
        assert render["basis"].startswith("19 healthy runs, 20 needed")
        assert httpx.get(f"{server.url}/api/jobs/render-job", timeout=10).json()["thresholdSeconds"] == 45.0


def test_thresholds_configured_mode_never_learns(jobs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    history = _history_path(tmp_path_factory)
    _seed(history, "tts", 30, 1.0)
    settings = {"history": f"sqlite:///{history}", "thresholds": "configured", "watch": "polling"}
    with live_server(jobs_dir, **settings) as server:
        body = httpx.get(f"{server.url}/api/thresholds", timeout=10).json()
        assert body["mode"] == "configured" and body["stages"] == []


def test_thresholds_without_a_sidecar_says_so_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["thresholds", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot reach the sidecar" in capsys.readouterr().err


def test_an_unreadable_history_keeps_the_last_learned_table_in_force_and_says_why(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    history = _history_path(tmp_path_factory)
    _seed(history, "tts", 25, 1.0)
    settings = load_settings(jobs_dir=tmp_path, history=f"sqlite:///{history}")
    tracker = Tracker(Thresholds())
    learner = ThresholdLearner(settings, Thresholds(), tracker, SQLiteStore(history), SystemClock())
    assert learner.refresh().get("tts") is not None
    history.write_bytes(b"this is not a database" * 200)
    for suffix in ("-wal", "-shm"):
        Path(f"{history}{suffix}").unlink(missing_ok=True)
    table = learner.refresh()
    tts = table.get("tts")
    assert tts is not None and tts.seconds == 10.0  # the last table, still in force (4 s raised to the floor)
    assert tracker.thresholds.learned.get("tts") is tts
    assert learner.error is not None and "corrupt" in learner.error
    assert learner.body()["error"] == learner.error


def _node_runs(node: str, count: int, gap: float, *, stalled: bool = False) -> list[Op]:
    start = time.time() - 3600
    ops: list[Op] = []
    for i in range(count):
        job = f"{node}-{'stalled' if stalled else 'ok'}-{i}"
        ops.append(RunSeen(job, 1, node, "completed", start, start, start + 60, None, start + 60))
        ops.append(StageDone(job, 1, node, "tts", start + 10, start + 40, 30, gap, gap / 2, None))
        if stalled:
            ops.append(IncidentOpened(job, node, 1, "tts", start + 20, Verdict.NO_PROGRESS, {}))
    return ops


def test_a_shared_postgresql_history_learns_one_table_from_every_nodes_healthy_runs() -> None:
    cluster = PostgresCluster().init()
    try:
        cluster.start()
        alpha, beta = PostgresStore(cluster.url), PostgresStore(cluster.url)
        alpha.apply(_node_runs("alpha", 12, 2.0) + _node_runs("alpha", 5, 300.0, stalled=True))
        beta.apply(_node_runs("beta", 12, 3.0))
        rows = beta.healthy_stage_gaps(time.time() - 86400, 2000)
        assert sorted(gap for _, gap, _ in rows) == [2.0] * 12 + [3.0] * 12  # the stalled runs teach nothing
        settings = load_settings(jobs_dir=Path(cluster.root), history=cluster.url)
        learner = ThresholdLearner(settings, Thresholds(), Tracker(Thresholds()), alpha, SystemClock())
        tts = learner.refresh().get("tts")
        assert tts is not None and tts.runs == 24 and tts.seconds == 12.0  # p99 3 s over both nodes, x4
        alpha.close()
        beta.close()
    finally:
        cluster.close()

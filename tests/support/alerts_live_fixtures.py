"""The live alert stack of tests/test_alerts_live_*.py (registered in conftest.py through pytest_plugins).

One stack per test module: a sidecar watching a temp jobs dir, the reference worker rendering jobs of that
dir with ffmpeg, Prometheus scraping both every second and loading alerts/*.rules.yml, Alertmanager routing
with alerts/alertmanager.yml to a webhook receiver run here.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import HANG_S, STARTUP_S
from tests.support.aura_writer import DONE, QUEUED, RUNNING, AuraJob, net_time
from tests.support.live_stack import (
    ManagedProcess,
    PrometheusAPI,
    WebhookReceiver,
    aura_monitor_argv,
    clean_env,
    free_port,
    managed,
    poll,
    require_binary,
    sidecar_argv,
    wait_ready,
    write_alertmanager_config,
    write_prometheus_config,
)

STALLED = "stalled-tts"
HEALTHY = "healthy-render"
RECOVERING = "recovering-images"
QUEUED_JOB = "queued-plan"
MOVERS = ("mover-1", "mover-2")
RENDERED = "worker-render"

# The jobs that must never alert are rendering and progressing: a writer thread moves them on every
# PROGRESS_EVERY_S (progress is a change of Percent or Stage), and their Render stage gets a threshold of
# its own far above the time the module takes, so a writer starved on a loaded machine still leaves them
# healthy. A single write was not enough: the default 45 s threshold passed while four processes started
# at load 20, and the sidecar rightly flagged the "healthy" job.
PROGRESS_EVERY_S = 2.0
HEALTHY_STAGE = "Render"
HEALTHY_STAGE_THRESHOLD_S = 600


class Progressing:
    """A thread that raises each of its jobs' Percent by one every PROGRESS_EVERY_S, up to 89 (not finalizing)."""

    def __init__(self) -> None:
        self._jobs: list[AuraJob] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progressing-jobs", daemon=True)
        self._thread.start()

    def add(self, job: AuraJob) -> None:
        with self._lock:
            self._jobs.append(job)

    def _run(self) -> None:
        while not self._stop.wait(PROGRESS_EVERY_S):
            with self._lock:
                for job in self._jobs:
                    if job.percent < 89:
                        job.progress(time.time(), job.stage, job.percent + 1)
                        job.write()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class Stack:
    jobs_dir: Path
    instance: str
    sidecar_url: str
    external_url: str
    worker_instance: str
    prometheus: PrometheusAPI
    webhook: WebhookReceiver
    processes: list[ManagedProcess]
    movers: dict[str, AuraJob] = field(default_factory=dict)
    progressing: Progressing | None = None

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()

    def job(self, job_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.sidecar_url}/api/jobs/{job_id}", timeout=5)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def aura_job(jobs_dir: Path, job_id: str, status: int, stage: str, progress_age: float, percent: int) -> AuraJob:
    now = time.time()
    job = AuraJob(jobs_dir, id=job_id, status=status, created=now - 120)
    if status != QUEUED:
        job.started = now - 120
        job.progress(now - 110, "Script", 5)
        job.progress(now - progress_age, stage, percent)
    job.stage = stage
    job.write()
    return job


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin = require_binary("prometheus", "prometheus")
    alertmanager_bin = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    require_binary("ffmpeg", "ffmpeg")
    tmp = tmp_path_factory.mktemp("live")
    jobs_dir = tmp / "jobs"
    jobs_dir.mkdir()
    # Stalled from the start under the default 45 s threshold: last progress 50 s ago, in TTS.
    aura_job(jobs_dir, STALLED, RUNNING, "TTS", progress_age=50, percent=30)
    progressing = Progressing()
    progressing.add(aura_job(jobs_dir, HEALTHY, RUNNING, HEALTHY_STAGE, progress_age=0, percent=10))
    aura_job(jobs_dir, RECOVERING, RUNNING, "Images", progress_age=60, percent=60)
    aura_job(jobs_dir, QUEUED_JOB, QUEUED, "Plan", progress_age=0, percent=0)
    movers = {job_id: aura_job(jobs_dir, job_id, RUNNING, "Script", progress_age=0, percent=10) for job_id in MOVERS}

    sidecar_port, worker_port, prometheus_port, alertmanager_port = free_port(), free_port(), free_port(), free_port()
    instance, worker_instance = f"127.0.0.1:{sidecar_port}", f"127.0.0.1:{worker_port}"
    external_url = f"http://localhost:{sidecar_port}"
    with contextlib.ExitStack() as exits:
        exits.callback(progressing.stop)
        webhook = exits.enter_context(WebhookReceiver())
        write_alertmanager_config(tmp / "alertmanager.yml", webhook.url)
        alertmanager = exits.enter_context(
            managed(
                "alertmanager",
                [
                    alertmanager_bin,
                    f"--config.file={tmp / 'alertmanager.yml'}",
                    f"--storage.path={tmp / 'alertmanager-data'}",
                    f"--web.listen-address=127.0.0.1:{alertmanager_port}",
                    "--cluster.listen-address=",
                ],
                tmp / "alertmanager.log",
            )
        )
        sidecar = exits.enter_context(
            managed(
                "aura-monitor",
                # Links must use this URL, never the scrape address (127.0.0.1:<port>) Prometheus sees.
                sidecar_argv(
                    jobs_dir,
                    sidecar_port,
                    "--external-url",
                    external_url,
                    "--rediagnose-interval",
                    "1",
                    "--stage-thresholds",
                    json.dumps({HEALTHY_STAGE.lower(): HEALTHY_STAGE_THRESHOLD_S}),
                ),
                tmp / "sidecar.log",
                env=clean_env(),
            )
        )
        worker = exits.enter_context(
            managed(
                "worker",
                aura_monitor_argv(
                    "worker",
                    "--jobs-dir",
                    str(jobs_dir),
                    "--output-dir",
                    str(tmp / "output"),
                    "--metrics-port",
                    str(worker_port),
                    "--metrics-host",
                    "127.0.0.1",
                ),
                tmp / "worker.log",
                env=clean_env(),
            )
        )
        write_prometheus_config(
            tmp / "prometheus.yml",
            instance,
            f"127.0.0.1:{alertmanager_port}",
            extra_targets={"aura-pipeline": worker_instance},
        )
        prometheus = exits.enter_context(
            managed(
                "prometheus",
                [
                    prometheus_bin,
                    f"--config.file={tmp / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                    # Firing alerts are re-sent with their current annotations every second (default 1 min).
                    "--rules.alert.resend-delay=1s",
                ],
                tmp / "prometheus.log",
            )
        )
        wait_ready(alertmanager, f"http://127.0.0.1:{alertmanager_port}/-/ready")
        wait_ready(sidecar, f"http://{instance}/readyz")
        wait_ready(worker, f"http://{worker_instance}/metrics")
        wait_ready(prometheus, f"http://127.0.0.1:{prometheus_port}/-/ready")
        api = PrometheusAPI(f"http://127.0.0.1:{prometheus_port}")
        exits.callback(api.close)
        live = Stack(
            jobs_dir,
            instance,
            f"http://{instance}",
            external_url,
            worker_instance,
            api,
            webhook,
            [alertmanager, sidecar, worker, prometheus],
        )
        live.movers = movers
        live.progressing = progressing
        # Prometheus takes ~5 s before its first scrape of a new target.
        poll(
            lambda: len(api.vector('up{job=~"aura-monitor|aura-pipeline"} == 1')) == 2,
            STARTUP_S,
            "Prometheus' first scrape of the sidecar and the worker",
        )
        exercise_counters(live)
        yield live


def exercise_counters(stack: Stack) -> None:
    """Move jobs through stages, to an end and out of a stall, after Prometheus saw the counters' start."""
    subprocess.run(
        aura_monitor_argv("enqueue", "--jobs-dir", str(stack.jobs_dir), "--duration", "1", "--id", RENDERED),
        check=True,
        capture_output=True,
        timeout=STARTUP_S,
        env=clean_env(),
    )
    job = stack.movers[MOVERS[0]]
    job.progress(time.time(), "TTS", 30)
    job.write()
    poll(
        lambda: stack.prometheus.vector('aura_job_stage_duration_seconds_count{stage="script"} > 0'),
        HANG_S,
        "the first stage duration in Prometheus",
    )
    # A second observation of the same stage, so the histogram's rate is above zero.
    job = stack.movers[MOVERS[1]]
    job.progress(time.time(), "TTS", 30)
    job.write()
    for job in stack.movers.values():
        job.status = DONE
        job.progress(time.time(), "Complete", 100)
        job.extra = {"CompletedUtc": net_time(time.time()), "EndedUtc": net_time(time.time())}
        job.write()
    recovering = AuraJob(stack.jobs_dir, id=RECOVERING)
    recovering.created = recovering.started = time.time() - 120
    recovering.status = RUNNING
    recovering.progress(time.time(), HEALTHY_STAGE, 70)  # out of Images at last: on to Render, and progressing
    recovering.write()
    assert stack.progressing is not None
    stack.progressing.add(recovering)
    poll(lambda: all(stack.job(job_id)["status"] == "completed" for job_id in MOVERS), HANG_S, "the movers to complete")
    poll(lambda: not stack.job(RECOVERING)["stalled"], HANG_S, f"{RECOVERING} to recover")
    # Prometheus resolves the stall a scrape and an evaluation after the sidecar: a module whose first test
    # reads the alerts would otherwise still find RECOVERING's.
    poll(
        lambda: not [alert for alert in stack.prometheus.alerts() if alert["labels"].get("job_id") == RECOVERING],
        HANG_S,
        f"Prometheus to resolve the stall of {RECOVERING}",
    )
    poll(lambda: stack.job(RENDERED)["status"] == "completed", STARTUP_S, f"the worker to render {RENDERED}")

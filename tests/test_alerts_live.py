"""The rules and dashboards against a real sidecar, Prometheus and Alertmanager, on loopback ports.

One stack serves the module: a sidecar watching a temp jobs dir, the reference worker rendering jobs of
that dir with ffmpeg, Prometheus scraping both every second and loading alerts/*.rules.yml, Alertmanager
routing with alerts/alertmanager.yml to a webhook receiver run here.
"""

from __future__ import annotations

import contextlib
import json
import math
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
from tests.support.aura_writer import DONE, QUEUED, RUNNING, AuraJob, log_line, net_time
from tests.support.live_stack import (
    ManagedProcess,
    PrometheusAPI,
    WebhookReceiver,
    aura_monitor_argv,
    clean_env,
    free_port,
    managed,
    panel_queries,
    poll,
    require_binary,
    rules,
    sidecar_argv,
    substitute,
    wait_ready,
    write_alertmanager_config,
    write_prometheus_config,
)

pytestmark = pytest.mark.timeout(300)  # the first test also starts the stack: four processes, then a render

STALLED = "stalled-tts"
REFINED = "refined-tts"
HEALTHY = "healthy-render"
RECOVERING = "recovering-images"
QUEUED_JOB = "queued-plan"
MOVERS = ("mover-1", "mover-2")
RENDERED = "worker-render"
PROVIDER_ERROR = "TTS provider answered HTTP 429 Too Many Requests; retry {}"

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
    poll(lambda: stack.job(RENDERED)["status"] == "completed", STARTUP_S, f"the worker to render {RENDERED}")


def series_with_values(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in result if not math.isnan(float(s["value"][1]))]


def dashboard_variables(stack: Stack) -> dict[str, str]:
    return {
        "instance": stack.instance,
        "job_id": STALLED,
        "__rate_interval": "1m",
        "__interval": "15s",
        "__range": "5m",
    }


def test_every_rule_loads_and_evaluates_without_error(stack: Stack) -> None:
    expected = {rule.name for rule in rules()}

    def evaluated() -> list[dict[str, Any]] | None:
        loaded = [rule for group in stack.prometheus.rule_groups() for rule in group["rules"]]
        if {rule["name"] for rule in loaded} != expected:
            return None
        if any(rule["lastEvaluation"].startswith("0001-") for rule in loaded):
            return None
        return loaded

    loaded = poll(evaluated, HANG_S, "every rule of alerts/*.rules.yml to be loaded and evaluated")
    assert [(rule["name"], rule.get("lastError")) for rule in loaded if rule["health"] != "ok"] == []


def test_every_rule_expression_is_valid_promql(stack: Stack) -> None:
    failures = {}
    for rule in rules():
        answer = stack.prometheus.query(rule.expr)
        if answer["status"] != "success":
            failures[rule.name] = answer.get("error")
    assert failures == {}


def test_every_dashboard_query_is_valid_promql(stack: Stack) -> None:
    variables = dashboard_variables(stack)
    failures = {}
    for query in panel_queries():
        answer = stack.prometheus.query(substitute(query.expr, variables))
        if answer["status"] != "success":
            failures[f"{query.dashboard} / {query.panel} / {query.ref_id}"] = answer.get("error")
    assert failures == {}


def test_dashboard_panels_return_data(stack: Stack) -> None:
    variables = dashboard_variables(stack)
    expected = panel_queries()
    assert len(expected) >= 30

    def empty() -> list[str]:
        stack.check_alive()
        return [
            f"{q.dashboard} / {q.panel} / {q.ref_id}: {substitute(q.expr, variables)}"
            for q in expected
            if not series_with_values(stack.prometheus.vector(substitute(q.expr, variables)))
        ]

    deadline = time.monotonic() + 20
    missing = empty()
    while missing and time.monotonic() < deadline:
        time.sleep(0.5)
        missing = empty()
    assert missing == [], "panels without data"


def stall_alerts(stack: Stack, job_id: str) -> list[dict[str, Any]]:
    return [
        alert
        for alert in stack.prometheus.alerts()
        if alert["labels"]["alertname"] == "AuraJobStalled" and alert["labels"].get("job_id") == job_id
    ]


def test_a_really_stalled_job_fires_the_stall_alert_with_its_verdict(stack: Stack) -> None:
    def firing_with_settled_reason() -> dict[str, Any] | None:
        stack.check_alive()
        reasons = stack.prometheus.vector(f'aura_job_stall_reason{{job_id="{STALLED}"}}')
        verdict = stack.job(STALLED)["verdict"]
        for alert in stall_alerts(stack, STALLED):
            settled = reasons and alert["annotations"]["reason"] == reasons[0]["metric"]["reason"] == verdict
            if alert["state"] == "firing" and settled:
                return alert
        return None

    alert = poll(firing_with_settled_reason, 30, f"AuraJobStalled for {STALLED} with the sidecar's verdict")
    labels, annotations = alert["labels"], alert["annotations"]
    # The identity: the job, its stage and the sidecar; the verdict is text, not a label.
    assert set(labels) == {"alertname", "instance", "job", "job_id", "stage", "severity"}
    assert labels["stage"] == "tts"
    assert labels["instance"] == stack.instance
    assert labels["severity"] == "critical"
    assert annotations["reason"] in annotations["summary"]
    assert annotations["threshold_seconds"] == "45"
    assert annotations["threshold_kind"] == "default"

    others = {
        alert["labels"].get("job_id")
        for alert in stack.prometheus.alerts()
        if alert["labels"]["alertname"] == "AuraJobStalled"
    }
    assert others & {HEALTHY, RECOVERING, QUEUED_JOB, RENDERED, *MOVERS} == set()


def test_the_stall_alerts_links_open_through_the_external_url_not_the_scrape_address(stack: Stack) -> None:
    alert = poll(
        lambda: next((a for a in stall_alerts(stack, STALLED) if a["state"] == "firing"), None),
        30,
        f"AuraJobStalled for {STALLED}",
    )
    annotations = alert["annotations"]
    assert annotations["explain_url"] == f"{stack.external_url}/api/jobs/{STALLED}/explain"
    assert annotations["runbook_url"] == f"{stack.external_url}/runbooks#aurajobstalled"
    assert stack.instance not in annotations["explain_url"] + annotations["runbook_url"]
    [info] = stack.prometheus.vector(f'aura_sidecar_info{{instance="{stack.instance}"}}')
    assert info["metric"]["external_url"] == stack.external_url

    explained = httpx.get(annotations["explain_url"], timeout=10)
    assert explained.status_code == 200
    assert explained.json()["jobId"] == STALLED
    assert explained.json()["stalled"] is True
    runbook = httpx.get(annotations["runbook_url"], timeout=10)
    assert runbook.status_code == 200
    assert '<h3 id="aurajobstalled">' in runbook.text


def test_alertmanager_delivers_the_stall_to_the_receiver_of_its_severity(stack: Stack) -> None:
    def delivered() -> tuple[str, dict[str, Any]] | None:
        stack.check_alive()
        for delivery in stack.webhook.received():
            for alert in delivery.alerts(alertname="AuraJobStalled", job_id=STALLED):
                if alert["status"] == "firing":
                    return delivery.path, alert
        return None

    path, alert = poll(delivered, 30, f"Alertmanager to deliver AuraJobStalled for {STALLED} to the webhook")
    assert path == "/pager"
    assert alert["labels"]["severity"] == "critical"
    assert "reason" not in alert["labels"]
    assert alert["annotations"]["reason"]
    assert alert["annotations"]["explain_url"] == f"{stack.external_url}/api/jobs/{STALLED}/explain"
    assert alert["annotations"]["runbook_url"] == f"{stack.external_url}/runbooks#aurajobstalled"


def test_a_refined_verdict_updates_the_stall_alert_without_resolving_or_refiring_it(stack: Stack) -> None:
    job = aura_job(stack.jobs_dir, REFINED, RUNNING, "TTS", progress_age=50, percent=30)

    def delivered(reason: str | None = None) -> list[dict[str, Any]]:
        stack.check_alive()
        return [
            alert
            for delivery in stack.webhook.received()
            for alert in delivery.alerts(alertname="AuraJobStalled", job_id=REFINED)
            if reason is None or alert["annotations"]["reason"] == reason
        ]

    def first_verdict() -> str | None:
        firing = [a for a in delivered() if a["status"] == "firing"]
        return firing[0]["annotations"]["reason"] if firing else None

    # The first notification already carries the sidecar's verdict (the rule waits for it).
    before = poll(first_verdict, 40, f"the first notification of AuraJobStalled for {REFINED}")
    assert before not in ("not diagnosed yet", "upstream_errors"), before

    # New evidence: the TTS provider now answers 429 every second; the diagnosis refines its verdict.
    now = time.time()
    job.logs.extend(log_line(now - 3 + i, PROVIDER_ERROR.format(i)) for i in range(1, 4))
    job.write()
    poll(
        lambda: delivered("upstream_errors"),
        40,
        f"a notification of AuraJobStalled for {REFINED} with the refined verdict upstream_errors",
    )

    notified = delivered()
    assert [a for a in notified if a["status"] != "firing"] == [], "the refinement resolved the alert"
    identities = {tuple(sorted(a["labels"].items())) for a in notified}
    assert len(identities) == 1, identities
    assert {a["startsAt"] for a in notified} == {notified[0]["startsAt"]}, "the alert was fired again"
    assert {a["annotations"]["reason"] for a in notified} == {before, "upstream_errors"}
    # Prometheus' own record: one alert series for the job, firing at every evaluation since it started.
    series = stack.prometheus.vector(f'count_over_time(ALERTS{{alertname="AuraJobStalled",job_id="{REFINED}"}}[5m])')
    assert [s["metric"]["alertstate"] for s in series] == ["firing"]


def test_the_sidecar_health_alerts_stay_quiet_while_it_runs(stack: Stack) -> None:
    firing = {
        alert["labels"]["alertname"]
        for alert in stack.prometheus.alerts()
        if alert["state"] == "firing" and alert["labels"]["alertname"].startswith(("AuraSidecar", "AuraWatcher"))
    }
    assert firing == set()


def test_the_reference_worker_is_scraped_and_its_render_reaches_the_sidecar(stack: Stack) -> None:
    assert stack.job(RENDERED)["status"] == "completed"
    assert stack.prometheus.vector(f'up{{job="aura-pipeline",instance="{stack.worker_instance}"}} == 1')
    poll(
        lambda: stack.prometheus.vector("aura_pipeline_render_speed_ratio_count > 0"),
        HANG_S,
        "the worker's render speed in Prometheus",
    )

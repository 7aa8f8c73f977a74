"""Which alerts the live stack fires: a stalled job's AuraJobStalled with the sidecar's verdict and links,
delivered by Alertmanager to its severity's receiver, updated in place by a refined verdict; the sidecar's
own health alerts stay quiet."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.support.alerts_live_fixtures import (
    HEALTHY,
    MOVERS,
    QUEUED_JOB,
    RECOVERING,
    RENDERED,
    STALLED,
    Stack,
    aura_job,
)
from tests.support.aura_writer import RUNNING, log_line
from tests.support.live_stack import poll

pytestmark = pytest.mark.timeout(300)  # the first test also starts the stack: four processes, then a render

REFINED = "refined-tts"
PROVIDER_ERROR = "TTS provider answered HTTP 429 Too Many Requests; retry {}"


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

"""deploy/prometheus and deploy/alertmanager through promtool and amtool: the site, central and Kubernetes
configs, what the central Prometheus federates, and where Alertmanager routes each alert."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.deploy import DEPLOY, kubernetes_sd_as_file_sd, portable, run
from tests.support.live_stack import ALERTS_DIR, require_binary

# What a fleet view needs from every site (docs/fleet.md, "What to federate").
FEDERATED = ("aura_sidecar_info", "aura_jobs", "aura_job_stalled", "aura_job_stall_reason", "up")
NOT_FEDERATED = ("aura_job_percent", "aura_job_seconds_since_progress", "aura_watcher_lag_seconds_bucket")


def promtool(config: Path) -> subprocess.CompletedProcess[str]:
    return run(require_binary("promtool", "prometheus"), "check", "config", str(config))


@pytest.mark.parametrize("name", ["prometheus.yml", "central.yml"])
def test_the_prometheus_configs_pass_promtool(name: str) -> None:
    result = promtool(DEPLOY / "prometheus" / name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_the_site_config_loads_the_project_rules_and_reads_its_targets_file() -> None:
    result = promtool(DEPLOY / "prometheus" / "prometheus.yml")
    assert "3 rule files found" in result.stdout, result.stdout
    targets = json.loads((DEPLOY / "prometheus" / "targets" / "render-nodes.json").read_text())
    assert targets and all(group["labels"].get("node") for group in targets), "every target group names its node"


def test_promtool_rejects_a_broken_targets_file(tmp_path: Path) -> None:
    config = portable(DEPLOY / "prometheus" / "prometheus.yml", tmp_path)
    (tmp_path / "targets" / "broken.json").write_text('[{"targets": "render-9:9465"}]')  # a string, not a list
    result = promtool(config)
    assert result.returncode != 0, result.stdout
    assert "cannot unmarshal string" in result.stdout + result.stderr


def test_the_kubernetes_scrape_config_passes_promtool_with_its_discovery_swapped(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "kubernetes.yml").read_text())
    config["rule_files"] = [str(ALERTS_DIR / "*.rules.yml")]
    swapped = kubernetes_sd_as_file_sd(config, tmp_path / "pods.json", {"__address__": "10.0.0.5"})
    (tmp_path / "kubernetes.yml").write_text(yaml.safe_dump(swapped))
    result = promtool(tmp_path / "kubernetes.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    config["scrape_configs"][0]["relabel_configs"][0]["regex"] = "(unclosed"
    broken = kubernetes_sd_as_file_sd(config, tmp_path / "pods.json", {"__address__": "10.0.0.5"})
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    assert promtool(tmp_path / "broken.yml").returncode != 0


def federation_selectors() -> list[str]:
    config = yaml.safe_load((DEPLOY / "prometheus" / "central.yml").read_text())
    selectors: list[str] = config["scrape_configs"][0]["params"]["match[]"]
    return selectors


def federated(name: str) -> bool:
    """Whether one of central.yml's match[] selectors selects metric `name` (by its __name__ matcher)."""
    for selector in federation_selectors():
        match = re.search(r'__name__\s*(=~|=)\s*"([^"]+)"', selector)
        assert match, f"selector {selector!r} does not select by __name__"
        op, value = match.groups()
        if (op == "=" and name == value) or (op == "=~" and re.fullmatch(value, name)):
            return True
    return False


def test_the_central_prometheus_federates_the_fleet_series_and_every_recording_rule() -> None:
    recorded = [
        rule["record"]
        for path in ALERTS_DIR.glob("*.rules.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    ]
    assert recorded
    missing = [name for name in (*FEDERATED, *recorded) if not federated(name)]
    assert not missing, f"central.yml does not federate {missing}"
    leaked = [name for name in NOT_FEDERATED if federated(name)]
    assert not leaked, f"per-job detail must stay on the site Prometheus: {leaked}"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return run(require_binary("amtool", "prometheus-alertmanager"), *args)


def test_the_fleet_alertmanager_config_passes_amtool() -> None:
    result = amtool("check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    route = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())["route"]
    assert route["group_by"] == ["alertname", "node", "job_id"]


def test_amtool_rejects_a_route_to_an_undefined_receiver(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    config["route"]["routes"][0]["receiver"] = "nobody"
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    result = amtool("check-config", str(tmp_path / "alertmanager.yml"))
    assert result.returncode != 0
    assert "nobody" in result.stdout + result.stderr


def alert(name: str, severity: str, node: str, team: str | None = None) -> dict[str, str]:
    labels = {"alertname": name, "severity": severity, "node": node}
    return labels | ({"team": team} if team else {})


@pytest.mark.parametrize(
    "labels,receiver",
    [
        (alert("AuraJobStalled", "critical", "render-003", "render-gpu"), "gpu-pager"),
        (alert("AuraQueueBacklog", "warning", "render-003", "render-gpu"), "gpu-chat"),
        (alert("AuraJobStalled", "critical", "render-042", "render-core"), "customer-42"),
        (alert("AuraJobStalled", "critical", "render-001", "render-core"), "farm-pager"),
        (alert("AuraSidecarDown", "critical", "render-lab-2"), "blackhole"),
        (alert("AuraRetryStorm", "warning", "render-001"), "farm-chat"),
    ],
)
def test_alerts_are_routed_by_node_and_team(labels: dict[str, str], receiver: str) -> None:
    pairs = [f"{key}={value}" for key, value in labels.items()]
    result = amtool("config", "routes", "test", f"--config.file={DEPLOY / 'alertmanager' / 'alertmanager.yml'}", *pairs)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver], f"{labels} went to {result.stdout.strip()!r}, expected {receiver}"

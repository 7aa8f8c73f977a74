"""The alert rules, their promtool tests and the Alertmanager example, checked offline."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from aura_monitor.api import runbooks
from tests.support.live_stack import ALERTS_DIR, ROOT, RULE_FILES, promtool_test_files, require_binary, rules

RUNBOOKS = ROOT / "aura_monitor" / "api" / "runbooks.md"


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_rule_files_pass_promtool_check() -> None:
    promtool = require_binary("promtool", "prometheus")
    assert RULE_FILES, "no alerts/*.rules.yml"
    result = run([promtool, "check", "rules", *map(str, RULE_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    promtool = require_binary("promtool", "prometheus")
    files = promtool_test_files()
    assert files, "no alerts/tests/*.yml"
    result = run([promtool, "test", "rules", *files])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_in_some_promtool_test() -> None:
    fired: set[str] = set()
    for path in promtool_test_files():
        for case in yaml.safe_load(Path(path).read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    alerts = {rule.name for rule in rules() if rule.is_alert}
    assert alerts - fired == set(), "alerts without a firing promtool test"


def test_every_alert_has_a_severity_a_summary_and_an_absolute_runbook_url_with_a_section() -> None:
    sections = set(runbooks.anchors(RUNBOOKS.read_text()))
    for rule in (r for r in rules() if r.is_alert):
        assert "severity" in rule.labels, rule.name
        assert rule.annotations.get("summary"), rule.name
        runbook = rule.annotations.get("runbook_url", "")
        # The base comes from the sidecar's aura_sidecar_info; the fallback is an absolute URL too.
        assert 'label "runbook_url"' in runbook and "aura_sidecar_info" in runbook, rule.name
        assert "{{ else }}http://" in runbook, rule.name
        anchor = runbook.rsplit("#", 1)[1]
        assert anchor == rule.name.lower(), rule.name
        assert anchor in sections, f"{rule.name}: no section #{anchor} in {RUNBOOKS}"
        assert "runbook" not in rule.annotations, f"{rule.name}: the repo-path `runbook` annotation is gone"


def test_every_link_in_an_alert_goes_through_the_sidecars_external_url() -> None:
    for rule in (r for r in rules() if r.is_alert):
        for name, text in rule.annotations.items():
            if name.endswith("_url") and name != "runbook_url":
                assert 'label "external_url"' in text, (rule.name, name)
                # The scrape address only as the fallback for a sidecar without aura_sidecar_info.
                assert text.count("$labels.instance") == 2, (rule.name, name)


def test_the_stall_alert_is_identified_by_job_and_stage_and_never_by_the_verdict() -> None:
    record = next(rule for rule in rules() if rule.name == "aura:job_stall:seconds_since_progress")
    stalled = next(rule for rule in rules() if rule.name == "AuraJobStalled")
    # No verdict placeholder in the recorded series, no label carrying the verdict into the alert.
    assert "no_progress" not in record.expr
    assert "label_replace" not in record.expr and "group_left (reason)" not in record.expr
    assert "reason" not in stalled.labels and "$labels.reason" not in str(stalled.labels)
    assert stalled.labels["severity"] == "critical"
    assert "$labels.reason" not in str(stalled.annotations)
    # The verdict comes from the info-style series, read at alert time.
    assert "aura_job_stall_reason" in stalled.expr
    assert "aura_job_stall_reason" in stalled.annotations["reason"]
    assert "aura_job_threshold_seconds" in stalled.annotations["threshold_seconds"]
    assert "$externalURL" not in str(stalled.annotations)


def test_alertmanager_example_is_valid() -> None:
    amtool = require_binary("amtool", "prometheus-alertmanager")
    result = run([amtool, "check-config", str(ALERTS_DIR / "alertmanager.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_example_pages_critical_alerts_and_chats_warnings() -> None:
    amtool = require_binary("amtool", "prometheus-alertmanager")
    config = f"--config.file={ALERTS_DIR / 'alertmanager.yml'}"

    def receiver(*labels: str) -> str:
        result = run([amtool, "config", "routes", "test", config, *labels])
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert receiver("alertname=AuraJobStalled", "severity=critical", "job_id=j1") == "pager"
    assert receiver("alertname=AuraJobQueuedTooLong", "severity=warning", "job_id=j1") == "chat"
    assert receiver("alertname=AuraSidecarDown", "severity=critical") == "pager"

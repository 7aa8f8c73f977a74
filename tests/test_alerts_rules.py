"""The alert rules, their promtool tests and the Alertmanager example, checked offline."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.live_stack import (
    ALERTS_DIR,
    ROOT,
    RULE_FILES,
    promtool_test_files,
    require_binary,
    rules,
)


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


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", operations, flags=re.MULTILINE)
    }
    for rule in (r for r in rules() if r.is_alert):
        assert "severity" in rule.labels, rule.name
        assert rule.annotations.get("summary"), rule.name
        runbook = rule.annotations.get("runbook", "")
        assert runbook.startswith("docs/operations.md#"), rule.name
        assert runbook.split("#", 1)[1] in anchors, f"{rule.name}: no section {runbook} in docs/operations.md"


def test_the_stall_alert_links_to_the_sidecars_explain_route_and_carries_the_threshold() -> None:
    stalled = next(rule for rule in rules() if rule.name == "AuraJobStalled")
    assert stalled.annotations["explain_url"] == "http://{{ $labels.instance }}/api/jobs/{{ $labels.job_id }}/explain"
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
    assert receiver("alertname=AuraJobStalled", "severity=warning", "job_id=j1") == "chat"
    assert receiver("alertname=AuraSidecarDown", "severity=critical") == "pager"

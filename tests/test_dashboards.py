"""dashboards/: type-checked against Grafana's published schema (@grafana/schema with tsc), PromQL by promtool.

No Grafana server installs here, so the dashboards are checked the way Grafana's own code is: each file
is written into a TypeScript module as `const dashboard: DashboardFile = <the JSON>;` and compiled
against the schema package pinned in tools/grafana-schema/ (installed by `make grafana-schema`).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.live_stack import DASHBOARDS_DIR, ROOT, dashboards, panels, require_binary, substitute

SCHEMA_DIR = ROOT / "tools" / "grafana-schema"
SCHEMA_PACKAGE = SCHEMA_DIR / "node_modules" / "@grafana" / "schema"
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
# Values for every template variable a query may use, so promtool sees plain PromQL.
VARIABLES = {
    "instance": "sidecar:9465",
    "job_id": "job-1",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
}


def tsc() -> str:
    binary = SCHEMA_DIR / "node_modules" / ".bin" / "tsc"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `make grafana-schema` (npm ci in tools/grafana-schema)")
    require_binary("node", "nodejs")
    return str(binary)


def type_check(found: dict[str, dict[str, Any]], workdir: Path) -> subprocess.CompletedProcess[str]:
    """Compile each dashboard as a typed TypeScript constant; tsc's output names the file and the key."""
    files = []
    for name, dashboard in found.items():
        module = workdir / f"{Path(name).stem}.ts"
        module.write_text(
            f'import type {{ DashboardFile }} from "{SCHEMA_DIR / "dashboard-types"}";\n\n'
            f"export const dashboard: DashboardFile = {json.dumps(dashboard, indent=2)};\n"
        )
        files.append(module.name)
    config = {"extends": str(SCHEMA_DIR / "tsconfig.json"), "files": files}
    (workdir / "tsconfig.json").write_text(json.dumps(config))
    return subprocess.run(
        [tsc(), "-p", str(workdir / "tsconfig.json"), "--pretty", "false"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def published_schema_version() -> int:
    """The schemaVersion Grafana writes today: the default in the schema package's generated code."""
    generated = (SCHEMA_PACKAGE / "dist" / "esm" / "raw" / "dashboard" / "x" / "types.gen.mjs").read_text()
    match = re.search(r"schemaVersion: (\d+)", generated)
    assert match, "no schemaVersion default in @grafana/schema's dashboard types"
    return int(match.group(1))


def panel_plugin_version(panel_type: str) -> str:
    types = SCHEMA_PACKAGE / "dist" / "types" / "raw" / "composable" / panel_type / "panelcfg" / "x" / "types.gen.d.ts"
    match = re.search(r'pluginVersion = "([^"]+)"', types.read_text())
    assert match, f"no pluginVersion in {types}"
    return match.group(1)


def expressions() -> dict[str, str]:
    """Every PromQL expression of the dashboards (targets, annotations, query variables) by where it is."""
    found = {}
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                found[f"{name} / {panel['title']} / {target['refId']}"] = target["expr"]
        for annotation in dashboard["annotations"]["list"]:
            if "expr" in annotation:
                found[f"{name} / annotation {annotation['name']}"] = annotation["expr"]
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                query = variable["query"]["query"]
                inner = re.fullmatch(r"label_values\((.+), *\w+\)", query)
                found[f"{name} / variable {variable['name']}"] = inner.group(1) if inner else query
    return found


def test_the_dashboards_type_check_against_grafanas_published_schema(tmp_path: Path) -> None:
    result = type_check(dashboards(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_misspelt_option_and_a_wrong_enum_value(tmp_path: Path) -> None:
    broken = copy.deepcopy(dashboards()["fleet.json"])
    stat = next(p for p in panels(broken) if p["type"] == "stat")
    stat["options"]["colorMode"] = "valu"
    series = next(p for p in panels(broken) if p["type"] == "timeseries")
    series["fieldConfig"]["defaults"]["custom"]["drawStyl"] = "line"
    result = type_check({"broken.json": broken}, tmp_path)
    assert result.returncode != 0
    assert "'\"valu\"' is not assignable" in result.stdout
    assert "'\"drawStyl\"' does not exist" in result.stdout


def test_the_dashboards_are_at_the_published_schema_version_with_current_panel_options() -> None:
    version = published_schema_version()
    for name, dashboard in dashboards().items():
        assert dashboard["schemaVersion"] == version, name
        for panel in panels(dashboard):
            if panel["type"] != "row":
                assert panel["pluginVersion"] == panel_plugin_version(panel["type"]), (name, panel["title"])


def test_every_panel_target_and_query_variable_uses_the_datasource_variable() -> None:
    for name, dashboard in dashboards().items():
        text = (DASHBOARDS_DIR / name).read_text()
        assert "aura-prometheus" not in text and "${DS_" not in text and "__inputs" not in dashboard, name
        variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
        chooser = variables["datasource"]
        assert (chooser["type"], chooser["query"]) == ("datasource", "prometheus"), name
        # "default" resolves to the provisioned datasource (isDefault) and to any Grafana's default one.
        assert chooser["current"]["value"] == "default", name
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == DATASOURCE_REF, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"] == DATASOURCE_REF, (name, panel["title"], target["refId"])
                assert target["expr"].strip(), (name, panel["title"], target["refId"])
        for variable in variables.values():
            if variable["type"] == "query":
                assert variable["datasource"] == DATASOURCE_REF, (name, variable["name"])
        for annotation in dashboard["annotations"]["list"]:
            if not annotation.get("builtIn"):
                assert annotation["datasource"] == DATASOURCE_REF, (name, annotation["name"])


def test_the_provisioned_datasource_is_the_default_the_variable_picks() -> None:
    provisioning = DASHBOARDS_DIR / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert [(source["type"], source["isDefault"]) for source in datasources] == [("prometheus", True)]
    providers = yaml.safe_load((provisioning / "dashboards" / "aura-monitor.yml").read_text())["providers"]
    assert providers[0]["type"] == "file"


def test_dashboards_have_unique_uids_and_panel_ids() -> None:
    found = dashboards()
    uids = [dashboard["uid"] for dashboard in found.values()]
    assert len(set(uids)) == len(uids)
    for name, dashboard in found.items():
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(set(ids)) == len(ids), name


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    promtool = require_binary("promtool", "prometheus")
    found = expressions()
    assert len(found) >= 30
    # promtool parses every recording rule's expression: one rule per dashboard expression.
    names = list(found)
    records = [
        {"record": f"dashboard:expr_{i}", "expr": substitute(found[where], VARIABLES)} for i, where in enumerate(names)
    ]
    rules = tmp_path / "dashboards.rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": records}]}, sort_keys=False))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60, check=False
    )
    failing = re.findall(r"dashboard:expr_(\d+)", result.stdout + result.stderr)
    assert result.returncode == 0, [names[int(i)] for i in failing] or result.stdout + result.stderr


def test_stalls_are_marked_on_the_time_axis_of_both_dashboards() -> None:
    for name, dashboard in dashboards().items():
        marks = {a["name"]: a for a in dashboard["annotations"]["list"] if not a.get("builtIn")}
        assert marks["Stalls"]["enable"] and "aura_job_stalled" in marks["Stalls"]["expr"], name
        assert "{{job_id}}" in marks["Stalls"]["titleFormat"], name
        assert 'ALERTS{alertname="AuraJobStalled"' in marks["AuraJobStalled alerts"]["expr"], name


def test_the_stall_verdict_comes_from_the_reason_series_not_from_the_stalled_gauge() -> None:
    # aura_job_stalled{job_id, stage} keeps its identity over a stall; the verdict is
    # aura_job_stall_reason{job_id, reason}, joined on job_id (DESIGN 2.6).
    for where, expr in expressions().items():
        assert not re.search(r"by \([^)]*reason[^)]*\) \(aura_job_stalled", expr), where
        assert "aura_job_stalled{reason" not in expr and "group_left (reason) (aura_job_stalled" not in expr, where
    verdicts = [where for where, expr in expressions().items() if "aura_job_stall_reason" in expr]
    assert any(where.startswith("fleet.json / Stalled jobs") for where in verdicts)
    assert any(where.startswith("job.json / Reason") for where in verdicts)


def test_links_to_a_sidecar_open_its_external_url_never_its_scrape_address() -> None:
    for name in dashboards():
        text = (DASHBOARDS_DIR / name).read_text()
        assert "http://${" not in text, f"{name}: a link is built from a scrape address"
        explain_links = re.findall(r'"url": "([^"]*/explain)"', text)
        assert explain_links, name
        for url in explain_links:
            assert url.startswith(("${__data.fields.external_url}", "${external_url}")), (name, url)
    fleet_table = next(p for p in panels(dashboards()["fleet.json"]) if p["type"] == "table")
    assert "group_left (external_url) aura_sidecar_info" in fleet_table["targets"][0]["expr"]
    # Moving between the dashboards keeps the chosen Prometheus.
    drill_down = re.findall(r'"url": "(/d/aura-job/[^"]*)"', (DASHBOARDS_DIR / "fleet.json").read_text())
    assert drill_down and all("var-datasource=${datasource}" in url for url in drill_down)
    job_variables = {v["name"]: v for v in dashboards()["job.json"]["templating"]["list"]}
    assert "aura_sidecar_info" in job_variables["external_url"]["query"]["query"]

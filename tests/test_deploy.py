"""deploy/: the Kubernetes manifests against the real JSON schemas, the Prometheus and Alertmanager configs
through promtool and amtool, and the file_sd + federation path through real Prometheus servers."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate

from tests.support import HANG_S, write_native
from tests.support.aura_writer import net_time
from tests.support.live_stack import (
    ALERTS_DIR,
    PrometheusAPI,
    clean_env,
    free_port,
    managed,
    poll,
    require_binary,
    sidecar_argv,
    wait_ready,
)

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
# The oldest Kubernetes still commonly run and the newest the bundled schemas know.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
# What a fleet view needs from every site (docs/fleet.md, "What to federate").
FEDERATED = ("aura_sidecar_info", "aura_jobs", "aura_job_stalled", "aura_job_stall_reason", "up")
NOT_FEDERATED = ("aura_job_percent", "aura_job_seconds_since_progress", "aura_watcher_lag_seconds_bucket")


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def validate(doc: dict[str, Any], version: str) -> None:
    """Strict validation (unknown fields rejected); a kind the schemas do not know is an error, not a warning."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError as error:
        raise AssertionError(error.message) from error


def daemonset() -> dict[str, Any]:
    return next(doc for doc in documents(DEPLOY / "kubernetes" / "daemonset.yaml") if doc["kind"] == "DaemonSet")


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


# -- Kubernetes ---------------------------------------------------------------------------------------


def test_there_are_manifests_to_validate() -> None:
    kinds = {doc["kind"] for path in MANIFESTS for doc in documents(path)}
    assert {"DaemonSet", "Service", "StatefulSet", "ServiceAccount", "NetworkPolicy"} <= kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_every_manifest_validates_strictly_against_the_kubernetes_schemas(path: Path, version: str) -> None:
    for doc in documents(path):
        validate(doc, version)


def _misspelled_probe(doc: dict[str, Any]) -> None:
    container = doc["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")


def _host_pid_as_text(doc: dict[str, Any]) -> None:
    doc["spec"]["template"]["spec"]["hostPID"] = "yes"


def _no_containers(doc: dict[str, Any]) -> None:
    del doc["spec"]["template"]["spec"]["containers"]


def _port_out_of_range(doc: dict[str, Any]) -> None:
    doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"


@pytest.mark.parametrize(
    "breakage", [_misspelled_probe, _host_pid_as_text, _no_containers, _port_out_of_range], ids=lambda f: f.__name__
)
def test_the_validator_rejects_a_broken_daemonset(breakage: Any) -> None:
    broken = copy.deepcopy(daemonset())
    breakage(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_an_unknown_kind_is_an_error_not_a_silent_pass() -> None:
    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": {"name": "x"}}
    with pytest.raises(AssertionError, match="Couldn't find schema"):
        validate(monitor, KUBERNETES_VERSIONS[-1])


def _pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in MANIFESTS:
        for doc in documents(path):
            if doc["kind"] in {"DaemonSet", "StatefulSet", "Deployment"}:
                yield f"{path.name}:{doc['kind']}", doc["spec"]["template"]["spec"]


@pytest.mark.parametrize("name,spec", list(_pod_specs()), ids=lambda value: value if isinstance(value, str) else "")
def test_every_sidecar_container_is_locked_down_and_probed(name: str, spec: dict[str, Any]) -> None:
    assert spec["securityContext"]["runAsNonRoot"] is True, name
    assert spec["automountServiceAccountToken"] is False, name
    sidecar = next(c for c in spec["containers"] if c["args"][0] == "serve")
    context = sidecar["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= set(sidecar["resources"]["requests"]) and "memory" in sidecar["resources"]["limits"]
    args = " ".join(sidecar["args"])
    for flag in ("--node=", "--external-url=", "--host=0.0.0.0", "--allowed-host="):
        assert flag in args, f"{name}: {flag} missing from {args}"
    # Kubernetes leaves an undefined $(VAR) as literal text: the sidecar would be named "$(NODE_NAME)".
    defined = {env["name"] for env in sidecar["env"]}
    used = set(re.findall(r"\$\((\w+)\)", args))
    assert used <= defined, f"{name}: {sorted(used - defined)} used in args but not defined in env"
    token = next(env for env in sidecar["env"] if env["name"] == "AURA_MONITOR_TOKEN")
    assert "secretKeyRef" in token["valueFrom"], "the bearer token comes from a Secret, never the manifest"
    mounts = {mount["mountPath"] for mount in sidecar["volumeMounts"]}
    assert {"/data", "/tmp"} <= mounts, "the jobs dir's parent and a writable /tmp (the root is read-only)"


def test_the_daemonset_names_each_sidecar_after_its_node_and_sees_the_host_jobs_and_processes() -> None:
    spec = daemonset()["spec"]["template"]["spec"]
    sidecar = spec["containers"][0]
    env = {item["name"]: item for item in sidecar["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert "--node=$(NODE_NAME)" in sidecar["args"]
    assert spec["hostPID"] is True
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    data = next(m for m in sidecar["volumeMounts"] if m["mountPath"] == "/data")
    assert volumes[data["name"]]["hostPath"]["path"] == "/var/lib/aura"
    assert "--jobs-dir=/data/jobs" in sidecar["args"]


def test_the_worker_pod_shares_its_process_namespace_with_its_sidecar() -> None:
    docs = documents(DEPLOY / "kubernetes" / "worker-pod.yaml")
    statefulset = next(doc for doc in docs if doc["kind"] == "StatefulSet")
    spec = statefulset["spec"]["template"]["spec"]
    assert spec["shareProcessNamespace"] is True and "hostPID" not in spec
    mounts = [{m["name"] for m in c["volumeMounts"]} for c in spec["containers"]]
    assert all("aura-data" in names for names in mounts), "worker and sidecar share the jobs volume"


def test_the_daemonset_outranks_render_pods_and_requests_a_cpu_share() -> None:
    classes = {
        doc["metadata"]["name"]: doc
        for doc in documents(DEPLOY / "kubernetes" / "daemonset.yaml")
        if doc["kind"] == "PriorityClass"
    }
    spec = daemonset()["spec"]["template"]["spec"]
    priority = classes[spec["priorityClassName"]]  # declared beside it, not assumed to exist
    assert priority["value"] > 0 and priority["preemptionPolicy"] == "Never" and not priority["globalDefault"]
    request = spec["containers"][0]["resources"]["requests"]["cpu"]
    assert request.endswith("m") and int(request[:-1]) >= 250


def test_the_systemd_unit_passes_systemd_analyze_and_puts_the_sidecar_ahead_of_the_encoders(tmp_path: Path) -> None:
    systemd_analyze = require_binary("systemd-analyze", "systemd")
    unit = (DEPLOY / "systemd" / "aura-monitor.service").read_text()
    # verify checks that ExecStart exists: point it at the installed console script.
    installed = Path(sys.executable).parent / "aura-monitor"
    (tmp_path / "aura-monitor.service").write_text(unit.replace("/usr/local/bin/aura-monitor", str(installed)))
    checked = run(systemd_analyze, "verify", str(tmp_path / "aura-monitor.service"))
    assert checked.returncode == 0 and "aura-monitor.service" not in checked.stderr, checked.stderr

    def setting(text: str, key: str) -> int:
        found = re.search(rf"^{key}=(-?\d+)", text, re.MULTILINE)
        assert found, f"no {key}= in the unit"
        return int(found.group(1))

    worker = (DEPLOY / "systemd" / "render-worker.conf").read_text()
    assert setting(unit, "CPUWeight") > setting(worker, "CPUWeight")
    assert setting(unit, "Nice") < 0 < setting(worker, "Nice")


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_every_service_selects_the_pods_it_is_declared_beside(path: Path) -> None:
    docs = documents(path)
    pod_labels = [doc["spec"]["template"]["metadata"]["labels"] for doc in docs if "template" in doc.get("spec", {})]
    ports = {
        port["name"]
        for doc in docs
        if "template" in doc.get("spec", {})
        for container in doc["spec"]["template"]["spec"]["containers"]
        for port in container.get("ports", [])
    }
    for service in (doc for doc in docs if doc["kind"] == "Service"):
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), f"{service['metadata']['name']}"
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= ports


# -- Prometheus and Alertmanager configs --------------------------------------------------------------


def promtool(config: Path) -> subprocess.CompletedProcess[str]:
    return run(require_binary("promtool", "prometheus"), "check", "config", str(config))


def kubernetes_sd_as_file_sd(config: dict[str, Any], targets_file: Path, meta: dict[str, str]) -> dict[str, Any]:
    """kubernetes.yml with its pod discovery replaced by a file of the same __meta_kubernetes_* labels.

    Debian's Prometheus is built without Kubernetes discovery; everything else (the relabel rules above
    all) is then checked and run by the real promtool and Prometheus.
    """
    targets_file.write_text(json.dumps([{"targets": [meta.pop("__address__")], "labels": meta}]))
    config = copy.deepcopy(config)
    for job in config["scrape_configs"]:
        sd = job.pop("kubernetes_sd_configs")
        assert [entry["role"] for entry in sd] == ["pod"]
        job["file_sd_configs"] = [{"files": [str(targets_file)]}]
    return config


def portable(config_path: Path, tmp: Path) -> Path:
    """A copy of a deploy/prometheus config runnable from `tmp`: absolute rule paths, target files copied."""
    config = yaml.safe_load(config_path.read_text())
    config["rule_files"] = [str((config_path.parent / rule).resolve()) for rule in config.get("rule_files", [])]
    out = tmp / config_path.name
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    if (config_path.parent / "targets").is_dir():
        (tmp / "targets").mkdir(exist_ok=True)
        for target in (config_path.parent / "targets").iterdir():
            (tmp / "targets" / target.name).write_text(target.read_text())
    return out


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


# -- live: real sidecars, a site Prometheus on file_sd, a central one federating it --------------------


def fast(config_path: Path) -> None:
    """Scrape and evaluate every second (the files say 15-30 s); no Alertmanager to deliver to here."""
    config = yaml.safe_load(config_path.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config.pop("alerting", None)
    for job in config["scrape_configs"]:
        job.update(scrape_interval="1s", scrape_timeout="1s")
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def targets_file(path: Path, port: int, **labels: str) -> None:
    """A file_sd targets file as deploy/prometheus/targets holds, atomically (Prometheus watches the dir)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": labels}]))
    tmp.replace(path)


class Stack:
    """Processes started by one test, stopped at its end."""

    def __init__(self, tmp: Path, exits: contextlib.ExitStack) -> None:
        self.tmp = tmp
        self.exits = exits

    def sidecar(self, node: str, *jobs: tuple[str, float], calls_itself: str | None = None) -> int:
        """A real sidecar named `node` (or `calls_itself`) whose jobs last progressed (job id, seconds ago)."""
        jobs_dir = self.tmp / node / "jobs"
        jobs_dir.mkdir(parents=True)
        for job_id, age in jobs:
            write_native(jobs_dir, job_id, lastProgressAt=net_time(time.time() - age))
        port = free_port()
        process = self.exits.enter_context(
            managed(
                node,
                # A "fine" job is written once and never again: under the default 45 s threshold it stalled
                # while a loaded machine started the stack. 600 s keeps it fine for the test and the
                # "stuck" one (2 h old) stalled.
                sidecar_argv(jobs_dir, port, "--node", calls_itself or node, "--stall-threshold", "600"),
                self.tmp / f"{node}.log",
                env=clean_env(),
            )
        )
        wait_ready(process, f"http://127.0.0.1:{port}/readyz")
        return port

    def prometheus(self, name: str, config: Path) -> PrometheusAPI:
        port = free_port()
        argv = [
            require_binary("prometheus", "prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.tmp / name}-data",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        process = self.exits.enter_context(managed(name, argv, self.tmp / f"{name}.log"))
        wait_ready(process, f"http://127.0.0.1:{port}/-/ready")
        api = PrometheusAPI(f"http://127.0.0.1:{port}")
        self.exits.callback(api.close)
        return api


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with contextlib.ExitStack() as exits:
        yield Stack(tmp_path, exits)


def series(api: PrometheusAPI, expr: str) -> list[dict[str, str]]:
    return [item["metric"] for item in api.vector(expr)]


def test_a_site_prometheus_finds_sidecars_in_its_targets_files_and_the_central_one_federates_only_fleet_series(
    stack: Stack,
) -> None:
    port_a = stack.sidecar("render-a", ("stuck", 7200), ("fine", 0))
    # Misconfigured on purpose: its --node is not the targets file's name.
    port_b = stack.sidecar("render-b", ("fine-b", 0), calls_itself="render-b-self")
    site_dir = stack.tmp / "site"
    site_dir.mkdir()
    site = portable(DEPLOY / "prometheus" / "prometheus.yml", site_dir)
    fast(site)
    for example in (site_dir / "targets").iterdir():
        example.unlink()  # the example's farm.example hosts do not resolve here
    targets_file(site_dir / "targets" / "render-a.json", port_a, node="render-a", team="render-core")
    site_api = stack.prometheus("site", site)

    info = poll(lambda: series(site_api, 'aura_sidecar_info{instance="render-a"}') or None, HANG_S, "render-a scraped")
    # instance is the node name; the info series keeps one `node` (no exported_node left by the clash).
    assert info[0]["node"] == "render-a" and info[0]["job"] == "aura-monitor" and "exported_node" not in info[0]
    assert series(site_api, 'aura_jobs{node="render-a", team="render-core", status="running"}')

    # A new node is a new targets file: picked up without a reload.
    targets_file(site_dir / "targets" / "render-b.json", port_b, node="render-b", team="render-gpu")
    poll(lambda: series(site_api, 'up{instance="render-b"} == 1') or None, HANG_S, "render-b discovered from its file")
    # Its info series says what the sidecar calls itself; every other series says what discovery says.
    info_b = poll(lambda: series(site_api, 'aura_sidecar_info{instance="render-b"}') or None, HANG_S, "render-b info")
    assert info_b[0]["node"] == "render-b-self" and "exported_node" not in info_b[0]
    assert series(site_api, 'aura_jobs{instance="render-b", node="render-b", status="running"}')
    poll(lambda: series(site_api, 'aura_job_stall_reason{job_id="stuck"}') or None, HANG_S, "the stuck job diagnosed")

    central_dir = stack.tmp / "central"
    central_dir.mkdir()
    central = portable(DEPLOY / "prometheus" / "central.yml", central_dir)
    config = yaml.safe_load(central.read_text())
    config["scrape_configs"][0]["static_configs"] = [
        {"targets": [site_api.base_url.removeprefix("http://")], "labels": {"site": "site-a"}}
    ]
    central.write_text(yaml.safe_dump(config, sort_keys=False))
    fast(central)
    central_api = stack.prometheus("central", central)

    def both_nodes() -> list[dict[str, str]] | None:
        found = series(central_api, 'aura_sidecar_info{site="site-a"}')
        return found if len(found) == 2 else None

    nodes = poll(both_nodes, HANG_S, "both nodes federated")
    assert {item["node"] for item in nodes} == {"render-a", "render-b-self"}
    # Federated with the site's labels (honor_labels), not relabelled as the federation job.
    assert {item["job"] for item in nodes} == {"aura-monitor"}
    stalled = poll(lambda: series(central_api, "aura_job_stalled") or None, HANG_S, "the stalled job federated")
    assert [(item["node"], item["job_id"]) for item in stalled] == [("render-a", "stuck")]
    assert series(central_api, 'aura_job_stall_reason{node="render-a", job_id="stuck"}')
    assert len(series(central_api, 'up{job="aura-monitor"} == 1')) == 2
    assert len(series(central_api, "aura_jobs")) == len(series(site_api, "aura_jobs")) > 0
    # Per-job detail stays on the site: present there, absent centrally.
    assert series(site_api, "aura_job_percent") and not series(central_api, "aura_job_percent")


def test_the_kubernetes_scrape_config_keeps_annotated_pods_and_names_them_after_their_node(stack: Stack) -> None:
    port = stack.sidecar("k8s-node-1", ("fine", 0))
    config = yaml.safe_load((DEPLOY / "prometheus" / "kubernetes.yml").read_text())
    config["rule_files"] = []
    pod = {
        # The pod's address without the annotated port: the relabelling must add it.
        "__address__": "127.0.0.1",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": str(port),
        "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
        "__meta_kubernetes_pod_container_port_name": "http",
        "__meta_kubernetes_pod_node_name": "k8s-node-1",
        "__meta_kubernetes_pod_label_farm_example_team": "render-core",
    }
    swapped = kubernetes_sd_as_file_sd(config, stack.tmp / "pods.json", dict(pod))
    # A second pod that did not ask to be scraped: dropped.
    groups = json.loads((stack.tmp / "pods.json").read_text())
    groups.append({"targets": ["127.0.0.2:1"], "labels": {k: v for k, v in pod.items() if k != "__address__"}})
    groups[1]["labels"]["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] = "false"
    (stack.tmp / "pods.json").write_text(json.dumps(groups))
    (stack.tmp / "kubernetes.yml").write_text(yaml.safe_dump(swapped, sort_keys=False))
    fast(stack.tmp / "kubernetes.yml")
    api = stack.prometheus("in-cluster", stack.tmp / "kubernetes.yml")

    up = poll(lambda: series(api, "up == 1") or None, HANG_S, "the annotated pod scraped")
    assert up == [
        {"__name__": "up", "instance": "k8s-node-1", "job": "aura-monitor", "node": "k8s-node-1", "team": "render-core"}
    ]
    assert series(api, 'aura_sidecar_info{instance="k8s-node-1", node="k8s-node-1"}')
    active = api.client.get("/api/v1/targets").json()["data"]["activeTargets"]
    assert [target["scrapeUrl"] for target in active] == [f"http://127.0.0.1:{port}/metrics"]

"""deploy/kubernetes and deploy/systemd: the manifests strictly against the real Kubernetes JSON schemas, the
sidecar's lockdown, probes, node identity and priority, and the systemd unit through systemd-analyze."""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate

from tests.support.deploy import DEPLOY, run
from tests.support.live_stack import require_binary

MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
# The oldest Kubernetes still commonly run and the newest the bundled schemas know.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


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

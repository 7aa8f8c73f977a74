"""The deploy/prometheus configs run for real: sidecars found through file_sd targets files by a site
Prometheus, federated by a central one, and kept and named by the Kubernetes scrape config's relabelling."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support import HANG_S, write_native
from tests.support.aura_writer import net_time
from tests.support.deploy import DEPLOY, kubernetes_sd_as_file_sd, portable
from tests.support.live_stack import (
    PrometheusAPI,
    clean_env,
    free_port,
    managed,
    poll,
    require_binary,
    sidecar_argv,
    wait_ready,
)


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

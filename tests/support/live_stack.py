"""Real Prometheus, Alertmanager and aura-monitor processes on loopback ports, for the live alert tests."""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from tests.support import STARTUP_S, wait_for

ROOT = Path(__file__).resolve().parents[2]
ALERTS_DIR = ROOT / "alerts"
DASHBOARDS_DIR = ROOT / "dashboards"
RULE_FILES = sorted(ALERTS_DIR.glob("*.rules.yml"))
DATASOURCE_UID = "aura-prometheus"

T = TypeVar("T")


def require_binary(name: str, package: str) -> str:
    """Path of a system binary; fails (never skips, CI included) naming the Debian package to install."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if found is None:
        pytest.fail(f"{name} is not installed: install the Debian package {package} (make system-deps)")
    return found


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now and never handed out before in this session.

    The socket is closed before the child binds it, so the kernel may offer the same port to the next
    call (a stack asks for four in a row): remembering them rules out that collision.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def poll(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """wait_for, counting a still-starting process's errors (refused, half-written JSON) as "not yet"."""
    return wait_for(probe, timeout, what, interval=interval, ignoring=(httpx.HTTPError, ValueError, KeyError))


def stop_process(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """Stop a child the way a service manager does: SIGCONT (it may be SIGSTOPped), SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGCONT)
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class ManagedProcess:
    """A child process with its output in a log file; stop() terminates, then kills."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop(), the process writes to it meanwhile
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"{self.name} exited with {code}:\n{self.log_tail()}")

    def stop(self) -> None:
        stop_process(self.process, grace=5)
        self._log.close()


@contextlib.contextmanager
def managed(name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> Iterator[ManagedProcess]:
    process = ManagedProcess(name, argv, log_path, env)
    try:
        yield process
    finally:
        process.stop()


def wait_ready(process: ManagedProcess, url: str, timeout: float = STARTUP_S) -> None:
    def ready() -> bool:
        process.check_alive()
        return httpx.get(url, timeout=2).status_code == 200

    poll(ready, timeout, f"{process.name} to answer {url}")


@dataclass(frozen=True)
class Delivery:
    """One webhook notification Alertmanager sent: the receiver path and the JSON body."""

    path: str
    body: dict[str, Any]

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        return [
            alert
            for alert in self.body.get("alerts", [])
            if all(alert["labels"].get(key) == value for key, value in labels.items())
        ]


class WebhookReceiver:
    """A tiny HTTP server on loopback that records every POST (Alertmanager's webhook receiver)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with receiver._lock:
                    receiver.deliveries.append(Delivery(self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test reports what matters; the server's access log is noise

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="webhook", daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def received(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)


class PrometheusAPI:
    """The few calls of Prometheus' HTTP API the tests need."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, timeout=5)

    def query(self, expr: str) -> dict[str, Any]:
        """The raw answer of an instant query (status, data or errorType/error)."""
        response = self.client.get("/api/v1/query", params={"query": expr})
        answer: dict[str, Any] = response.json()
        return answer

    def vector(self, expr: str) -> list[dict[str, Any]]:
        answer = self.query(expr)
        if answer["status"] != "success":
            raise AssertionError(f"query {expr!r} failed: {answer.get('error')}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.client.get("/api/v1/alerts").json()["data"]["alerts"]
        return alerts

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.client.get("/api/v1/rules").json()["data"]["groups"]
        return groups

    def close(self) -> None:
        self.client.close()


def aura_monitor_argv(*args: str) -> list[str]:
    """The installed `aura-monitor` script of this interpreter's environment, else `python -m aura_monitor`."""
    script = Path(sys.executable).parent / "aura-monitor"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "aura_monitor", *args]


_DATA_BASE: list[Path] = []


def fresh_data_dir() -> Path:
    """A new empty dir for one process's state (removed when the test session ends).

    Why: a sidecar keeps its incident history in its state dir and learns stage thresholds from it. A
    shared one (the user's ~/.local/share/aura-monitor, or one dir for the whole session) fills with the
    healthy runs of every earlier test and run, and a later sidecar then judges stalls by thresholds
    learned from them: a 900 s threshold read back as 94 s under a loaded stress run.
    """
    if not _DATA_BASE:
        _DATA_BASE.append(Path(tempfile.mkdtemp(prefix="aura-test-data-")))
        atexit.register(shutil.rmtree, _DATA_BASE[0], True)
    return Path(tempfile.mkdtemp(dir=_DATA_BASE[0]))


def sidecar_argv(jobs_dir: Path, port: int, *extra: str) -> list[str]:
    """`aura-monitor serve` on loopback. (No --state-dir: it would also move retry records out of the jobs
    dir; start it with clean_env() for a history of its own.)"""
    return aura_monitor_argv("serve", "--jobs-dir", str(jobs_dir), "--host", "127.0.0.1", "--port", str(port), *extra)


def clean_env() -> dict[str, str]:
    """The environment minus settings that would change how the processes under test behave, with a data
    dir of its own (XDG_DATA_HOME): no default state dir is shared with another process (fresh_data_dir)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AURA_MONITOR_", "OTEL_"))}
    env["XDG_DATA_HOME"] = str(fresh_data_dir())
    return env


def write_prometheus_config(
    path: Path, sidecar_target: str, alertmanager_target: str, extra_targets: dict[str, str] | None = None
) -> None:
    """Scrape and evaluate every second, load the project's rule files, alert to our Alertmanager."""
    scrape_configs: list[dict[str, Any]] = [
        {"job_name": "aura-monitor", "static_configs": [{"targets": [sidecar_target]}]}
    ]
    for job, target in (extra_targets or {}).items():
        scrape_configs.append({"job_name": job, "static_configs": [{"targets": [target]}]})
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS_DIR / "*.rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_target]}]}]},
        "scrape_configs": scrape_configs,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def write_alertmanager_config(path: Path, webhook_url: str) -> dict[str, Any]:
    """alerts/alertmanager.yml with its receivers pointed at `webhook_url`/<receiver> and 1 s timers.

    Groups are also repeated every 2 s: Alertmanager notifies again only on a new, resolved or repeated
    alert, so this is how a test sees an alert's updated annotations arrive at the receiver.
    """
    config: dict[str, Any] = yaml.safe_load((ALERTS_DIR / "alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"{webhook_url}/{receiver['name']}"

    def hurry(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        if "repeat_interval" in route:
            route["repeat_interval"] = "2s"
        for child in route.get("routes", []):
            hurry(child)

    config["route"]["group_wait"] = config["route"]["group_interval"] = "1s"
    config["route"]["repeat_interval"] = "2s"
    hurry(config["route"])
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


# -- dashboards and rules as data ---------------------------------------------------------------------


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows carry their panels inside


def panel_queries() -> list[PanelQuery]:
    found = []
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                found.append(PanelQuery(name, panel["title"], target["refId"], target["expr"]))
    return found


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace Grafana's `$name` / `${name}` / `${name:fmt}` with the given values; unknown names fail."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise KeyError(f"no value for template variable ${name} in {expr!r}")
        return variables[name]

    return _VARIABLE.sub(value, expr)


@dataclass(frozen=True)
class Rule:
    file: str
    group: str
    name: str
    expr: str
    labels: dict[str, str]
    annotations: dict[str, str]
    is_alert: bool


def rules() -> list[Rule]:
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found.append(
                    Rule(
                        path.name,
                        group["name"],
                        rule.get("alert") or rule["record"],
                        rule["expr"],
                        rule.get("labels", {}),
                        rule.get("annotations", {}),
                        "alert" in rule,
                    )
                )
    return found


def promtool_test_files() -> list[str]:
    return sorted(glob.glob(str(ALERTS_DIR / "tests" / "*.yml")))

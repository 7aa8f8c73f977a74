"""The deploy/ dir and what its tests share: a tool run with a timeout, Prometheus configs made runnable here."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.live_stack import ROOT

DEPLOY = ROOT / "deploy"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


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

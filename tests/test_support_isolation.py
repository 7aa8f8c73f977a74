"""The suite's own hygiene: no sidecar a test starts shares a history (or learns thresholds) with another."""

from __future__ import annotations

import os
from pathlib import Path

from aura_monitor.config import default_state_dir
from tests.support.live_stack import clean_env


def test_no_test_touches_the_users_data_dir() -> None:
    home_data = Path.home() / ".local" / "share"
    assert not default_state_dir().is_relative_to(home_data), default_state_dir()
    assert os.environ["AURA_MONITOR_HISTORY"].startswith("sqlite:///")  # this test's own (conftest.py)


def test_each_clean_environment_gets_a_data_dir_of_its_own() -> None:
    first, second = clean_env(), clean_env()
    dirs = [Path(env["XDG_DATA_HOME"]) for env in (first, second)]
    assert dirs[0] != dirs[1]
    assert all(d.is_dir() and not any(d.iterdir()) for d in dirs)
    assert not any(key.startswith(("AURA_MONITOR_", "OTEL_")) for key in first)

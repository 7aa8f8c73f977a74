"""The command line: help documents every setting, errors are one line, the package exports what it says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import aura_monitor
from aura_monitor.cli.main import main
from aura_monitor.config import Settings


def test_serve_help_names_every_setting_and_its_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    for name in Settings.model_fields:
        assert "--" + name.replace("_", "-") in text
        assert "AURA_MONITOR_" + name.upper() in text


def test_a_bad_setting_is_a_one_line_error_and_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["serve", "--jobs-dir", str(tmp_path), "--stall-threshold", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "stall_threshold" in err


def test_serve_refuses_to_bind_beyond_loopback_without_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "without a token" in capsys.readouterr().err


def test_python_dash_m_runs_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "aura_monitor", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"aura-monitor {aura_monitor.__version__}"


def test_the_public_api_is_exactly_all() -> None:
    public = {name for name in dir(aura_monitor) if not name.startswith("_") or name == "__version__"}
    modules = {name for name in public if type(getattr(aura_monitor, name)).__name__ == "module"}
    assert set(aura_monitor.__all__) == public - modules

"""Settings precedence: flags > environment > config file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from aura_monitor.config import default_jobs_dir, load_settings
from aura_monitor.exceptions import ConfigError


def test_flags_beat_environment_which_beats_the_file_which_beats_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text("stall-threshold = 60\nfinalizing_threshold = 200\nport = 7000\n[stage_thresholds]\ntts = 90\n")
    monkeypatch.setenv("AURA_MONITOR_CONFIG", str(config))
    monkeypatch.setenv("AURA_MONITOR_FINALIZING_THRESHOLD", "240")
    monkeypatch.setenv("AURA_MONITOR_PORT", "7100")
    settings = load_settings(port=7200)
    assert settings.port == 7200
    assert settings.finalizing_threshold == 240
    assert settings.stall_threshold == 60
    assert settings.stage_thresholds == {"tts": 90}
    assert settings.queued_threshold == 600


def test_a_json_config_file_with_an_aura_monitor_section_works(tmp_path: Path) -> None:
    config = tmp_path / "monitor.json"
    config.write_text('{"aura-monitor": {"queued_threshold": 30}}')
    assert load_settings(config=config).queued_threshold == 30


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"port": 70000}, "port"),
        ({"stall_threshold": 0}, "stall_threshold"),
        ({"stage_thresholds": {"tts": -1}}, "positive"),
        ({"watch": "fanotify"}, "watch"),
    ],
)
def test_bad_values_are_one_clear_error(flags: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**flags)


def test_a_broken_or_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("stall_threshold = = 3")
    with pytest.raises(ConfigError, match="not valid"):
        load_settings(config=broken)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(config=tmp_path / "absent.toml")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("stal_threshold = 3")
    with pytest.raises(ConfigError, match="stal_threshold"):
        load_settings(config=unknown)


def test_the_default_jobs_dir_follows_aura(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AURA_DATA_PATH", str(tmp_path))
    assert default_jobs_dir() == tmp_path / "jobs"
    monkeypatch.delenv("AURA_DATA_PATH")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_jobs_dir() == tmp_path / "xdg" / "Aura" / "jobs"


def test_a_dict_or_list_variable_that_is_not_json_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AURA_MONITOR_STAGE_THRESHOLDS", "tts=90")
    with pytest.raises(ConfigError, match=r"stage_thresholds.*JSON"):
        load_settings()


@pytest.mark.parametrize("value", ["node7.lan, sidecar", '["node7.lan", "sidecar"]'])
def test_allowed_hosts_come_from_a_comma_list_or_a_json_list_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AURA_MONITOR_ALLOWED_HOST", value)
    assert load_settings().allowed_host == ["node7.lan", "sidecar"]


def test_a_yaml_config_file_is_read_as_yaml(tmp_path: Path) -> None:
    for name in ("monitor.yaml", "monitor.YML"):
        config = tmp_path / name
        config.write_text("aura-monitor:\n  stall-threshold: 60\n  stage_thresholds:\n    tts: 90\n")
        settings = load_settings(config=config)
        assert (settings.stall_threshold, settings.stage_thresholds) == (60, {"tts": 90})
    empty = tmp_path / "empty.yml"
    empty.write_text("# nothing set yet\n")
    assert load_settings(config=empty).stall_threshold == 45


def test_a_broken_yaml_or_an_unknown_extension_is_one_clear_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("stall_threshold: [60\n")
    with pytest.raises(ConfigError, match="not valid YAML") as error:
        load_settings(config=broken)
    assert "\n" not in str(error.value)
    listed = tmp_path / "list.yaml"
    listed.write_text("- stall_threshold\n")
    with pytest.raises(ConfigError, match="must hold a table"):
        load_settings(config=listed)
    ini = tmp_path / "monitor.ini"
    ini.write_text("stall_threshold = 60\n")
    with pytest.raises(ConfigError, match=r"unsupported extension '\.ini'.*\.toml, \.json, \.yaml or \.yml"):
        load_settings(config=ini)

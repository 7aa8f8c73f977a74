"""One settings object: command-line flags > environment (AURA_MONITOR_*) > config file > defaults."""

from __future__ import annotations

import json
import os
import socket
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from .exceptions import ConfigError

ENV_PREFIX = "AURA_MONITOR_"


def aura_data_root() -> Path:
    """Where Aura keeps its data: $AURA_DATA_PATH, else .NET's LocalApplicationData + /Aura."""
    if explicit := os.environ.get("AURA_DATA_PATH"):
        return Path(explicit)
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "Aura"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Aura"
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "Aura"


def default_jobs_dir() -> Path:
    return aura_data_root() / "jobs"


def default_state_dir() -> Path:
    """The platform's per-user data dir for aura-monitor: $XDG_DATA_HOME/aura-monitor and its equivalents."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "aura-monitor"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "aura-monitor"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "aura-monitor"


CONFIG_FORMATS = {".toml": "TOML", ".json": "JSON", ".yaml": "YAML", ".yml": "YAML"}


def _parse_config(path: Path, text: str) -> Any:
    """The file's data, chosen by its extension; an unknown extension is refused rather than guessed."""
    kind = CONFIG_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"config file {path} has an unsupported extension {path.suffix or '(none)'!r}: "
            "name it .toml, .json, .yaml or .yml"
        )
    try:
        if kind == "TOML":
            return tomllib.loads(text)
        if kind == "JSON":
            return json.loads(text)
        return yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} is not valid {kind}: {' '.join(str(exc).split())}") from None


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Values from the TOML, JSON or YAML file named by --config or AURA_MONITOR_CONFIG (lowest precedence)."""

    def __init__(self, settings_cls: type[BaseSettings], init_kwargs: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._path = init_kwargs.get("config") or os.environ.get(ENV_PREFIX + "CONFIG")

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole mapping

    def __call__(self) -> dict[str, Any]:
        if not self._path:
            return {}
        path = Path(self._path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        data = _parse_config(path, text)
        if data is None:  # an empty YAML file: no settings
            return {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a table (mapping) of settings")
        section = data.get("aura-monitor", data)
        if not isinstance(section, dict):
            raise ConfigError(f"config file {path}: the aura-monitor section must be a table (mapping) of settings")
        return {key.replace("-", "_"): value for key, value in section.items()}


class Settings(BaseSettings):
    """Every knob of the sidecar; `aura-monitor serve --help` lists the flags and their variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    config: Path | None = Field(None, description="config file: .toml, .json, .yaml or .yml")
    jobs_dir: Path = Field(default_factory=default_jobs_dir, description="directory of <job id>/job.json")
    host: str = Field("127.0.0.1", description="address to bind")
    port: int = Field(9465, ge=0, le=65535, description="port to bind (0 picks a free one)")
    watch: Literal["inotify", "polling"] = Field(
        "inotify", description="file watching backend; polling for NFS/SMB/Docker Desktop mounts"
    )
    poll_interval: float = Field(1.0, gt=0, le=60, description="seconds between scans with --watch polling")
    rescan_interval: float = Field(30.0, gt=0, description="seconds between full rescans (catches inotify overflow)")
    stall_threshold: float = Field(45.0, gt=0, description="seconds without progress before a job is stalled")
    finalizing_threshold: float = Field(
        180.0, gt=0, description="stall threshold while finalizing (finalization stage or percent >= 90)"
    )
    finalizing_percent: float = Field(90.0, ge=0, le=100, description="percent from which a job is finalizing")
    queued_threshold: float = Field(600.0, gt=0, description="seconds a job may stay queued")
    stage_thresholds: dict[str, float] = Field(
        default_factory=dict, description='per-stage thresholds in seconds, JSON: {"tts": 90, "render": 60}'
    )
    thresholds: Literal["learned", "configured"] = Field(
        "learned",
        description="stall thresholds: learned per stage from healthy runs in the history once there are enough, "
        "or the configured ones only",
    )
    learn_min_runs: int = Field(20, ge=1, le=1_000_000, description="healthy runs a stage needs before it is learned")
    learn_floor: float = Field(10.0, gt=0, description="lowest learned threshold, in seconds")
    learn_ceiling: float = Field(
        4.0, gt=0, description="highest learned threshold, as a multiple of the stage's configured threshold"
    )
    unreadable_grace: float = Field(
        10.0, ge=0, description="seconds a job.json may stay unparseable before it is reported"
    )
    ffmpeg_log_dir: Path | None = Field(
        None, description="directory of Aura's ffmpeg logs (default <jobs dir>/../Logs/ffmpeg)"
    )
    read_root: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="extra directory whose files records may name for log tails, besides the jobs and ffmpeg log "
        "dirs (repeatable; the variable takes a JSON list or paths joined by the path separator)",
    )
    disk_floor_mb: float = Field(500.0, ge=0, description="free space below which disk_full is reported")
    rediagnose_interval: float = Field(15.0, gt=0, description="seconds between diagnoses of a stalled job")
    heartbeat_interval: float = Field(10.0, gt=0, description="seconds between SSE heartbeat events")
    node: str = Field(
        default_factory=socket.gethostname, description="this render node's name in metrics and alerts (host name)"
    )
    runbook_url: str | None = Field(
        None,
        description="base URL of the alert runbooks; alerts link <base>#<alert name> (default <external url>/runbooks)",
    )
    token: str | None = Field(None, description="bearer token required by retry and cancel")
    upstream: str | None = Field(None, description="Aura API to forward retry/cancel to, e.g. http://127.0.0.1:5005")
    upstream_timeout: float = Field(5.0, gt=0, le=120, description="seconds to wait for the upstream Aura API")
    state_dir: Path | None = Field(
        None,
        description="the sidecar's own data: history.db, and retry history when set (default: history in the "
        "platform data dir, e.g. ~/.local/share/aura-monitor; retries in <jobs dir>/<job id>/monitor/retries.json)",
    )
    history: str | None = Field(
        None, description="incident history database URL (default sqlite:///<state dir>/history.db)"
    )
    history_retention: float = Field(
        30 * 86400.0, gt=0, description="seconds of history kept (runs, stages, closed incidents); 30 days"
    )
    history_queue: int = Field(
        10_000, ge=1, le=10_000_000, description="history operations queued for the writer before new ones are dropped"
    )
    retry_max: int = Field(3, ge=0, le=100, description="retries allowed per job within the retry window")
    retry_backoff: float = Field(5.0, ge=0, description="seconds before the second retry; doubles for each later one")
    retry_backoff_cap: float = Field(300.0, ge=0, description="longest wait between two retries, in seconds")
    retry_window: float = Field(
        86400.0, gt=0, description="seconds after which an accepted retry no longer counts against the limit"
    )
    sse_retry_ms: int = Field(2000, ge=100, le=600_000, description="reconnection delay SSE clients are told to use")
    sse_replay_events: int = Field(
        10_000, ge=1, le=1_000_000, description="events kept for Last-Event-ID replay on any stream"
    )
    sse_job_replay_events: int = Field(
        64, ge=1, le=100_000, description="events kept per job for replay once the shared buffer moved on"
    )
    sse_client_queue: int = Field(
        1_000,
        ge=1,
        le=1_000_000,
        description="status events queued for one slow SSE client before its stream is closed (it then resumes)",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    external_url: str | None = Field(
        None, description="URL browsers and alert links use to reach this sidecar (default http://<host>:<port>)"
    )
    prometheus_url: str | None = Field(
        None,
        description="Prometheus (or Thanos Query) scraping the fleet's sidecars, for GET /api/fleet and the board's "
        "Fleet view, e.g. http://prometheus:9090",
    )
    allowed_host: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="extra Host name the API answers to besides loopback and --external-url's (repeatable; * = any; "
        "the variable takes a JSON list or names joined by commas)",
    )
    max_streams: int | None = Field(
        None, ge=1, le=1_000_000, description="concurrent SSE streams (default: the open-file limit minus a reserve)"
    )
    snapshot_finished: int = Field(
        200,
        ge=0,
        le=1_000_000,
        description="finished jobs in /api/events' connected snapshot (?snapshot=all: every job)",
    )

    @field_validator("stage_thresholds")
    @classmethod
    def _positive_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {stage: seconds for stage, seconds in value.items() if seconds <= 0}
        if bad:
            raise ValueError(f"stage thresholds must be positive seconds, got {bad}")
        return {stage.strip().lower(): seconds for stage, seconds in value.items()}

    @field_validator("allowed_host", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: a JSON list, or names joined by commas
            text = value.strip()
            if not text.startswith("["):
                return [part.strip() for part in text.split(",") if part.strip()]
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError("expected a JSON list of host names or names joined by commas") from None
        return value

    @field_validator("read_root", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: a JSON list, or paths joined like $PATH
            text = value.strip()
            if not text.startswith("["):
                return [part for part in text.split(os.pathsep) if part]
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError(f"expected a JSON list of directories or dirs joined by {os.pathsep!r}") from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_kwargs: dict[str, Any] = getattr(init_settings, "init_kwargs", {})
        return init_settings, env_settings, _ConfigFileSource(settings_cls, init_kwargs)

    @property
    def resolved_state_dir(self) -> Path:
        """--state-dir, else the platform's data dir for aura-monitor (never Aura's jobs dir)."""
        return self.state_dir or default_state_dir()

    @property
    def resolved_ffmpeg_log_dir(self) -> Path:
        return self.ffmpeg_log_dir or self.jobs_dir.parent / "Logs" / "ffmpeg"

    @property
    def resolved_external_url(self) -> str:
        """--external-url, else http://<host>:<port> (the machine's name when bound to every interface)."""
        if self.external_url:
            return self.external_url.rstrip("/")
        host = socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def resolved_runbook_url(self) -> str:
        """--runbook-url, else the runbooks this sidecar serves itself (<external url>/runbooks)."""
        return (self.runbook_url or f"{self.resolved_external_url}/runbooks").rstrip("/")


def load_settings(**flags: Any) -> Settings:
    """Settings from flags (None means "not given"), environment, config file and defaults."""
    given = {key: value for key, value in flags.items() if value is not None}
    try:
        return Settings(**given)
    except SettingsError as exc:  # a variable holding a dict or list that is not JSON
        raise ConfigError(f"invalid setting: {exc}; give a JSON value") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from None

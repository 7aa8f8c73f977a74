"""aura-monitor: an observability-first sidecar monitor and stall diagnoser for video render pipelines."""

from .clock import Clock, FakeClock, SystemClock
from .config import Settings, load_settings
from .exceptions import (
    AuraMonitorError,
    BackoffActive,
    ConfigError,
    ControlError,
    InvalidJobId,
    JobNotFound,
    NotCancellable,
    NotRetryable,
    RecordError,
    RecordUnreadable,
    ReporterError,
)
from .jobs.model import JobRecord, JobStatus, RecordFormat, validate_job_id
from .records import parse_record, read_record

__version__ = "0.1.0"

__all__ = [
    "AuraMonitorError",
    "BackoffActive",
    "Clock",
    "ConfigError",
    "ControlError",
    "FakeClock",
    "InvalidJobId",
    "JobNotFound",
    "JobRecord",
    "JobStatus",
    "NotCancellable",
    "NotRetryable",
    "RecordError",
    "RecordFormat",
    "RecordUnreadable",
    "ReporterError",
    "Settings",
    "SystemClock",
    "__version__",
    "load_settings",
    "parse_record",
    "read_record",
    "validate_job_id",
]

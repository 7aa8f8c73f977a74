"""Errors raised by aura-monitor.

AuraMonitorError
├── ConfigError (ValueError)         bad settings or config file
├── InvalidJobId (ValueError)        a job id that could escape the jobs dir
├── JobNotFound (LookupError)        no record for that id
├── RecordError (ValueError)         a job.json that cannot be turned into a record
│   └── RecordUnreadable             the file could not be read or parsed at all
├── ControlError                     retry/cancel refused
│   ├── NotRetryable, NotCancellable
│   ├── BackoffActive                retry asked for too early or too often
│   └── UnsafePath                   a write would go through a symbolic link
└── ReporterError (OSError)          the reporter SDK could not write a record
"""

from __future__ import annotations


class AuraMonitorError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(AuraMonitorError, ValueError):
    """Settings or config file are invalid."""


class InvalidJobId(AuraMonitorError, ValueError):
    """A job id that is empty, too long or could escape the jobs directory."""


class JobNotFound(AuraMonitorError, LookupError):
    """No job with that id is known."""


class InvalidQuery(AuraMonitorError, ValueError):
    """A query parameter has a value the API does not know."""


class RecordError(AuraMonitorError, ValueError):
    """A job record has content that cannot be normalized."""


class RecordUnreadable(RecordError):
    """A job record file could not be read or is not valid JSON."""


class ControlError(AuraMonitorError):
    """A retry or cancel request was refused."""


class NotRetryable(ControlError):
    """The job is not in a state that can be retried."""


class NotCancellable(ControlError):
    """The job already reached a terminal state."""


class BackoffActive(ControlError):
    """A retry came before its backoff elapsed, or no retries remain."""

    def __init__(self, message: str, retry_after: float, retries_remaining: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.retries_remaining = retries_remaining


class UnsafePath(ControlError):
    """A dir or file the sidecar would write is a symbolic link (or not a dir): the write is refused."""


class ReporterError(AuraMonitorError, OSError):
    """The reporter SDK could not persist a job record."""


class JobCancelled(AuraMonitorError):
    """Raised inside a job when a cancel request arrived; the job ends `cancelled`."""

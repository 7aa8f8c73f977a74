"""Errors of the reference pipeline, all under the package's one root.

AuraMonitorError
└── PipelineError                a job cannot be enqueued, claimed or rendered as asked
    ├── JobAlreadyClaimed        another process holds the job's claim
    └── JobNotRunnable           the job's status does not allow a render
"""

from __future__ import annotations

from ..exceptions import AuraMonitorError


class PipelineError(AuraMonitorError):
    """The reference pipeline refused a command."""


class JobAlreadyClaimed(PipelineError):
    """Another worker or render process holds the job's claim file."""


class JobNotRunnable(PipelineError):
    """Only a queued job can be rendered."""

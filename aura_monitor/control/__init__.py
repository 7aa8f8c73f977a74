"""Retry and cancel: a pure retry policy, persisted retry history, and the channels that deliver requests."""

from __future__ import annotations

from .channel import Channel, ControlUnavailable, Receipt, RequestFileChannel, UpstreamChannel
from .policy import RetryDecision, RetryPolicy, decide_retry, wait_before
from .service import Accepted, ControlService
from .store import RetryEntry, RetryStore

__all__ = [
    "Accepted",
    "Channel",
    "ControlService",
    "ControlUnavailable",
    "Receipt",
    "RequestFileChannel",
    "RetryDecision",
    "RetryEntry",
    "RetryPolicy",
    "RetryStore",
    "UpstreamChannel",
    "decide_retry",
    "wait_before",
]

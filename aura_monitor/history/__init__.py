"""Incident history: runs, stages and incidents kept in a database off the hot path (DESIGN 2.7)."""

from __future__ import annotations

from .recorder import HistoryRecorder
from .service import History
from .store import HistoryStore, IncidentQuery, StoreUnavailable

__all__ = ["History", "HistoryRecorder", "HistoryStore", "IncidentQuery", "StoreUnavailable"]

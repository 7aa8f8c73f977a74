"""GET /api/thresholds: the configured stall thresholds beside the ones learned from the history (DESIGN 2.7)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..records.timestamps import format_iso
from .jobs import SidecarDep

router = APIRouter(prefix="/api", tags=["history"])


@router.get("/thresholds")
def get_thresholds(sidecar: SidecarDep) -> dict[str, Any]:
    """Mode (learned|configured), the configured rules, the --learn-* knobs and, per stage, the learned
    threshold with its basis sentence or why the stage is not learned yet."""
    body = sidecar.learner.body()
    if body["refreshedAt"] is not None:
        body["refreshedAt"] = format_iso(body["refreshedAt"])
    return body

"""Prometheus metrics of a pipeline: stage durations and outcomes, job outcomes, render speed."""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Histogram

from ..jobs.stages import stage_key

STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
SPEED_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)


class Outcome(StrEnum):
    """How a stage or a job attempt ended (a bounded label set)."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    CRASHED = "crashed"  # the process running it died
    UNFINISHED = "unfinished"  # the process ended without a terminal record


class PipelineMetrics:
    """The pipeline's metric families, registered on the registry it is given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.stage_duration = Histogram(
            "aura_pipeline_stage_duration_seconds",
            "Wall time of one pipeline stage run, by canonical stage name.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.stage_runs = Counter(
            "aura_pipeline_stage_runs",
            "Stage runs by canonical stage name and outcome (completed, failed, cancelled, skipped).",
            ["stage", "outcome"],
            registry=registry,
        )
        self.jobs = Counter(
            "aura_pipeline_jobs",
            "Job attempts by outcome (completed, failed, cancelled, crashed, unfinished).",
            ["outcome"],
            registry=registry,
        )
        self.render_speed = Histogram(
            "aura_pipeline_render_speed_ratio",
            "Encoder speed of finished renders, as seconds of video per second of wall time.",
            buckets=SPEED_BUCKETS,
            registry=registry,
        )

    def observe_stage(self, stage: str, outcome: Outcome, seconds: float | None) -> None:
        key = stage_key(stage)
        self.stage_runs.labels(stage=key, outcome=outcome.value).inc()
        if seconds is not None and outcome is not Outcome.SKIPPED:
            self.stage_duration.labels(stage=key).observe(max(0.0, seconds))

    def observe_job(self, outcome: Outcome) -> None:
        self.jobs.labels(outcome=outcome.value).inc()

    def observe_render_speed(self, ratio: float) -> None:
        if ratio > 0:
            self.render_speed.observe(ratio)

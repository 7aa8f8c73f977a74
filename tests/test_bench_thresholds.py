"""The thresholds bench on a small corpus: every fault is a real stall, learned thresholds catch them sooner."""

from __future__ import annotations

from aura_monitor.jobs.stall import Thresholds
from aura_monitor.pipeline.faults import Fault
from bench.threshold_corpus import corpus
from bench.thresholds import healthy_samples, replay, run, train


def test_the_corpus_holds_healthy_slow_and_every_fault_each_with_a_stall_start() -> None:
    timelines = corpus(seed=1, healthy=4, slow=2, per_fault=1)
    assert {t.kind for t in timelines} == {"healthy", "slow", *(f.value for f in Fault)}
    for t in timelines:
        assert (t.stall_start is None) == (t.kind in ("healthy", "slow"))
        assert all(a.at <= b.at for a, b in zip(t.points, t.points[1:], strict=False))


def test_a_hung_encoder_is_flagged_at_the_learned_render_threshold_instead_of_45_s() -> None:
    timelines = corpus(seed=2, healthy=40, slow=0, per_fault=1)
    table = train(healthy_samples([t for t in timelines if t.kind == "healthy"]))
    render = table.get("render")
    assert render is not None
    hang = next(t for t in timelines if t.kind == Fault.HANG_ENCODER.value)
    assert hang.stall_start is not None
    configured = replay(hang, Thresholds())
    learned = replay(hang, Thresholds(learned=table))
    assert configured[0][1] == learned[0][1] == "render"
    assert abs(configured[0][0] - hang.stall_start - 45.0) < 0.01
    assert abs(learned[0][0] - hang.stall_start - render.seconds) < 0.01


def test_on_a_small_corpus_learned_thresholds_raise_no_false_stall_on_healthy_or_slow_runs() -> None:
    result = run(seed=3, healthy=60, slow=10, per_fault=2)
    for stage in result["stages"].values():
        assert stage["learned"].get("false", 0) == 0 and stage["learned"].get("falseSlow", 0) == 0
